"""Send an email through Django's email backend (SMTP in production, a local server in tests).

Idempotent per tool call: the Message-ID is derived from the mission and the tool call id, so
a receiving system can drop a duplicate, and the runtime never calls ``run`` twice for one
tool call id anyway (see runtime.executor).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage

from .base import ToolContext

NAME = "send_email"
DESCRIPTION = (
    "Send an email to one or more recipients. Use it for the final reply to a customer once the "
    "draft is ready. The body is plain text."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "to": {
            "type": "array",
            "items": {"type": "string", "format": "email", "maxLength": 254},
            "minItems": 1,
            "maxItems": 20,
        },
        "cc": {"type": "array", "items": {"type": "string", "format": "email", "maxLength": 254}, "maxItems": 20},
        "subject": {"type": "string", "minLength": 1, "maxLength": 200},
        "body": {"type": "string", "minLength": 1, "maxLength": 50000},
    },
    "required": ["to", "subject", "body"],
    "additionalProperties": False,
}
CREDENTIALS: tuple[str, ...] = ()
SIDE_EFFECTS = True

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def message_id(ctx: ToolContext) -> str:
    call = _UNSAFE.sub("-", ctx.tool_call_id)[:64]
    return f"<{call}.{ctx.mission.pk}@quarterdeck.local>"


def run(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    sender = str(ctx.crew.settings.get("from_email") or settings.DEFAULT_FROM_EMAIL)
    mid = message_id(ctx)
    email = EmailMessage(
        subject=args["subject"],
        body=args["body"],
        from_email=sender,
        to=list(args["to"]),
        cc=list(args.get("cc", [])),
        headers={
            "Message-ID": mid,
            "X-Quarterdeck-Mission": str(ctx.mission.pk),
            "X-Quarterdeck-Tool-Call": ctx.tool_call_id,
        },
    )
    sent = email.send(fail_silently=False)
    return {"sent": bool(sent), "message_id": mid, "to": list(args["to"]), "subject": args["subject"]}
