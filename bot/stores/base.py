"""The store interfaces the engine talks to: tracker stores (events) and lock stores."""

from __future__ import annotations

import json

import abc
import re
from typing import AsyncContextManager
from urllib.parse import urlsplit, urlunsplit


class StoreUnavailable(Exception):
    """A store could not be reached or failed mid-operation; nothing was saved.

    The message names the store by its URL with any password masked, so it is safe
    to log and to show an operator.
    """


def mask_url(url: str) -> str:
    """Return `url` with its password replaced by `***` (``postgresql://user:***@host/db``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def unavailable(url: str, error: BaseException, password: str | None = None) -> StoreUnavailable:
    """Build the StoreUnavailable for `error` without leaking the password or event data."""
    # Database exceptions (SQLAlchemy's in particular) quote statements and parameters, which
    # hold conversation text; keep only the driver's own message.
    cause = getattr(error, "orig", None) or error
    detail = f"{type(cause).__name__}: {cause}".splitlines()[0]
    if password:
        detail = detail.replace(password, "***")
    return StoreUnavailable(f"store {mask_url(url)} is unavailable ({detail})")


class TrackerStore(abc.ABC):
    """Keeps each conversation's events (Rasa event dicts), in order, per sender id."""

    @abc.abstractmethod
    async def load(self, sender_id: str) -> list[dict]:
        """All events of the conversation, oldest first; [] if unknown."""

    @abc.abstractmethod
    async def append(self, sender_id: str, events: list[dict]) -> None:
        """Add `events` at the end of the conversation: all of them or none, order kept."""

    @abc.abstractmethod
    async def delete(self, sender_id: str) -> bool:
        """Erase every trace of the conversation; True if it existed."""

    @abc.abstractmethod
    async def exists(self, sender_id: str) -> bool:
        """True if the conversation has at least one event."""

    @abc.abstractmethod
    async def senders(self) -> list[str]:
        """The ids of all stored conversations."""

    @abc.abstractmethod
    async def purge(self, older_than: float) -> int:
        """Delete conversations whose latest event is older than `older_than` (unix seconds)."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be reached."""

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""


class LockStore(abc.ABC):
    """Per-conversation mutual exclusion, first come first served."""

    @abc.abstractmethod
    def lock(self, sender_id: str, timeout: float = 30.0) -> AsyncContextManager[None]:
        """Hold the conversation's lock for the `async with` block.

        Waiters get the lock in the order they asked for it. `timeout` is the longest a
        holder may keep it: after that the holder is presumed dead (a crashed worker) and
        the next waiter goes ahead.
        """

    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be reached."""

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""


def event_timestamp(event: dict, default: float) -> float:
    """The event's `timestamp` as a float, or `default` if it has none."""
    value = event.get("timestamp")
    return float(value) if isinstance(value, (int, float)) else default


class CorruptConversation(StoreUnavailable):
    """A stored event of this conversation cannot be decoded; the turn is refused, not guessed."""


def decode_events(raw: list, where: str) -> list[dict]:
    """JSON rows -> event dicts; a row that is not JSON raises CorruptConversation (not a 500)."""
    try:
        return [json.loads(item) for item in raw]
    except ValueError as error:  # JSONDecodeError, bad UTF-8 in bytes
        raise CorruptConversation(f"store {mask_url(where)} holds an event that is not valid JSON "
                                  f"({type(error).__name__}); the conversation cannot be loaded") from None
