"""Model zoo, safe loading of uploads, and the listing of compressible units."""

from core.models.hashing import model_hash
from core.models.units import Unit, compressible_units, count_parameters, get_unit_module
from core.models.uploads import check_forward, load_uploaded_model
from core.models.zoo import ModelSpec, build_model, list_models, load_model, model_spec

__all__ = [
    "ModelSpec",
    "Unit",
    "build_model",
    "check_forward",
    "compressible_units",
    "count_parameters",
    "get_unit_module",
    "list_models",
    "load_model",
    "load_uploaded_model",
    "model_hash",
    "model_spec",
]
