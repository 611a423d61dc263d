"""The monitor interface: a score in [0, 1] that the requests so far, taken together, pursue a harmful goal."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def configs_dir() -> Path:
    """junto's configs folder (``configs/`` in a checkout, the ``junto.configs`` package when installed)."""
    from importlib import resources

    return Path(str(resources.files("junto.configs")))


#: characters of one request a monitor reads (the rest is cut): bounds the prompt and the embedding work
MAX_REQUEST_CHARS = 600


@dataclass
class Verdict:
    """``probability``: P(harmful) of the whole request list; ``flagged``: at or over the monitor's threshold."""

    probability: float
    flagged: bool
    monitor: str
    #: the parts that decided (the cascade: which monitor answered; the prompted monitor: its raw logprobs)
    detail: dict[str, Any] = field(default_factory=dict)


class Monitor(ABC):
    """One sequential monitor. ``threshold``: the probability at or above which a list is flagged."""

    name: str = "monitor"
    threshold: float = 0.5

    @abstractmethod
    async def score(self, requests: Sequence[str]) -> Verdict:
        """Score the user's requests so far, oldest first (at least one)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the monitor holds (a pool client)."""


def clip(text: str, limit: int = MAX_REQUEST_CHARS) -> str:
    """One request as monitors read it: whitespace collapsed, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def numbered(requests: Sequence[str]) -> str:
    """``1. first request\\n2. second request ...`` — the list the prompted monitor reads."""
    return "\n".join(f"{i}. {clip(r)}" for i, r in enumerate(requests, 1))
