"""Offline scripts of the crews app, registered at start-up in every process (the web server,
workers, tests): the demo's support ticket, the runtime benchmark, and the durability drill.

The offline provider plays turn n of the first matching script, n being the number of
assistant messages so far, so a whole mission (across agents) is one script. Scripts match on
a marker in the mission's goal (the first user message).
"""

from __future__ import annotations

import json
from typing import Any

from .demo import DRAFT, SARAH

BENCH_MARKER = "[bench-runtime]"
DRILL_MARKER = "[durability-drill]"


def mission_input(request: Any) -> dict[str, Any]:
    """The mission's input, read back from its first message (see runtime.model.mission_prompt)."""
    text = request.first_user_text
    _, _, tail = text.partition("\n\nInput:\n")
    try:
        value = json.loads(tail) if tail else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def register_scripts() -> None:
    from apps.llm.providers.offline import ScriptToolCall, ScriptTurn, match_first_user, register_script

    register_script(
        "crews-demo-support-ticket",
        match_first_user("Sarah at Acme"),
        [
            ScriptTurn(
                text=(
                    "Ticket T-1047 from Sarah Chen (Acme): the Salesforce integration stopped syncing "
                    "contacts on Tuesday, right after their admin rotated the integration user's password. "
                    "Let me look up the account and what we know about her."
                ),
                tool_calls=[
                    ScriptToolCall("crm_lookup", {"query": "Acme"}),
                    ScriptToolCall("memory_search", {"query": "Acme Salesforce integration"}),
                ],
            ),
            ScriptTurn(
                text="Acme is a Pro customer; Sarah is their CTO and wrote about this integration before. Over to you.",
                tool_calls=[
                    ScriptToolCall(
                        "handoff",
                        {
                            "to": "Responder",
                            "note": (
                                f"Sarah Chen ({SARAH}), CTO of Acme, Pro plan; her earlier tickets were about "
                                "this Salesforce integration too. The sync broke when Marcus rotated the "
                                "integration user's password, which revoked the connection's token. Answer: "
                                "reconnect, sync now to back-fill; suggest OAuth with a connected app."
                            ),
                        },
                    )
                ],
            ),
            ScriptTurn(
                text="Drafting the reply.",
                tool_calls=[ScriptToolCall("write_note", {"filename": "T-1047-reply.md", "content": DRAFT})],
            ),
            ScriptTurn(
                text="The draft is ready; sending it to Sarah.",
                tool_calls=[
                    ScriptToolCall(
                        "send_email",
                        {
                            "to": [SARAH],
                            "subject": "Re: Salesforce integration stopped syncing contacts",
                            "body": DRAFT,
                        },
                    )
                ],
            ),
            ScriptTurn(
                text=(
                    "I replied to Sarah at Acme: the sync broke when their integration user's password was "
                    "rotated; they can reconnect and sync now, and we offered to move them to OAuth."
                )
            ),
        ],
        priority=50,
    )
    register_script(BENCH_MARKER, match_first_user(BENCH_MARKER), bench_turns(), priority=10)
    register_script(DRILL_MARKER, match_first_user(DRILL_MARKER), drill_turns(), priority=10)


def bench_turns() -> list[Any]:
    """Ten steps: five model turns and five tool calls (the first turn calls two tools)."""
    from apps.llm.providers.offline import ScriptToolCall, ScriptTurn

    def note(n: int) -> Any:
        return ScriptToolCall("write_note", {"filename": f"bench-{n}.txt", "content": f"step {n}"})

    return [
        ScriptTurn(
            text="Looking up the account.", tool_calls=[ScriptToolCall("crm_lookup", {"query": "Acme"}), note(1)]
        ),
        ScriptTurn(text="Noting what I found.", tool_calls=[note(2)]),
        ScriptTurn(text="Noting the plan.", tool_calls=[note(3)]),
        ScriptTurn(text="Noting the answer.", tool_calls=[note(4)]),
        ScriptTurn(text="Done: the notes are written."),
    ]


def drill_turns() -> list[Any]:
    """The durability drill: an email, a call to an HTTP API that may be slow (a worker gets
    killed while it waits), a note, a lookup, the answer. Addresses come from the input."""
    from apps.llm.providers.offline import ScriptToolCall, ScriptTurn

    return [
        ScriptTurn(
            text="Telling the customer we are on it.",
            tool_calls=[
                ScriptToolCall(
                    "send_email",
                    lambda r: {
                        "to": [mission_input(r).get("email", "customer@example.test")],
                        "subject": "We are on it",
                        "body": "We received your request and are working on it.",
                    },
                )
            ],
        ),
        ScriptTurn(
            text="Registering the request with the ticketing API.",
            tool_calls=[
                ScriptToolCall(
                    "http_request",
                    lambda r: {"method": "POST", "url": mission_input(r).get("url", ""), "json": {"ticket": "T-1"}},
                )
            ],
        ),
        ScriptTurn(
            text="Noting what happened.",
            tool_calls=[ScriptToolCall("write_note", {"filename": "drill.txt", "content": "done"})],
        ),
        ScriptTurn(text="Checking the account.", tool_calls=[ScriptToolCall("crm_lookup", {"query": "Acme"})]),
        ScriptTurn(text="All steps are done."),
    ]
