"""QUBO Compression Lab engine: neural-network compression as QUBO problems.

A plain Python library (it never imports streamlit). See ``python -m core --help``.
"""

from core.errors import InvalidInputError, QCLError, UnavailableError

__all__ = ["QCLError", "InvalidInputError", "UnavailableError"]
__version__ = "0.1.0"
