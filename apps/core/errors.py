"""Domain errors. Services raise these; the API maps them to one envelope, pages to messages.

Every error carries a stable machine-readable ``code`` that clients may switch on, a
human ``message``, and optional structured ``details``.
"""

from __future__ import annotations

from typing import Any


class QuarterdeckError(Exception):
    code = "error"
    status_code = 400
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: Any = None):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.details = details if details is not None else {}
        super().__init__(self.message)


class ValidationFailed(QuarterdeckError):
    code = "invalid"
    status_code = 400
    default_message = "The input is not valid."


class NotFound(QuarterdeckError):
    code = "not_found"
    status_code = 404
    default_message = "Not found."


class PermissionDenied(QuarterdeckError):
    code = "permission_denied"
    status_code = 403
    default_message = "You do not have permission to do this."


class Conflict(QuarterdeckError):
    code = "conflict"
    status_code = 409
    default_message = "The request conflicts with the current state."


class GovernanceUnavailable(QuarterdeckError):
    """A governance dependency (budget, gatekeeper, journal) could not be consulted.

    Governance fails closed: whoever catches this must not perform the action.
    """

    code = "governance_unavailable"
    status_code = 503
    default_message = "A governance check could not be completed; the action was not performed."
