"""The interface every backend implements."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from junto.pool.config import Deployment


class ServerBackend:
    """How one kind of deployment is launched (if junto launches it) and called.

    ``native_n``: the server honours ``n > 1`` in one request (vLLM does, sharing the prompt's
    KV cache; llama-cpp-python's server ignores ``n`` and returns one choice).
    ``openai_compatible``: called directly over HTTP on the hot path; otherwise through litellm.
    """

    name: str = ""
    native_n: bool = True
    openai_compatible: bool = True
    launchable: bool = False
    #: what the server can be asked to do (junto.pool.capabilities; a pool file may override it per deployment)
    default_capabilities: frozenset[str] = frozenset({"chat"})

    def request_model(self, dep: Deployment) -> str:
        """The ``model`` field sent in requests."""
        return dep.name if dep.managed else dep.model

    def capabilities(self, dep: Deployment) -> frozenset[str]:
        """The capabilities this backend declares for ``dep`` (before the pool file's overrides)."""
        return self.default_capabilities

    def max_native_n(self, dep: Deployment) -> int:
        """The most choices one request may ask for (``n``); 1: the server ignores ``n``, fan out instead.
        llama-server honours ``n`` up to its slot count and refuses more (HTTP 400)."""
        return 1_000_000 if self.native_n else 1

    def command(self, dep: Deployment, host: str, port: int, base: Path | None,
                progress: Callable[[str], None]) -> tuple[list[str], dict[str, str]]:
        """The argv and extra environment that start this deployment's server."""
        raise NotImplementedError(f"backend {self.name!r} is not launched by junto")

    def startup_timeout(self, dep: Deployment) -> float:
        return getattr(dep.launch, "startup_timeout_s", 120.0)
