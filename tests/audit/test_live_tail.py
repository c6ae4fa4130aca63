"""The live tail over WebSocket, against the real ASGI app, Redis channel layer and Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from apps.audit import catalog
from apps.audit.catalog import EntryKind, Severity
from apps.audit.live import MESSAGE_TYPE, group_name
from apps.audit.models import JournalEntry
from apps.audit.services import journal_append
from apps.tenants.access import workspace_schema
from apps.tenants.models import Workspace

catalog.register(EntryKind("test.tail", Severity.INFO, required={"n": int}))

TIMEOUT = 5


def _headers(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()),
        (b"origin", b"http://localhost"),
    ]


def _append(workspace: Workspace, mission: uuid.UUID, n: int) -> JournalEntry:
    with workspace_schema(workspace):
        return journal_append(kind="test.tail", payload={"n": n}, mission_id=mission)


def _read(workspace: Workspace, seq: int) -> dict[str, Any]:
    with workspace_schema(workspace):
        return JournalEntry.objects.get(seq=seq).as_dict()


async def _connect(user: Any, path: str) -> WebsocketCommunicator:
    from config.asgi import application

    communicator = WebsocketCommunicator(application, path, headers=await sync_to_async(_headers)(user))
    connected, code = await communicator.connect(timeout=TIMEOUT)
    assert connected, code
    return communicator


async def _until_caught_up(communicator: WebsocketCommunicator) -> tuple[list[dict[str, Any]], int]:
    entries = []
    while True:
        message = await communicator.receive_json_from(timeout=TIMEOUT)
        if message["type"] == "caught_up":
            return entries, message["seq"]
        entries.append(message["entry"])


@pytest.mark.django_db(transaction=False)
@pytest.mark.usefixtures("committed_db")
class TestLiveTail:
    async def test_replays_from_a_sequence_number_then_delivers_new_entries(self, acme: Any, viewer: Any) -> None:
        mission = uuid.uuid4()
        written = [await sync_to_async(_append)(acme, mission, n) for n in range(3)]

        communicator = await _connect(viewer, f"/ws/w/acme/journal/?after={written[0].seq}&mission={mission}")
        replayed, caught_up = await _until_caught_up(communicator)
        assert [e["seq"] for e in replayed] == [written[1].seq, written[2].seq]
        assert replayed[0]["payload"] == {"n": 1} and replayed[0]["hash"] == written[1].hash
        assert caught_up >= written[2].seq

        # Committed after the connection: pushed through the channel layer.
        other = await sync_to_async(_append)(acme, uuid.uuid4(), 99)  # another mission: filtered out
        fresh = await sync_to_async(_append)(acme, mission, 3)
        message = await communicator.receive_json_from(timeout=TIMEOUT)
        assert message == {"type": "entry", "entry": await sync_to_async(_read)(acme, fresh.seq)}
        assert other.seq < fresh.seq
        await communicator.disconnect()

        # Resuming from the last seen number misses nothing and repeats nothing.
        later = await sync_to_async(_append)(acme, mission, 4)
        communicator = await _connect(viewer, f"/ws/w/acme/journal/?after={fresh.seq}&mission={mission}")
        replayed, _ = await _until_caught_up(communicator)
        assert [e["seq"] for e in replayed] == [later.seq]
        await communicator.disconnect()

    async def test_each_entry_arrives_once_and_in_order_despite_duplicate_or_early_pushes(
        self, acme: Any, viewer: Any
    ) -> None:
        mission = uuid.uuid4()
        start = await sync_to_async(_append)(acme, mission, 0)
        communicator = await _connect(viewer, f"/ws/w/acme/journal/?mission={mission}&after={start.seq}")
        await _until_caught_up(communicator)
        first = await sync_to_async(_append)(acme, mission, 1)
        second = await sync_to_async(_append)(acme, mission, 2)
        # A push that skips ``first`` (as a second process's push may overtake ours) and a
        # duplicate: the consumer fills the gap from the database and drops the repeat.
        layer = get_channel_layer()
        group = group_name(acme.schema_name)
        second_dict = await sync_to_async(_read)(acme, second.seq)
        await layer.group_send(group, {"type": MESSAGE_TYPE, "entries": [second_dict]})
        await layer.group_send(group, {"type": MESSAGE_TYPE, "entries": [second_dict]})
        received = [await communicator.receive_json_from(timeout=TIMEOUT) for _ in range(2)]
        assert [m["entry"]["seq"] for m in received] == [first.seq, second.seq]
        third = await sync_to_async(_append)(acme, mission, 3)
        message = await communicator.receive_json_from(timeout=TIMEOUT)
        assert message["entry"]["seq"] == third.seq
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    async def test_resume_message_replays_again(self, acme: Any, viewer: Any) -> None:
        mission = uuid.uuid4()
        written = [await sync_to_async(_append)(acme, mission, n) for n in range(2)]
        communicator = await _connect(viewer, f"/ws/w/acme/journal/?mission={mission}")
        replayed, _ = await _until_caught_up(communicator)
        assert [e["seq"] for e in replayed] == [e.seq for e in written]
        await communicator.send_json_to({"type": "resume", "after": written[0].seq})
        replayed, _ = await _until_caught_up(communicator)
        assert [e["seq"] for e in replayed] == [written[1].seq]
        await communicator.send_json_to({"type": "resume", "after": "soon"})
        assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "error"
        await communicator.disconnect()

    async def test_a_frame_that_is_not_json_gets_an_error_and_the_tail_goes_on(self, acme: Any, viewer: Any) -> None:
        mission = uuid.uuid4()
        communicator = await _connect(viewer, f"/ws/w/acme/journal/?mission={mission}")
        await _until_caught_up(communicator)
        await communicator.send_to(text_data='{"type": "resume", "after": ')
        assert await communicator.receive_json_from(timeout=TIMEOUT) == {
            "type": "error",
            "message": "That frame is not valid JSON.",
        }
        await communicator.send_to(bytes_data=b"\x00\x01")
        assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "error"
        written = await sync_to_async(_append)(acme, mission, 7)  # still connected and tailing
        message = await communicator.receive_json_from(timeout=TIMEOUT)
        assert message["entry"]["seq"] == written.seq
        await communicator.disconnect()

    async def test_outsiders_and_bad_parameters_are_refused(self, outsider: Any, viewer: Any) -> None:
        from config.asgi import application

        communicator = WebsocketCommunicator(
            application, "/ws/w/acme/journal/", headers=await sync_to_async(_headers)(outsider)
        )
        connected, code = await communicator.connect(timeout=TIMEOUT)
        assert not connected and code == 4404
        communicator = WebsocketCommunicator(
            application, "/ws/w/acme/journal/?after=-3", headers=await sync_to_async(_headers)(viewer)
        )
        connected, code = await communicator.connect(timeout=TIMEOUT)
        assert not connected and code == 4400
