"""vLLM's OpenAI-compatible server, launched from its own virtualenv.

vLLM pins its own torch and transformers, so it never shares junto's environment: the
interpreter comes from the deployment's ``launch.python`` or ``$JUNTO_VLLM_PYTHON``. It is started
with ``python -m vllm.entrypoints.openai.api_server`` (the CPU build's ``vllm`` console script looks
up metadata for a ``vllm`` distribution that it is not). vLLM honours ``n > 1`` natively.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from junto.errors import ConfigError
from junto.pool.backends.base import ServerBackend
from junto.pool.config import Deployment, VllmLaunch
from junto.pool.models import EMBEDDED_PREFIX


class VllmBackend(ServerBackend):
    name = "vllm"
    native_n = True
    launchable = True

    def python(self, launch: VllmLaunch) -> str:
        py = launch.python or os.environ.get("JUNTO_VLLM_PYTHON")
        if not py:
            raise ConfigError(
                "no Python interpreter with vLLM configured",
                hint="set 'launch.python' in the pool file or JUNTO_VLLM_PYTHON to the vLLM virtualenv's bin/python",
            )
        if not Path(py).exists():
            raise ConfigError(f"vLLM python not found: {py}", hint="build the vLLM virtualenv first (see README)")
        return py

    def command(self, dep: Deployment, host: str, port: int, base: Path | None,
                progress: Callable[[str], None]) -> tuple[list[str], dict[str, str]]:
        launch = dep.launch if isinstance(dep.launch, VllmLaunch) else VllmLaunch()
        if dep.model.startswith(EMBEDDED_PREFIX):
            raise ConfigError(
                f"deployment {dep.name!r}: vLLM cannot load the embedded GGUF directly",
                hint="point 'model' at a Hugging Face-format model directory (safetensors + tokenizer)",
            )
        model = dep.model
        local = Path(model).expanduser()
        if not local.is_absolute() and base is not None and (base / local).exists():
            model = str(base / local)
        argv = [
            self.python(launch), "-m", "vllm.entrypoints.openai.api_server",
            "--model", model,
            "--served-model-name", dep.name,
            "--host", host,
            "--port", str(port),
            "--max-model-len", str(launch.max_model_len or dep.context_length),
            "--dtype", launch.dtype,
            "--tensor-parallel-size", str(launch.tensor_parallel_size),
        ]
        argv.append("--enable-prefix-caching" if launch.enable_prefix_caching else "--no-enable-prefix-caching")
        if launch.gpu_memory_utilization is not None:
            argv += ["--gpu-memory-utilization", str(launch.gpu_memory_utilization)]
        argv += launch.extra_args
        env = dict(launch.env)
        if launch.device is not None and "CUDA_VISIBLE_DEVICES" not in env:
            env["CUDA_VISIBLE_DEVICES"] = str(launch.device)
        return argv, env
