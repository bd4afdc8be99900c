"""Experiment history (SQLite by default, any SQLAlchemy URL) and run-quality analysis."""

from core.store.analysis import (
    OPTIMUM_RTOL,
    gap_percent,
    optimum_tolerance,
    pareto_front,
    pareto_mask,
    report_quality,
    success_probability,
    time_to_solution,
    total_time_s,
)
from core.store.runs import (
    ENV_URL,
    SUMMARY_COLUMNS,
    RunNotFoundError,
    RunStore,
    RunSummary,
    StoreError,
    default_db_path,
    default_db_url,
    strip_secrets,
    user_data_dir,
)

__all__ = [
    "ENV_URL",
    "OPTIMUM_RTOL",
    "SUMMARY_COLUMNS",
    "RunNotFoundError",
    "RunStore",
    "RunSummary",
    "StoreError",
    "default_db_path",
    "default_db_url",
    "gap_percent",
    "optimum_tolerance",
    "pareto_front",
    "pareto_mask",
    "report_quality",
    "strip_secrets",
    "success_probability",
    "time_to_solution",
    "total_time_s",
    "user_data_dir",
]
