"""Model-server backends: how to launch a deployment's server and how to talk to it.

Each backend is one module with one class. ``get_backend(name)`` is the registry. A backend that
junto launches implements :meth:`ServerBackend.command`; the others (``openai``, ``litellm``) are
only called, never started.
"""

from __future__ import annotations

from junto.pool.backends.base import ServerBackend
from junto.pool.backends.litellm import LiteLLMBackend
from junto.pool.backends.llamacpp import LlamaCppBackend
from junto.pool.backends.openai import OpenAIBackend
from junto.pool.backends.vllm import VllmBackend

_REGISTRY: dict[str, ServerBackend] = {
    b.name: b for b in (LlamaCppBackend(), VllmBackend(), OpenAIBackend(), LiteLLMBackend())
}


def get_backend(name: str) -> ServerBackend:
    return _REGISTRY[name]


__all__ = ["ServerBackend", "get_backend"]
