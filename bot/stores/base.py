"""The store interfaces the engine talks to: tracker stores (events) and lock stores."""

from __future__ import annotations

import abc
import json
import re
from dataclasses import dataclass, field
from typing import Any, AsyncContextManager
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


class StaleTurn(StoreUnavailable):
    """The conversation changed after this turn read it (another turn was saved first): the
    write is refused, nothing of it is saved. The version number read is the turn's fence."""


@dataclass
class Window:
    """What a turn needs of a stored conversation: the latest checkpoint (the state after
    event number `checkpoint["seq"]`, None when there is none) and every event after it."""

    events: list[dict] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None


class TrackerStore(abc.ABC):
    """Keeps each conversation's events (Rasa event dicts), in order, per sender id.

    Events are numbered from 1 in the order they were appended (`seq`)."""

    @abc.abstractmethod
    async def load(self, sender_id: str) -> list[dict]:
        """All events of the conversation, oldest first; [] if unknown."""

    @abc.abstractmethod
    async def append(self, sender_id: str, events: list[dict], *, expected_seq: int | None = None,
                     checkpoint: dict[str, Any] | None = None) -> None:
        """Add `events` at the end of the conversation: all of them or none, order kept.

        expected_seq: the number of events the caller read; if the conversation has another
        number now, raise StaleTurn and save nothing (the fence against a turn that outlived
        its lock). checkpoint: `{"seq", "state"}` to keep as the conversation's checkpoint
        (only with expected_seq, so it always describes these very events)."""

    async def load_window(self, sender_id: str) -> Window:
        """The latest checkpoint and the events after it (bounded work per turn)."""
        return Window(await self.load(sender_id))

    async def load_after(self, sender_id: str, seq: int) -> tuple[list[dict], int]:
        """The events numbered above `seq`, and the number of the latest event."""
        events = await self.load(sender_id)
        return events[max(0, seq):], len(events)

    @abc.abstractmethod
    async def delete(self, sender_id: str) -> bool:
        """Erase every trace of the conversation; True if it existed."""

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


def encode_append(events: list[dict], expected_seq: int | None,
                  checkpoint: dict[str, Any] | None) -> tuple[list[str], tuple[int, str] | None]:
    """The events as JSON, and the checkpoint to keep (only with an expected seq, a compare-and-set
    append). Encoded before touching the database: a bad event fails the whole append up front."""
    encoded = [json.dumps(event) for event in events]
    kept = ((int(checkpoint["seq"]), json.dumps(checkpoint["state"]))
            if checkpoint and expected_seq is not None else None)
    return encoded, kept


class CorruptConversation(StoreUnavailable):
    """A stored event of this conversation cannot be decoded; the turn is refused, not guessed."""


def decode_events(raw: list, where: str) -> list[dict]:
    """JSON rows -> event dicts; a row that cannot be decoded raises CorruptConversation
    (not a 500): not JSON, bad UTF-8, nested too deep for the parser, or not an object."""
    try:
        events = [json.loads(item) for item in raw]
    except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8 in bytes, depth
        raise CorruptConversation(f"store {mask_url(where)} holds an event that cannot be decoded "
                                  f"({type(error).__name__}); the conversation cannot be loaded") from None
    if not all(isinstance(event, dict) for event in events):
        raise CorruptConversation(f"store {mask_url(where)} holds an event that is not a JSON object; "
                                  "the conversation cannot be loaded")
    return events


def decode_checkpoint(raw: Any, seq: int, where: str) -> dict[str, Any] | None:
    """A stored checkpoint (JSON of its state) -> `{"seq", "state"}`; None when there is none."""
    if raw is None or not seq:
        return None
    (state,) = decode_events([raw], where)
    return {"seq": int(seq), "state": state}


def stale(where: str, expected: int, found: int) -> StaleTurn:
    return StaleTurn(f"store {mask_url(where)}: the conversation has {found} events, the turn read "
                     f"{expected}; another turn was saved first, so this one was not")
