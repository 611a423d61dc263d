"""Any OpenAI-compatible endpoint that junto does not start (a remote vLLM, a hosted API, ...).

Called directly over junto's shared HTTP client. ``n`` is assumed to be honoured natively, as the
OpenAI API specifies; the client falls back to concurrent requests if fewer choices come back.
"""

from __future__ import annotations

from junto.pool.backends.base import ServerBackend


class OpenAIBackend(ServerBackend):
    name = "openai"
    native_n = True
    #: an unknown remote: chat and logprobs only; the rest is declared in the pool file (capabilities: {...})
    default_capabilities = frozenset({"chat", "logprobs"})
