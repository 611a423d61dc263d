"""llama.cpp through llama-cpp-python's OpenAI-compatible server (the lightweight local backend).

Known behaviour that shapes this module: the server ignores ``n`` (one choice back, so the client
fans out ``n`` requests), serializes requests, and by default cancels a running stream when a new
request arrives — so junto always starts it with ``--interrupt_requests False``.
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
        if launch.n_threads:
            argv += ["--n_threads", str(launch.n_threads)]
        if launch.chat_format:
            argv += ["--chat_format", launch.chat_format]
        argv += launch.extra_args
        return argv, dict(launch.env)
