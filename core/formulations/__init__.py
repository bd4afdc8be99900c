"""QUBO formulations, one module per method (DESIGN section 3)."""

from core.formulations.base import Decision, Formulation

__all__ = ["Decision", "Formulation"]
