"""The store interfaces: small async contracts that gateways and strategies depend on, never on a backend.

Each interface has an in-process implementation (the default: one process, nothing to run) and a
Redis one (several gateway replicas share it); both pass the same contract tests
(``tests/scaleout/test_store_contract.py``). Stores are built from configuration by
:func:`junto.stores.build_stores` and handed to ``Junto`` and ``create_app``; nothing below them
constructs one.

* :class:`RateLimitStore`: per-client token buckets (requests and tokens per minute).
* :class:`CooldownStore`: which deployments a replica has cooled down after failures, with expiry.
* :class:`ConversationStore`: per-conversation state and an event log, with a time to live.
* :class:`ExperienceRecords`: raw records of solved queries, newest first, with expiry, shared across replicas (the
  experience memory with retrieval is :class:`junto.memory.experience.ExperienceStore`).

Values are JSON (dicts of str, numbers, lists, bools, None): what one replica writes, another —
perhaps another version of junto — reads.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any


class RateLimitStore(ABC):
    """Token buckets per client ``who``: ``rpm`` requests and ``tpm`` tokens per minute (None: no limit).

    A bucket holds at most one minute's allowance and refills continuously; a client never seen is full.
    """

    @abstractmethod
    async def check(self, who: str, rpm: int | None, tpm: int | None) -> int:
        """Admit one request: 0 (and one request is taken), or the whole seconds to wait (Retry-After)."""

    @abstractmethod
    async def charge_tokens(self, who: str, tpm: int | None, tokens: int) -> None:
        """Charge ``tokens`` after an answer (the count is only known then); the bucket may go negative."""


class CooldownStore(ABC):
    """Cool-downs announced by replicas: ``deployment`` is skipped until its entry expires or is cleared."""

    @abstractmethod
    async def cool(self, deployment: str, seconds: float, origin: str) -> None:
        """``origin`` (a replica id) saw ``deployment`` fail: skip it for ``seconds`` (replaces any entry)."""

    @abstractmethod
    async def clear(self, deployment: str) -> None:
        """``deployment`` answered again: end its cool-down everywhere."""

    @abstractmethod
    async def cooling(self, deployments: Sequence[str]) -> dict[str, float]:
        """Of ``deployments``, those cooling now: name → seconds left."""


class ConversationStore(ABC):
    """State kept across the turns of one conversation (for monitors): a JSON object and an event log.

    Every write renews the conversation's time to live (``ttl_s``; default: the store's).
    """

    @abstractmethod
    async def get(self, conversation_id: str) -> dict[str, Any] | None:
        """The conversation's state, or None (never written, expired or deleted)."""

    @abstractmethod
    async def put(self, conversation_id: str, state: Mapping[str, Any], ttl_s: float | None = None) -> None:
        """Replace the conversation's state."""

    @abstractmethod
    async def append(self, conversation_id: str, event: Mapping[str, Any], ttl_s: float | None = None) -> int:
        """Add an event to the conversation's log; returns the log's length (oldest dropped past the cap)."""

    @abstractmethod
    async def events(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's events, oldest first."""

    @abstractmethod
    async def delete(self, conversation_id: str) -> None:
        """Forget the conversation (state and events)."""


class ExperienceRecords(ABC):
    """Experience memory: records of past queries and what solved them.

    Retrieval (dense, BM25) is pure logic over what :meth:`recent` returns; the store only keeps,
    expires and lists. Each record gets an ``id`` and a ``created`` time (seconds since the epoch).
    """

    @abstractmethod
    async def add(self, record: Mapping[str, Any], ttl_s: float | None = None) -> str:
        """Keep ``record``; returns its id. The oldest records go first past the store's cap."""

    @abstractmethod
    async def get(self, record_id: str) -> dict[str, Any] | None:
        """One record (with ``id`` and ``created``), or None."""

    @abstractmethod
    async def recent(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Up to ``limit`` records, newest first."""

    @abstractmethod
    async def delete(self, record_id: str) -> None:
        """Forget one record."""


def dumps(value: Mapping[str, Any], what: str) -> str:
    """JSON text of ``value``; a TypeError naming ``what`` when it is not plain JSON data."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping (got {type(value).__name__})")
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be plain JSON data (str, numbers, bools, None, lists, dicts): {exc}") from None
