"""vLLM's OpenAI-compatible server, launched from its own virtualenv.

vLLM (Kwon et al., "Efficient Memory Management for Large Language Model Serving with
PagedAttention", SOSP 2023) serves ``n > 1`` natively: one request prefills the prompt once and
samples ``n`` continuations from the shared KV cache; with automatic prefix caching a repeated
prompt prefix is not recomputed either. Those are the behaviours junto's strategies exploit.

What junto passes (vLLM's defaults in brackets): ``--served-model-name`` = the deployment name,
``--max-model-len`` [model's maximum; junto: the deployment's ``context_length``], ``--dtype``
[auto], ``--enable-prefix-caching`` [on in V1; junto states it],
``--enable-prompt-tokens-details`` [off; junto reads the cached prompt tokens from usage],
``--gpu-memory-utilization`` [0.9] so several models share one GPU, ``--tensor-parallel-size`` [1], ``--data-parallel-size``
[1], ``--max-num-seqs``, then ``extra_args`` verbatim.

The interpreter comes from ``launch.python``, ``$JUNTO_VLLM_PYTHON`` or the venv of
``junto vllm install`` (:mod:`junto.pool.vllm_env`). vLLM is started with
``python -m vllm.entrypoints.openai.api_server`` (the CPU build's ``vllm`` console script looks up
metadata for a ``vllm`` distribution that it is not).

On the CPU build, three environment variables matter (vllm/envs.py of 0.32.0):
``VLLM_CPU_KVCACHE_SPACE`` (GiB of KV cache; default 4), ``VLLM_CPU_OMP_THREADS_BIND`` (``auto``
pins one OpenMP thread per physical core and reserves cores for the scheduler process; ``nobind``
leaves placement to the OS, which suits a shared machine) and ``VLLM_CPU_NUM_OF_RESERVED_CPU``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from junto.errors import ConfigError
from junto.pool.backends.base import ServerBackend
from junto.pool.config import Deployment, VllmLaunch
from junto.pool.models import EMBEDDED_PREFIX

#: flags junto sets from typed fields; passing them again in ``extra_args`` is a configuration error
MANAGED_FLAGS = {
    "--model": "model", "--served-model-name": "name (the deployment's name is its served name)",
    "--host": "launch.host", "--port": "launch.port", "--max-model-len": "launch.max_model_len",
    "--dtype": "launch.dtype", "--tensor-parallel-size": "launch.tensor_parallel_size",
    "-tp": "launch.tensor_parallel_size", "--data-parallel-size": "launch.data_parallel_size",
    "-dp": "launch.data_parallel_size", "--gpu-memory-utilization": "launch.gpu_memory_utilization",
    "--enable-prefix-caching": "launch.enable_prefix_caching",
    "--no-enable-prefix-caching": "launch.enable_prefix_caching", "--max-num-seqs": "launch.max_num_seqs",
}


class VllmBackend(ServerBackend):
    name = "vllm"
    native_n = True
    launchable = True
    #: no "reasoning": vLLM separates thinking only when started with --reasoning-parser (declare it then)
    default_capabilities = frozenset({"chat", "completions", "prefill", "logprobs", "top_logprobs", "native_n",
                                      "tokenize"})

    def python(self, launch: VllmLaunch) -> str:
        from junto.pool.vllm_env import resolve_python

        return resolve_python(launch.python)

    def command(self, dep: Deployment, host: str, port: int, base: Path | None,
                progress: Callable[[str], None]) -> tuple[list[str], dict[str, str]]:
        from junto.pool.convert import EMBEDDED_HF_PREFIX, resolve_hf_model

        launch = dep.launch if isinstance(dep.launch, VllmLaunch) else VllmLaunch()
        if dep.model.startswith(EMBEDDED_PREFIX):
            key = dep.model[len(EMBEDDED_PREFIX):]
            raise ConfigError(
                f"deployment {dep.name!r}: vLLM cannot load the embedded GGUF directly",
                hint=f"use 'model: {EMBEDDED_HF_PREFIX}{key}' (converted to safetensors on first use, "
                     f"or now with `junto models convert {key}`), or a Hugging Face model directory",
            )
        python = self.python(launch)
        model = dep.model
        if model.startswith(EMBEDDED_HF_PREFIX):
            model = resolve_hf_model(model, python=launch.python, progress=progress)
        else:
            local = Path(model).expanduser()
            if not local.is_absolute() and base is not None and (base / local).exists():
                model = str(base / local)
        argv = [
            python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", model,
            "--served-model-name", dep.name,
            "--host", host,
            "--port", str(port),
            "--max-model-len", str(launch.max_model_len or dep.context_length),
            "--dtype", launch.dtype,
            "--tensor-parallel-size", str(launch.tensor_parallel_size),
        ]
        if launch.data_parallel_size > 1:
            argv += ["--data-parallel-size", str(launch.data_parallel_size)]
        argv.append("--enable-prefix-caching" if launch.enable_prefix_caching else "--no-enable-prefix-caching")
        # usage.prompt_tokens_details.cached_tokens: how much of a resent prompt the prefix cache served
        # (junto.pool.continuation records it per segment)
        argv.append("--enable-prompt-tokens-details")
        if launch.gpu_memory_utilization is not None:
            argv += ["--gpu-memory-utilization", str(launch.gpu_memory_utilization)]
        if launch.max_num_seqs is not None:
            argv += ["--max-num-seqs", str(launch.max_num_seqs)]
        argv += launch.extra_args
        return argv, self.environment(launch)

    @staticmethod
    def environment(launch: VllmLaunch) -> dict[str, str]:
        env: dict[str, str] = {}
        devices = launch.device_list()
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in devices)
        if launch.cpu_kvcache_space_gib is not None:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(launch.cpu_kvcache_space_gib)
        if launch.cpu_threads_bind is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = launch.cpu_threads_bind
        if launch.cpu_reserved_cores is not None:
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(launch.cpu_reserved_cores)
        # no usage reports from servers junto starts
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        env.update(launch.env)  # the pool file has the last word
        return env

    def startup_timeout(self, dep: Deployment) -> float:
        return getattr(dep.launch, "startup_timeout_s", 900.0)
