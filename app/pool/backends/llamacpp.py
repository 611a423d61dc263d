"""``backend: llamacpp``: a GGUF model on a local llama.cpp server, one of two (``launch.server``).

* ``llama-server`` (the default): llama.cpp's own server, built from the llama-cpp-python sdist by
  ``make install`` — parallel slots (= ``max_concurrency``), continuous batching, prompt cache.
  Command line: :mod:`junto.pool.backends.llama_server`. Chosen as the default by
  ``bench/bench_sampling.py`` (8 concurrent 128-token answers, 2 cores: see
  ``bench/results/sampling.json``).
* ``llama-cpp-python``: the Python binding's OpenAI-compatible server (``python -m llama_cpp.server``).
  It ignores ``n`` (one choice back, so the client fans out ``n`` requests), serializes requests,
  and by default cancels a running stream when a new request arrives — so junto always starts it
  with ``--interrupt_requests False``.

Either way the threads (``--n_threads``/``--threads`` and the batch threads) always come from
:mod:`junto.pool.threads`, never from llama.cpp's all-cores defaults, which collapse when another
process takes a core. llama-server honours ``n`` only up to its slot count (more is an HTTP 400) and
counts the first choice's tokens only in ``usage``: the client sends ``n`` in requests of at most
``slots`` choices and counts every choice's tokens from its per-token logprobs
(:meth:`~junto.pool.client.PoolClient.chat`). llama-cpp-python's server ignores ``n``: the client
fans out ``n`` requests.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from junto.errors import ConfigError
from junto.pool.backends.base import ServerBackend
from junto.pool.backends.llama_server import LlamaServer
from junto.pool.config import Deployment, LlamaCppLaunch
from junto.pool.models import resolve_model_file
from junto.pool.threads import AUTO, threads_for

DEFAULT_SERVER = "llama-server"
LLAMA_SERVER_CAPABILITIES = frozenset({"chat", "completions", "prefill", "logprobs", "top_logprobs", "tokenize",
                                       "native_n"})
LLAMA_CPP_PYTHON_CAPABILITIES = frozenset({"chat", "completions", "prefill", "logprobs", "top_logprobs"})


class LlamaCppBackend(ServerBackend):
    name = "llamacpp"
    native_n = False
    launchable = True

    def __init__(self) -> None:
        self.llama_server = LlamaServer()

    @staticmethod
    def launch_of(dep: Deployment) -> LlamaCppLaunch:
        return dep.launch if isinstance(dep.launch, LlamaCppLaunch) else LlamaCppLaunch()

    def server(self, dep: Deployment) -> str:
        """Which server runs ``dep``: 'llama-server' or 'llama-cpp-python'."""
        return self.launch_of(dep).server

    def capabilities(self, dep: Deployment) -> frozenset[str]:
        """llama-server: chat, completions, prefill (junto renders the GGUF's template), logprobs, top
        logprobs, tokenize (``POST /tokenize``); llama-cpp-python's server the same but tokenize (its
        tokenizer lives under ``/extras``) and native ``n`` (llama-server: up to its slots, every choice's
        tokens counted by the client). Neither separates reasoning (junto starts llama-server with
        ``--reasoning-format none``)."""
        return LLAMA_SERVER_CAPABILITIES if self.server(dep) == "llama-server" else LLAMA_CPP_PYTHON_CAPABILITIES

    def max_native_n(self, dep: Deployment) -> int:
        if dep.managed and self.server(dep) == "llama-server":
            return self.llama_server.max_native_n(dep)
        return 1

    def command(self, dep: Deployment, host: str, port: int, base: Path | None,
                progress: Callable[[str], None]) -> tuple[list[str], dict[str, str]]:
        launch = self.launch_of(dep)
        if launch.server == "llama-server":
            return self.llama_server.command(dep, launch, host, port, base, progress)
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(
                "llama-cpp-python is not installed, so junto cannot start its server ('launch.server: llama-cpp-python')",
                hint="pip install 'junto[llamacpp]' (compiles llama.cpp: about 5 minutes on 2 cores), "
                     "or use 'launch.server: llama-server'",
            )
        model_file = resolve_model_file(dep.model, base, progress=progress)
        argv = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model_file),
            "--model_alias", dep.name,
            "--host", host,
            "--port", str(port),
            "--n_ctx", str(dep.context_length),
            "--n_batch", str(launch.n_batch),
            "--interrupt_requests", "False",
        ]
        # never llama.cpp's defaults (half the CPUs, all of them for the batch): see junto.pool.threads.
        # The launcher resolves 'auto' for the whole pool; a lone call plans for this deployment alone.
        n_threads = threads_for(launch.n_threads)
        n_batch_threads = n_threads if launch.n_threads_batch == AUTO else int(launch.n_threads_batch)
        argv += ["--n_threads", str(n_threads), "--n_threads_batch", str(n_batch_threads)]
        if launch.chat_format:
            argv += ["--chat_format", launch.chat_format]
        argv += launch.extra_args
        return argv, dict(launch.env)
