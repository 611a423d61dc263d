"""How many CPU threads each local llama.cpp server gets.

llama.cpp's CPU threads meet at a barrier after every operation and spin while they wait. When a
server has as many threads as there are cores and any other process takes one core, one of its
threads is descheduled and the others spin for whole scheduler time slices at every barrier: on a
2-core machine a 64-token answer went from 0.5 s to about 180 s while one other process kept a core
busy, and stayed at 0.45 s with one thread (``bench/bench_contention.py``). So junto never hands
a server every core.

The rule (``launch.n_threads: auto``, the default):

1. ``cores`` = the CPUs this process may run on (``os.sched_getaffinity``, else ``os.cpu_count``),
   lowered to a cgroup CPU quota when one is set (containers).
2. Keep a reserve free for everything else (the other processes, junto itself, the OS):
   one core up to 8 cores, then one core in eight (``reserve = max(1, cores // 8)``: 16 → 2, 64 → 8).
   A 1-core machine has nothing to spare, so its server gets that one core.
3. Deployments with an explicit ``launch.n_threads: <int>`` take what they ask for first; the rest
   of the usable cores (``cores - reserve``) is shared evenly among the pool's other local
   llama.cpp deployments, each getting at least one thread (rounded down).

The batch threads (prompt processing, ``--n_threads_batch``) follow ``n_threads`` unless set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

Threads = int | Literal["auto"]
AUTO = "auto"


def reserve_cores(cores: int) -> int:
    """Cores kept free of llama.cpp threads: 0 on a 1-core machine, else ``max(1, cores // 8)``."""
    if cores <= 1:
        return 0
    return max(1, cores // 8)


def usable_cores(cores: int) -> int:
    """Cores llama.cpp servers may share: ``cores`` less the reserve, never below 1."""
    return max(1, cores - reserve_cores(cores))


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The tightest CPU quota over this process's cgroup and its ancestors, rounded up to whole cores
    (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``); None when unlimited or unknown."""
    v2, v1 = "", ""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            num, controllers, path = (line.split(":", 2) + ["", ""])[:3]
            if num == "0" and controllers == "":
                v2 = path
            elif "cpu" in controllers.split(","):
                v1 = path
    except OSError:
        pass
    limits = []
    for base, rel, files in ((root, v2, ("cpu.max",)),
                             (root / "cpu", v1, ("cpu.cfs_quota_us", "cpu.cfs_period_us"))):
        parts = [p for p in rel.strip().split("/") if p and p != ".."]
        for depth in range(len(parts), -1, -1):
            folder = base.joinpath(*parts[:depth])
            try:
                if len(files) == 1:
                    quota, period = (folder / files[0]).read_text().split()[:2]
                else:
                    quota, period = ((folder / f).read_text().strip() for f in files)
                if quota not in ("max", "-1"):
                    limits.append(max(1, math.ceil(int(quota) / int(period))))
            except (OSError, ValueError):
                continue
    return min(limits) if limits else None


def available_cores() -> int:
    """The CPUs this process may use: its affinity set (or the CPU count), capped by a cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, limit)
    return max(1, cores)


def plan_threads(settings: Mapping[str, Threads], cores: int) -> dict[str, int]:
    """Threads for each local llama.cpp deployment of a pool.

    ``settings`` maps each such deployment to its ``launch.n_threads`` (an int ≥ 1, or ``"auto"``);
    ``cores`` is what :func:`available_cores` returns. Explicit values are kept; the ``auto`` ones
    share ``usable_cores(cores)`` less the explicit ones evenly, at least one thread each.
    """
    if cores < 1:
        raise ValueError(f"cores must be at least 1 (got {cores})")
    explicit = {name: v for name, v in settings.items() if v != AUTO}
    for name, v in explicit.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: n_threads must be a whole number ≥ 1 or 'auto' (got {v!r})")
    auto = [name for name, v in settings.items() if v == AUTO]
    left = usable_cores(cores) - sum(explicit.values())
    share = max(1, left // len(auto)) if auto else 0
    return {name: explicit[name] if name in explicit else share for name in settings}


def threads_for(setting: Threads, local_deployments: int = 1, cores: int | None = None) -> int:
    """Threads for one deployment sharing the machine with ``local_deployments - 1`` auto ones."""
    names = [f"d{i}" for i in range(max(1, local_deployments))]
    plan = plan_threads({n: (setting if i == 0 else AUTO) for i, n in enumerate(names)},
                        available_cores() if cores is None else cores)
    return plan[names[0]]


def pool_thread_plan(deployments: Iterable, cores: int | None = None) -> dict[str, int]:
    """:func:`plan_threads` for a pool's deployments: the managed llama.cpp ones (others are not planned)."""
    settings = {dep.name: getattr(dep.launch, "n_threads", AUTO)
                for dep in deployments if dep.backend == "llamacpp" and dep.managed}
    if not settings:
        return {}
    return plan_threads(settings, available_cores() if cores is None else cores)


def explain(setting: Threads, threads: int, cores: int, local_deployments: int) -> str:
    """A short phrase for logs: how many threads and why."""
    unit = "thread" if threads == 1 else "threads"
    if setting != AUTO:
        return f"{threads} {unit} (launch.n_threads in the pool file)"
    shared = f", shared by {local_deployments} local llama.cpp servers" if local_deployments > 1 else ""
    return (f"{threads} {unit} (auto: {cores} cores usable by this process, {reserve_cores(cores)} kept free"
            f"{shared})")


THREAD_FLAGS = ("--threads", "-t", "--n_threads")  # llama-server's, then llama-cpp-python's
BATCH_THREAD_FLAGS = ("--threads-batch", "-tb", "--n_threads_batch")


def argv_flag(argv: Iterable[str], names: Iterable[str]) -> str | None:
    """The value of the first of ``names`` on a command line, or None."""
    args, names = list(argv), tuple(names)
    for i, a in enumerate(args[:-1]):
        if a in names:
            return args[i + 1]
    return None


def argv_threads(argv: Iterable[str]) -> int | None:
    """The thread count of a llama.cpp server command line (llama-server or llama-cpp-python), if it has one."""
    value = argv_flag(argv, THREAD_FLAGS)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
    return None
