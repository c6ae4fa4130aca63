"""Where the vault meets the LLM app written beside it.

- The judge's model calls go through the gateway (``apps.llm.gateway.chat``): routed,
  budgeted and journaled like any call. ``VAULT_JUDGE_MODEL`` names the model; the default is
  the catalog's ``offline-small``, which runs on this machine (for a real local model, add an
  OpenAI-compatible catalog entry, e.g. Ollama, and name it). With an empty setting the
  gateway's routing picks the workspace's default model.
- The offline provider gets a ``keeper-judge`` script that answers the Keeper's prompt in the
  strict format (by applying the rule judge to the delimited intent), so the demo exercises
  the whole gateway path without a network.
- Provider API keys can be vault secrets: a secret named ``llm.<provider>`` (for example
  ``llm.anthropic``) in the workspace is used by the gateway before the settings key. These
  are platform credentials, read by the gateway itself; agents never see them unless someone
  grants them explicitly.

Everything is imported when used, so a missing or broken LLM app makes the judge
unavailable (the Keeper denies) instead of breaking the vault.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django_tenants.utils import get_public_schema_name

if TYPE_CHECKING:
    from .judges import JudgeRequest

logger = logging.getLogger(__name__)

PROVIDER_SECRET_PREFIX = "llm."
JUDGE_MAX_TOKENS = 60
JUDGE_SCRIPT = "keeper-judge"


def gateway_complete(*, system: str, user: str, request: JudgeRequest) -> str:
    """Ask the judge model through the LLM gateway; return its text."""
    from .judges import JudgeUnavailable

    try:
        from apps.llm.gateway import chat
        from apps.llm.types import CallContext, ChatRequest, Message, TextBlock
    except ImportError as exc:
        raise JudgeUnavailable("The LLM gateway is not installed.") from exc
    response = chat(
        request=ChatRequest(
            system=system,
            messages=[Message.user(user)],
            max_tokens=JUDGE_MAX_TOKENS,
            temperature=0.0,
            model=str(getattr(settings, "VAULT_JUDGE_MODEL", "offline-small") or ""),
        ),
        context=CallContext(
            crew_id=request.crew_id,
            mission_id=request.mission_id,
            agent_id=request.agent_id,
            request_id=f"keeper-judge:{uuid.uuid4().hex}",
            purpose=f"keeper judge: {request.secret_name} for {request.tool_name}",
        ),
    )
    return "".join(block.text for block in response.content if isinstance(block, TextBlock))


# --- the offline judge script ------------------------------------------------------------------

_FIELDS = re.compile(
    r"Credential: (?P<name>.*) \(kind: (?P<kind>.*), tier: (?P<tier>L\d)\)\n"
    r"Purpose: (?P<description>.*)\nTool: (?P<tool>.*)\nInside a mission: (?P<mission>yes|no)\n",
)
_INTENT = re.compile(r"<<<INTENT (?P<nonce>[0-9a-f]+)>>>\n(?P<intent>.*)\n<<<END INTENT (?P=nonce)>>>", re.S)


def offline_judge_answer(request: Any) -> str:
    """The offline model's answer to the Keeper's prompt: the rule judge, in the strict format."""
    from .judges import JudgeRequest, rules_judge

    text = request.last_user_text
    fields, intent = _FIELDS.search(text), _INTENT.search(text)
    if fields is None or intent is None:
        return "I cannot tell what is being asked."  # unparseable on purpose: the Keeper denies
    verdict = rules_judge(
        JudgeRequest(
            secret_name=fields["name"],
            secret_kind=fields["kind"],
            secret_description=fields["description"],
            tier=fields["tier"],
            tool_name=fields["tool"],
            intent=intent["intent"],
            crew_id=None,
            agent_id=None,
            mission_id=uuid.UUID(int=1) if fields["mission"] == "yes" else None,
        )
    )
    return f"{'ALLOW' if verdict.allow else 'DENY'}: {verdict.reason}"


def _register_offline_judge() -> None:
    try:
        from apps.llm.providers.offline import ScriptTurn, match_system, register_script
    except ImportError:
        return
    register_script(
        JUDGE_SCRIPT, match_system("You are the Keeper"), [ScriptTurn(text=offline_judge_answer)], priority=10
    )


# --- provider keys from the vault --------------------------------------------------------------


def vault_provider_credential(provider: str, model: Any) -> Any:
    """The gateway's credential resolver: the key is the workspace secret ``llm.<provider>``
    (when there is one); the endpoint stays whatever the configuration says."""
    from apps.llm.credentials import ProviderCredential, settings_resolver

    from .crypto import DecryptionFailed
    from .models import Secret

    if getattr(connection, "schema_name", get_public_schema_name()) == get_public_schema_name():
        return None
    secret = Secret.objects.filter(name=f"{PROVIDER_SECRET_PREFIX}{provider}").only("id", "value").first()
    if secret is None:
        return None
    try:
        api_key = secret.value.reveal()
    except DecryptionFailed:
        logger.warning("vault: the %s provider key does not decrypt; falling back to settings", provider)
        return None
    configured = settings_resolver(provider, model)
    return ProviderCredential(api_key=api_key, base_url=configured.base_url if configured else "")


def _register_credential_resolver() -> None:
    try:
        from apps.llm.credentials import register_credential_resolver
    except ImportError:
        return
    register_credential_resolver("vault", vault_provider_credential, priority=10)


def connect() -> None:
    """Plug the vault into the LLM app's registries (called from VaultConfig.ready)."""
    _register_offline_judge()
    _register_credential_resolver()
