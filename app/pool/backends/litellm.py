"""Providers that are not OpenAI-compatible (Anthropic, Bedrock, Gemini, ...) through litellm.

litellm costs ~3 ms per call against ~0.7 ms for a raw HTTP call, so it is used only for breadth,
never for OpenAI-compatible servers. ``model`` is a litellm model string (``anthropic/claude-...``).
"""

from __future__ import annotations

from junto.pool.backends.base import ServerBackend
from junto.pool.config import Deployment


class LiteLLMBackend(ServerBackend):
    name = "litellm"
    native_n = False
    openai_compatible = False
    default_capabilities = frozenset({"chat"})

    def request_model(self, dep: Deployment) -> str:
        return dep.model
