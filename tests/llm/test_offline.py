"""The offline provider: deterministic scripted turns for the demo and tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.llm.providers import offline
from apps.llm.providers.offline import (
    ScriptToolCall,
    ScriptTurn,
    count_tokens,
    match_all,
    match_first_user,
    match_system,
    match_tools,
    offline_reply,
    play,
    register_script,
    unregister_script,
)
from apps.llm.types import ChatRequest, Message, TextBlock, ToolResultBlock, ToolSpec, ToolUseBlock

TOOLS = [ToolSpec("lookup_customer"), ToolSpec("send_email")]


@pytest.fixture(autouse=True)
def support_script() -> Iterator[None]:
    register_script(
        "test-support",
        match_all(match_system("support agent"), match_tools("lookup_customer")),
        [
            ScriptTurn(
                text="Let me look the customer up.",
                tool_calls=[ScriptToolCall("lookup_customer", {"email": "ana@example.com"})],
            ),
            ScriptTurn(
                tool_calls=[
                    ScriptToolCall(
                        "send_email",
                        lambda request: {"to": "ana@example.com", "body": f"Re: {request.first_user_text[:20]}"},
                    ),
                    ScriptToolCall("issue_refund", {"amount": 500}),  # not offered: must be dropped
                ]
            ),
            ScriptTurn(text="I answered the customer and closed the ticket."),
        ],
    )
    yield
    unregister_script("test-support")


def _conversation(turns: int) -> list[Message]:
    messages = [Message.user("My parcel is late, can you help?")]
    for i in range(turns):
        messages.append(Message.assistant(ToolUseBlock(id=f"t{i}", name="lookup_customer", arguments={})))
        messages.append(Message.tool_results(ToolResultBlock(tool_use_id=f"t{i}", content="found: Ana, order 4711")))
    return messages


def _request(turns: int = 0, tools: list[ToolSpec] = TOOLS, system: str = "You are a support agent.") -> ChatRequest:
    return ChatRequest(system=system, messages=_conversation(turns), tools=tools, max_tokens=400)


def test_turns_play_in_order_by_the_number_of_assistant_turns() -> None:
    content, stop, script = play(_request(0))
    assert script == "test-support" and stop == "tool_use"
    assert content[0] == TextBlock("Let me look the customer up.")
    assert isinstance(content[1], ToolUseBlock)
    assert (content[1].name, dict(content[1].arguments)) == ("lookup_customer", {"email": "ana@example.com"})

    content, stop, _ = play(_request(1))
    assert stop == "tool_use"
    assert [b.name for b in content if isinstance(b, ToolUseBlock)] == ["send_email"]  # issue_refund dropped
    assert dict(content[0].arguments) == {"to": "ana@example.com", "body": "Re: My parcel is late, c"}  # type: ignore[union-attr]

    content, stop, _ = play(_request(2))
    assert (stop, content) == ("end_turn", (TextBlock("I answered the customer and closed the ticket."),))


def test_past_the_script_the_reply_is_a_generic_final_answer() -> None:
    content, stop, _ = play(_request(3))
    assert stop == "end_turn"
    assert len(content) == 1 and isinstance(content[0], TextBlock)
    assert "lookup_customer" in content[0].text  # it mentions the tool whose result it saw


def test_a_tool_missing_from_the_request_is_never_called() -> None:
    only_email = [ToolSpec("lookup_customer")]
    content, stop, _ = play(_request(1, tools=only_email))
    assert stop == "end_turn"
    assert not any(isinstance(b, ToolUseBlock) for b in content)


def test_no_matching_script_gives_a_plausible_answer() -> None:
    request = ChatRequest(messages=[Message.user("What are your opening hours?")], system="You are a shop assistant.")
    content, stop, script = play(request)
    assert (stop, script) == ("end_turn", "")
    assert "opening hours" in content[0].text  # type: ignore[union-attr]


def test_replies_are_deterministic_and_usage_comes_from_the_text() -> None:
    first, second = offline_reply(_request(0)), offline_reply(_request(0))
    assert first == second
    assert first.usage.input_tokens == count_tokens(offline.request_text(_request(0)))
    assert first.usage.output_tokens == count_tokens(offline.output_text(first.content))
    assert count_tokens("abcd") == 1 and count_tokens("abcde") == 2
    ids = [b.id for b in first.content if isinstance(b, ToolUseBlock)]
    assert ids and ids[0].startswith("toolu_off_")


def test_a_reply_longer_than_max_tokens_is_cut() -> None:
    request = ChatRequest(messages=[Message.user("x" * 50)], max_tokens=5)
    reply = offline_reply(request)
    assert reply.stop_reason == "max_tokens"
    assert reply.usage.output_tokens == 5
    assert len(reply.content[0].text) <= 20  # type: ignore[union-attr]


def test_matchers() -> None:
    request = _request(0)
    assert match_first_user("parcel")(request)
    assert not match_first_user("refund")(request)
    assert match_tools("send_email", "lookup_customer")(request)
    assert not match_tools("delete_account")(request)
    assert not match_system("billing")(request)
