"""llama.cpp through llama-cpp-python's OpenAI-compatible server (the lightweight local backend).

Known behaviour that shapes this module: the server ignores ``n`` (one choice back, so the client
fans out ``n`` requests), serializes requests, and by default cancels a running stream when a new
request arrives — so junto always starts it with ``--interrupt_requests False``. Its threads
(``--n_threads``, ``--n_threads_batch``) always come from :mod:`junto.pool.threads`, never from
llama.cpp's all-cores defaults, which collapse when another process takes a core.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from junto.errors import ConfigError
from junto.pool.backends.base import ServerBackend
from junto.pool.config import Deployment, LlamaCppLaunch
from junto.pool.models import resolve_model_file
from junto.pool.threads import AUTO, threads_for


class LlamaCppBackend(ServerBackend):
    name = "llamacpp"
    native_n = False
    launchable = True

    def command(self, dep: Deployment, host: str, port: int, base: Path | None,
                progress: Callable[[str], None]) -> tuple[list[str], dict[str, str]]:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(
                "llama-cpp-python is not installed, so junto cannot start llama.cpp servers",
                hint="pip install 'junto[llamacpp]' (compiles llama.cpp: about 5 minutes on 2 cores)",
            )
        launch = dep.launch if isinstance(dep.launch, LlamaCppLaunch) else LlamaCppLaunch()
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
