"""User-facing errors.

Every failure a user can cause (bad upload, wrong shape, missing token, a
problem too large for a QPU) is raised as a :class:`QCLError` whose message is
one plain-language sentence. Pages show it with ``st.error``; the command line
prints it on one line and exits non-zero. Anything else is a bug.
"""

from __future__ import annotations


class QCLError(Exception):
    """An error whose message is meant for the user, not a developer."""


class InvalidInputError(QCLError, ValueError):
    """The user's input (file, parameter, data) cannot be used as given."""


class UnavailableError(QCLError, RuntimeError):
    """A resource (network, token, optional package, solver) is not available."""
