"""Which conversation a request belongs to (pure logic).

In order (an empty or blank value counts as absent): the ``x-junto-conversation`` header, the OpenAI ``metadata.conversation_id`` (or ``metadata.conversation``)
field, the OpenAI ``user`` field, else the history the client resends: a request whose earlier user messages are
``u1..u(n-1)`` continues the conversation whose last request carried exactly ``u1..u(n-1)``. An explicit id keeps
its own list of requests in the store (it ties together requests that resend nothing); a history key chains from
the previous turn's key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from junto.errors import ConfigError

HEADER = "x-junto-conversation"
MAX_ID_CHARS = 256


@dataclass(frozen=True)
class ConversationKey:
    """``key``: the store key of this turn's state; ``previous``: the key to read the state from (None: new);
    ``explicit``: the client named the conversation (the store keeps its request list)."""

    key: str
    previous: str | None
    explicit: bool
    source: str  # header | metadata | user | history | sdk


def user_texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The text of every user message, oldest first (text parts of multi-part content joined)."""
    out = []
    for m in messages:
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text")
        out.append(content if isinstance(content, str) else "")
    return out


def history_hash(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8", "replace")).digest())
    return h.hexdigest()[:32]


def _given(value: Any) -> bool:
    """An id was sent: anything but None or an empty / blank string (clients send ``user: ""`` for none)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _explicit(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string (got {type(value).__name__})", param=where,
                          hint="send one id per conversation, e.g. a UUID")
    if len(value) > MAX_ID_CHARS:
        raise ConfigError(f"{where} is longer than {MAX_ID_CHARS} characters", param=where,
                          hint="send a shorter id (a UUID is 36 characters)")
    return "c:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def conversation_key(texts: Sequence[str], *, header: str | None = None, metadata: Any = None,
                     user: Any = None, sdk: str | None = None) -> ConversationKey:
    """The conversation of a request with user messages ``texts`` (see the module docstring for the order)."""
    if _given(sdk):
        k = _explicit(sdk, "conversation")
        return ConversationKey(k, k, True, "sdk")
    if _given(header):
        k = _explicit(header, HEADER)
        return ConversationKey(k, k, True, "header")
    if isinstance(metadata, Mapping):
        for field in ("conversation_id", "conversation"):
            if _given(metadata.get(field)):
                k = _explicit(metadata[field], f"metadata.{field}")
                return ConversationKey(k, k, True, "metadata")
    if _given(user):
        k = _explicit(user, "user")
        return ConversationKey(k, k, True, "user")
    prev = "h:" + history_hash(texts[:-1]) if len(texts) > 1 else None
    return ConversationKey("h:" + history_hash(texts), prev, False, "history")
