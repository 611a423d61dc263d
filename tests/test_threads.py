"""The thread policy of local llama.cpp servers (junto.pool.threads), the pool-file field, and the real server's argv."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from junto.errors import ConfigError
from junto.pool import threads as th
from junto.pool.config import load_pool, parse_pool
from junto.pool.threads import (BATCH_THREAD_FLAGS, THREAD_FLAGS, argv_flag, argv_threads, available_cores, cgroup_cpu_limit, plan_threads, pool_thread_plan,
                                reserve_cores, threads_for, usable_cores)


@pytest.mark.parametrize("cores, reserve, usable", [(1, 0, 1), (2, 1, 1), (3, 1, 2), (4, 1, 3), (8, 1, 7),
                                                    (16, 2, 14), (64, 8, 56)])
def test_reserve_keeps_a_core_free_on_small_machines(cores, reserve, usable):
    assert reserve_cores(cores) == reserve
    assert usable_cores(cores) == usable
    if 2 <= cores <= 4:
        assert cores - usable >= 1


@pytest.mark.parametrize("cores, local, each", [
    (1, 1, 1), (1, 2, 1), (1, 3, 1),
    (2, 1, 1), (2, 2, 1), (2, 3, 1),      # the measured case: one thread per server on 2 cores
    (4, 1, 3), (4, 2, 1), (4, 3, 1),
    (16, 1, 14), (16, 2, 7), (16, 3, 4),
])
def test_auto_shares_the_usable_cores(cores, local, each):
    plan = plan_threads({f"d{i}": "auto" for i in range(local)}, cores)
    assert plan == {f"d{i}": each for i in range(local)}
    assert all(n >= 1 for n in plan.values())
    if cores > 1 and cores - reserve_cores(cores) >= local:
        assert sum(plan.values()) <= usable_cores(cores) < cores  # the reserve stays free


@pytest.mark.parametrize("settings, cores, expected", [
    ({"a": 2}, 2, {"a": 2}),                                 # explicit wins, even on a small machine
    ({"a": 8}, 1, {"a": 8}),
    ({"a": 4, "b": "auto"}, 16, {"a": 4, "b": 10}),          # the auto one gets what is left of 14
    ({"a": 4, "b": "auto", "c": "auto"}, 16, {"a": 4, "b": 5, "c": 5}),
    ({"a": 2, "b": "auto"}, 2, {"a": 2, "b": 1}),            # nothing left: still one thread
    ({"a": 1, "b": 1}, 4, {"a": 1, "b": 1}),
])
def test_explicit_overrides(settings, cores, expected):
    assert plan_threads(settings, cores) == expected


@pytest.mark.parametrize("bad", [0, -1, "many", True, 1.5])
def test_plan_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="n_threads"):
        plan_threads({"a": bad}, 4)
    with pytest.raises(ValueError):
        plan_threads({"a": "auto"}, 0)


def test_threads_for_one_deployment():
    assert threads_for("auto", 1, cores=2) == 1
    assert threads_for("auto", 1, cores=16) == 14
    assert threads_for("auto", 2, cores=16) == 7
    assert threads_for(3, 2, cores=16) == 3


@pytest.mark.parametrize("affinity", [{0}, {0, 1}, {0, 1, 2, 3}, set(range(16))])
def test_cores_come_from_the_affinity_set(monkeypatch, affinity):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: affinity, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(th, "cgroup_cpu_limit", lambda: None)
    assert available_cores() == len(affinity)


def test_cores_fall_back_to_cpu_count_and_obey_a_cgroup_quota(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(th, "cgroup_cpu_limit", lambda: None)
    assert available_cores() == 8
    monkeypatch.setattr(th, "cgroup_cpu_limit", lambda: 3)
    assert available_cores() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    monkeypatch.setattr(th, "cgroup_cpu_limit", lambda: None)
    assert available_cores() == 1


@pytest.mark.parametrize("text, expected", [("max 100000", None), ("150000 100000", 2), ("200000 100000", 2),
                                            ("50000 100000", 1), ("garbage", None)])
def test_cgroup_quota_parsing(tmp_path, text, expected):
    (tmp_path / "cpu.max").write_text(text + "\n")
    assert cgroup_cpu_limit(tmp_path) == expected
    assert cgroup_cpu_limit(tmp_path / "absent") is None


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("250000\n")
    assert cgroup_cpu_limit(tmp_path) == 3
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # the tightest of the two wins
    assert cgroup_cpu_limit(tmp_path) == 1


def llamacpp(name: str, **launch) -> dict:
    dep = {"name": name, "backend": "llamacpp", "model": "embedded:smollm2-135m-instruct"}
    if launch:
        dep["launch"] = launch
    return dep


def test_pool_plan_counts_only_local_llamacpp_servers():
    pool = parse_pool({"name": "p", "deployments": [
        llamacpp("a"), llamacpp("b", n_threads="auto"), llamacpp("c", n_threads=2),
        {"name": "remote", "backend": "llamacpp", "model": "m", "url": "http://127.0.0.1:9/v1"},
        {"name": "o", "backend": "openai", "model": "m", "url": "http://127.0.0.1:9/v1"},
    ]})
    assert pool.deployment("a").launch.n_threads == "auto"  # the default
    assert pool_thread_plan(pool.deployments, cores=16) == {"a": 6, "b": 6, "c": 2}
    assert pool_thread_plan(pool.deployments, cores=2) == {"a": 1, "b": 1, "c": 2}
    assert pool_thread_plan([], cores=2) == {}


@pytest.mark.parametrize("field", ["n_threads", "n_threads_batch"])
@pytest.mark.parametrize("bad", [0, -2, "many", True, 2.5, [1]])
def test_pool_file_rejects_bad_thread_values(field, bad):
    with pytest.raises(ConfigError) as err:
        parse_pool({"name": "p", "deployments": [llamacpp("a", **{field: bad})]}, "pool.yaml")
    msg = err.value.message
    assert f"deployments[0].launch.{field}" in msg and "'auto'" in msg
    assert msg.count("\n") == 0, "one error line per bad field"


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("AUTO", "auto"), (None, "auto"), (1, 1), (12, 12)])
def test_pool_file_accepts_thread_values(value, expected):
    pool = parse_pool({"name": "p", "deployments": [llamacpp("a", n_threads=value, n_threads_batch=value)]})
    assert pool.deployments[0].launch.n_threads == expected
    assert pool.deployments[0].launch.n_threads_batch == expected


@pytest.mark.parametrize("name", ["embedded", "embedded-pair"])
def test_shipped_pools_use_the_policy(name):
    pool = load_pool(name)
    assert all(d.launch.n_threads == "auto" for d in pool.deployments if d.backend == "llamacpp")
    text = Path(pool.source).read_text()
    assert "n_threads: auto" in text


def test_backend_argv_carries_threads_and_batch_threads(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    from junto.pool.backends import get_backend

    monkeypatch.setattr(th, "available_cores", lambda: 16)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")

    def argv(**launch):
        dep = parse_pool({"name": "p", "deployments": [{"name": "a", "backend": "llamacpp", "model": str(model),
                                                        "launch": launch}]}).deployments[0]
        return get_backend("llamacpp").command(dep, "127.0.0.1", 8123, None, lambda _m: None)[0]

    def flag(args, name):  # llama-server's flag or llama-cpp-python's, whichever server the pool runs
        return argv_flag(args, THREAD_FLAGS if name == "--n_threads" else BATCH_THREAD_FLAGS)

    a = argv()  # alone on 16 cores: 14
    assert flag(a, "--n_threads") == "14" and flag(a, "--n_threads_batch") == "14"
    a = argv(n_threads=3)
    assert flag(a, "--n_threads") == "3" and flag(a, "--n_threads_batch") == "3"
    a = argv(n_threads=3, n_threads_batch=5)
    assert flag(a, "--n_threads") == "3" and flag(a, "--n_threads_batch") == "5"
    assert argv_threads(a) == 3 and argv_threads(["x"]) is None


def cmdline(pid: int) -> list[str]:
    return [c.decode() for c in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if c]


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_real_embedded_server_runs_with_the_planned_threads(embedded_pool, state_root):
    from junto.pool.launcher import Launcher

    pool, _ = embedded_pool
    launcher = Launcher(pool, state_root)
    rec = launcher.records()["smollm2-135m"]
    expected = pool_thread_plan(pool.deployments)["smollm2-135m"]
    args = cmdline(rec.pid)
    assert argv_flag(args, THREAD_FLAGS) == str(expected)
    assert argv_flag(args, BATCH_THREAD_FLAGS) == str(expected)
    cores = available_cores()
    if cores >= 2:
        assert expected < cores, "a core stays free"
    (st,) = launcher.status()
    assert st.detail == f"{expected} thread{'s' if expected != 1 else ''}"
