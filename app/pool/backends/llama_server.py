"""llama.cpp's own ``llama-server``: parallel slots and continuous batching (the default llama.cpp server).

llama-cpp-python's server answers one request at a time, so k samples cost k answers in a row.
``llama-server`` keeps ``-np`` slots, each with its own share of the KV cache, and decodes every
busy slot in one batch per step (continuous batching): on 2 cores (1 thread by junto's policy), 8
concurrent 128-token answers of Qwen2.5-Coder-0.5B took 3.0× the time of one, against 7.8× on
llama-cpp-python's server (37 against 13 tokens/s; ``bench/results/sampling.json``). It also
caches prompts per slot (a slot keeps the prompt it last served; ``--cache-ram`` keeps more in
memory), serves raw completions (``/completion``), ``/tokenize``, ``/apply-template`` and logprobs,
and reports ``usage`` in streams when asked (``stream_options.include_usage``).

It is built from the llama-cpp-python sdist that junto pins (:mod:`junto.pool.llamaserver_build`,
run by ``make install``); :func:`~junto.pool.llamaserver_build.find_binary` says where it is.

What junto passes (llama-server's defaults in brackets):

* ``--parallel`` = the deployment's ``max_concurrency`` [auto: 4], so the client's concurrency
  limit and the server's slots agree; ``--ctx-size`` = ``context_length × slots`` [the model's
  training context], so every slot gets the deployment's ``context_length`` (the KV cache is split
  evenly between slots; ``--kv-unified`` is off when the slot count is given);
* ``--threads`` / ``--threads-batch`` from :mod:`junto.pool.threads` [all cores: collapses as soon
  as another process takes one];
* ``--cont-batching`` [on], ``--cache-prompt`` [on], ``--cache-ram 256`` MiB [8192: too much
  for a pool of small servers], ``--batch-size`` = ``launch.n_batch`` [2048];
* no repeat penalty (llama-server's default 1.0, as OpenAI and vLLM): llama-cpp-python's server
  defaults to 1.1, so greedy answers of the two servers can differ (a request may send
  ``repeat_penalty``; llama-server also counts the prompt's tokens in the penalty window, so 1.1
  there is not llama-cpp-python's 1.1 either);
* ``--reasoning-format none`` [auto]: ``<think>`` text stays in ``content`` as with
  llama-cpp-python, for junto's answer extraction to see; ``--no-webui`` (built without one);
* ``--cors-origins localhost --no-cors-credentials`` [``*`` with credentials]: junto calls it from
  Python, never from a browser, so no other web origin may read what it answers;
* ``--chat-template`` = ``launch.chat_format`` when set (llama.cpp's built-in template names:
  chatml, llama3, gemma, …); else the GGUF's own template (jinja);
* then ``launch.extra_args`` verbatim (last, so they win).

``n``: this server honours ``n`` up to its slot count (``n_cmpl``: the prompt is prefilled once and
its KV copied to the other slots) and refuses a larger one with HTTP 400; its ``usage`` counts the
first choice's completion tokens only. So the client sends ``n`` in requests of at most
:meth:`LlamaServer.max_native_n` choices, each holding that many of the deployment's concurrency
permits, and counts every choice's tokens from its per-token logprobs (exact). One ``n = 8`` request
was faster than 8 concurrent ones (2.8× against 3.1× a greedy answer; ``bench/results/sampling.json``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from junto.pool.config import Deployment, LlamaCppLaunch
from junto.pool.models import resolve_model_file
from junto.pool.threads import AUTO, threads_for

#: host-memory prompt cache per server, MiB (llama-server's default is 8192)
CACHE_RAM_MIB = 256


class LlamaServer:
    """The command line of one ``llama-server`` (used by the ``llamacpp`` backend for ``launch.server: llama-server``)."""

    name = "llama-server"

    @staticmethod
    def slots(dep: Deployment) -> int:
        return max(1, dep.max_concurrency)

    def max_native_n(self, dep: Deployment) -> int:
        """The largest ``n`` one request may ask for (more is an HTTP 400): the slot count."""
        return self.slots(dep)

    def command(self, dep: Deployment, launch: LlamaCppLaunch, host: str, port: int, base: Path | None,
                progress: Callable[[str], None]) -> tuple[list[str], dict[str, str]]:
        from junto.pool.llamaserver_build import find_binary

        binary = find_binary(launch.server_binary, base)  # before the model: a missing binary fails fast
        model_file = resolve_model_file(dep.model, base, progress=progress)
        slots = self.slots(dep)
        # never llama.cpp's all-cores default (junto.pool.threads); the launcher resolves 'auto' pool-wide
        n_threads = threads_for(launch.n_threads)
        n_batch_threads = n_threads if launch.n_threads_batch == AUTO else int(launch.n_threads_batch)
        argv = [
            str(binary),
            "--model", str(model_file),
            "--alias", dep.name,
            "--host", host,
            "--port", str(port),
            "--parallel", str(slots),
            "--ctx-size", str(dep.context_length * slots),
            "--cont-batching",
            "--cache-prompt",
            "--cache-ram", str(CACHE_RAM_MIB),
            "--batch-size", str(launch.n_batch),
            "--threads", str(n_threads),
            "--threads-batch", str(n_batch_threads),
            "--reasoning-format", "none",
            "--no-webui",
            "--cors-origins", "localhost",  # a web page elsewhere cannot read its answers (default: *)
            "--no-cors-credentials",
            "--log-colors", "off",
        ]
        if launch.chat_format:
            argv += ["--chat-template", launch.chat_format]
        argv += launch.extra_args
        return argv, dict(launch.env)
