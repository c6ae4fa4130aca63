from __future__ import annotations

from apps.core.errors import QuarterdeckError


class ProviderFailed(QuarterdeckError):
    """Every model tried (the routed one and its fallbacks) failed. Nothing was charged."""

    code = "provider_failed"
    status_code = 502
    default_message = "The model provider failed; the call was not completed."


class NoModelAvailable(QuarterdeckError):
    """Routing found no active, priced model for the call."""

    code = "no_model"
    status_code = 503
    default_message = "No model is available for this call."
