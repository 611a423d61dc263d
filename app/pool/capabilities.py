"""What a deployment can be asked to do: chat, raw completions, assistant prefill, logprobs, native ``n``, …

Each backend declares its defaults (:meth:`junto.pool.backends.base.ServerBackend.capabilities`); a pool
file may override any of them per deployment (``capabilities: {prefill: true}``). Strategies ask with
:func:`require` before they start, so a missing capability is a clear configuration error naming the
capability, the deployment and what wanted it, never a server's HTTP 400 halfway through a run.

The names (:data:`junto.pool.config.CAPABILITIES`):

* ``chat``: ``/v1/chat/completions``; ``completions``: raw ``/v1/completions`` of a prompt as written;
* ``prefill``: continue an assistant message already begun (vLLM's ``continue_final_message``, or junto
  renders the model's chat template and completes the raw prompt);
* ``logprobs`` / ``top_logprobs``: per-token log probabilities, and the top alternatives at each token;
* ``native_n``: ``n > 1`` in one request sharing the prompt's KV cache;
* ``tokenize``: the server tokenizes text (``POST /tokenize``);
* ``reasoning``: the server itself separates the model's thinking (``reasoning_content``).
"""

from __future__ import annotations

from junto.errors import ConfigError
from junto.pool.config import CAPABILITIES, Deployment

__all__ = ["CAPABILITIES", "capabilities", "defaults", "require", "who_has"]


def defaults(dep: Deployment) -> frozenset[str]:
    """The capabilities ``dep``'s backend (and, for llama.cpp, its server) declares, before overrides."""
    from junto.pool.backends import get_backend

    return get_backend(dep.backend).capabilities(dep)


def capabilities(dep: Deployment) -> frozenset[str]:
    """The backend's defaults with the deployment's ``capabilities`` overrides applied."""
    caps = set(defaults(dep))
    for name, on in dep.capabilities.items():
        (caps.add if on else caps.discard)(name)
    return frozenset(caps)


#: who declares what, for hints: (label, backend, launch.server or None)
_KINDS = (("llamacpp (llama-server)", "llamacpp", "llama-server"),
          ("llamacpp (llama-cpp-python)", "llamacpp", "llama-cpp-python"),
          ("vllm", "vllm", None), ("openai", "openai", None), ("litellm", "litellm", None))


def who_has(cap: str) -> list[str]:
    """The backends (llama.cpp split by server) that declare ``cap`` by default, for hints."""
    from junto.pool.backends import get_backend
    from junto.pool.config import LlamaCppLaunch

    out = []
    for label, backend, server in _KINDS:
        probe = Deployment.model_construct(name="probe", backend=backend, model="probe", url=None,
                                           launch=LlamaCppLaunch(server=server) if server else None, capabilities={})
        if cap in get_backend(backend).capabilities(probe):
            out.append(label)
    return out


def require(dep: Deployment, *caps: str, purpose: str) -> None:
    """Raise :class:`~junto.errors.ConfigError` unless ``dep`` has every capability in ``caps``.

    The message names the first missing capability, the deployment and ``purpose`` (e.g. "strategy
    'thoughtmani'"); the hint says which backends have it and how to declare it in the pool file.
    """
    unknown = [c for c in caps if c not in CAPABILITIES]
    if unknown:
        raise ConfigError(f"{purpose} asks for unknown capability {unknown[0]!r}",
                          hint=f"capabilities are: {', '.join(CAPABILITIES)}")
    have = capabilities(dep)
    for cap in caps:
        if cap in have:
            continue
        if dep.capabilities.get(cap) is False:
            why = "its pool file turns it off (capabilities: {%s: false})" % cap
        else:
            server = f", server {dep.launch.server!r}" if dep.backend == "llamacpp" and dep.launch is not None else ""
            why = f"backend {dep.backend!r}{server} does not declare it"
        backends = who_has(cap)
        hint = (f"use a deployment whose backend has it ({', '.join(backends)})" if backends
                else "no backend declares it by default")
        hint += f", or, if this server does support it, declare it in the pool file: capabilities: {{{cap}: true}}"
        raise ConfigError(f"{purpose} needs {cap!r} on deployment {dep.name!r}, which lacks it: {why}",
                          hint=hint, param=f"deployments[{dep.name}].capabilities.{cap}")
