"""Who is acting, and in which request: carried in contextvars, set explicitly.

The HTTP middleware sets the actor for a request; the worker sets it for the agent or the
system. Services read ``current_actor()`` when they journal, so no caller has to thread the
actor through every call, yet nothing is inferred from signals.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["user", "api_key", "agent", "system"]


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str
    label: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "label": self.label}


SYSTEM = Actor(kind="system", id="system", label="system")

_actor: ContextVar[Actor] = ContextVar("quarterdeck_actor", default=SYSTEM)
_request_id: ContextVar[str | None] = ContextVar("quarterdeck_request_id", default=None)


def current_actor() -> Actor:
    return _actor.get()


def current_request_id() -> str | None:
    return _request_id.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextlib.contextmanager
def acting_as(actor: Actor, *, request_id: str | None = None) -> Iterator[Actor]:
    actor_token = _actor.set(actor)
    request_token = _request_id.set(request_id if request_id is not None else _request_id.get())
    try:
        yield actor
    finally:
        _actor.reset(actor_token)
        _request_id.reset(request_token)


def set_actor(actor: Actor) -> None:
    """For middleware: set the actor for the rest of this request's context."""
    _actor.set(actor)


def set_request_id(request_id: str | None) -> None:
    _request_id.set(request_id)


def user_actor(user: object) -> Actor:
    pk = getattr(user, "pk", None)
    username = getattr(user, "get_username", lambda: str(user))()
    return Actor(kind="user", id=str(pk), label=str(username))
