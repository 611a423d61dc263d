"""Pool layout validation for vLLM deployments, and the vLLM command junto builds (no server: never skips)."""

from __future__ import annotations

import sys

import pytest

from junto.errors import ConfigError
from junto.pool.backends import get_backend
from junto.pool.config import load_pool, parse_pool


def vllm_dep(name: str, **launch) -> dict:
    return {"name": name, "backend": "vllm", "model": "org/model", "launch": launch}


def pool(*deps: dict) -> dict:
    return {"name": "layout", "deployments": list(deps)}


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_pool(data)
    return exc.value.message


def test_fractions_over_one_on_a_gpu_name_the_deployments_and_the_fix():
    msg = error_of(pool(vllm_dep("a", device=0, gpu_memory_utilization=0.5),
                        vllm_dep("b", device=0, gpu_memory_utilization=0.4),
                        vllm_dep("c", device=0, gpu_memory_utilization=0.3)))
    assert "GPU 0 is over-committed" in msg
    assert "a 0.5 + b 0.4 + c 0.3 = 1.20" in msg
    assert "lower the fractions" in msg


def test_fractions_that_fit_are_accepted_and_other_gpus_are_counted_apart():
    p = parse_pool(pool(vllm_dep("a", device=0, gpu_memory_utilization=0.5),
                        vllm_dep("b", device=0, gpu_memory_utilization=0.45),
                        vllm_dep("c", device=1, gpu_memory_utilization=0.9)))
    assert [d.launch.device_list() for d in p.deployments] == [[0], [0], [1]]


def test_an_unset_fraction_counts_as_vllms_default():
    msg = error_of(pool(vllm_dep("a", device=0), vllm_dep("b", device=0, gpu_memory_utilization=0.2)))
    assert "a 0.9 + b 0.2" in msg and "default 0.9" in msg


def test_tensor_parallel_spans_its_devices_in_the_gpu_budget():
    msg = error_of(pool(vllm_dep("big", devices=[0, 1], tensor_parallel_size=2, gpu_memory_utilization=0.8),
                        vllm_dep("small", device=1, gpu_memory_utilization=0.3)))
    assert "GPU 1 is over-committed" in msg and "GPU 0" not in msg


def test_tensor_parallel_larger_than_the_devices_listed():
    msg = error_of(pool(vllm_dep("big", devices=[0, 1], tensor_parallel_size=4)))
    assert "'big'" in msg and "tensor_parallel_size 4 needs 4 GPU(s)" in msg and "lists 2" in msg


def test_data_parallel_multiplies_the_devices_needed():
    msg = error_of(pool(vllm_dep("dp", devices=[0, 1, 2], tensor_parallel_size=2, data_parallel_size=2)))
    assert "data_parallel_size 2 needs 4 GPU(s)" in msg


def test_device_and_devices_together_and_a_gpu_listed_twice():
    assert "either launch.device or launch.devices" in error_of(pool(vllm_dep("x", device=0, devices=[0])))
    assert "lists a GPU twice" in error_of(pool(vllm_dep("x", devices=[1, 1], tensor_parallel_size=2)))


def test_duplicate_deployment_names_are_duplicate_served_names():
    assert "appears twice" in error_of(pool(vllm_dep("same"), vllm_dep("same")))


def test_served_name_in_extra_args_is_refused():
    msg = error_of(pool(vllm_dep("a", extra_args=["--served-model-name", "other"])))
    assert "--served-model-name" in msg and "deployment's name is its served name" in msg
    msg = error_of(pool(vllm_dep("a", extra_args=["--gpu-memory-utilization=0.5"])))
    assert "launch.gpu_memory_utilization" in msg


def test_two_servers_on_one_fixed_port():
    msg = error_of(pool(vllm_dep("a", port=8001), vllm_dep("b", port=8001)))
    assert "'a', 'b'" in msg and "port 8001" in msg


def test_max_model_len_below_context_length():
    d = vllm_dep("a", max_model_len=1024)
    d["context_length"] = 4096
    assert "max_model_len 1024 is below context_length 4096" in error_of(pool(d))


def test_cpu_deployments_have_no_gpu_budget():
    # the CPU build names no device and no fraction: any number of them load
    p = parse_pool(pool(*(vllm_dep(f"cpu{i}", cpu_kvcache_space_gib=1) for i in range(4))))
    assert len(p.deployments) == 4


@pytest.mark.parametrize("name", ["gpu-4x8b", "gpu-tp70b", "vllm-cpu"])
def test_shipped_vllm_pools_load(name):
    p = load_pool(name)
    assert all(d.backend == "vllm" for d in p.deployments)


def test_load_error_from_a_file_names_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: bad\ndeployments:\n"
                 "  - {name: a, backend: vllm, model: m, launch: {device: 0, gpu_memory_utilization: 0.7}}\n"
                 "  - {name: b, backend: vllm, model: m, launch: {device: 0, gpu_memory_utilization: 0.7}}\n")
    with pytest.raises(ConfigError) as exc:
        load_pool(str(f))
    assert str(f) in exc.value.message and "over-committed" in exc.value.message


def argv_for(dep_name: str, pool_name: str) -> tuple[list[str], dict[str, str]]:
    p = load_pool(pool_name)
    dep = p.deployment(dep_name)
    dep.launch.python = sys.executable  # any existing interpreter: only the command line is inspected
    return get_backend("vllm").command(dep, "127.0.0.1", 8123, None, lambda _m: None)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_command_for_a_gpu_tensor_parallel_deployment():
    argv, env = argv_for("llama3.3-70b", "gpu-tp70b")
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert flag(argv, "--served-model-name") == "llama3.3-70b"
    assert flag(argv, "--model") == "meta-llama/Llama-3.3-70B-Instruct"
    assert flag(argv, "--tensor-parallel-size") == "4"
    assert flag(argv, "--gpu-memory-utilization") == "0.9"
    assert flag(argv, "--max-model-len") == "16384"
    assert "--enable-prefix-caching" in argv
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" and env["NCCL_P2P_DISABLE"] == "0"


def test_command_passes_extra_engine_args_last():
    argv, env = argv_for("mistral-7b", "gpu-4x8b")
    assert argv[-2:] == ["--quantization", "fp8"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0"


def test_cpu_settings_become_vllm_cpu_environment():
    data = pool(vllm_dep("c", python=sys.executable, cpu_kvcache_space_gib=2, cpu_threads_bind="nobind",
                         cpu_reserved_cores=0, max_num_seqs=8, enable_prefix_caching=False))
    dep = parse_pool(data).deployments[0]
    argv, env = get_backend("vllm").command(dep, "127.0.0.1", 8123, None, lambda _m: None)
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2" and env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0" and "CUDA_VISIBLE_DEVICES" not in env
    assert "--no-enable-prefix-caching" in argv and flag(argv, "--max-num-seqs") == "8"


def test_embedded_gguf_is_refused_with_the_converted_form_as_hint():
    data = pool({"name": "e", "backend": "vllm", "model": "embedded:smollm2-135m-instruct",
                 "launch": {"python": sys.executable}})
    dep = parse_pool(data).deployments[0]
    with pytest.raises(ConfigError) as exc:
        get_backend("vllm").command(dep, "127.0.0.1", 8123, None, lambda _m: None)
    assert "embedded-hf:smollm2-135m-instruct" in exc.value.hint


def test_missing_vllm_python_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setenv("JUNTO_VLLM_PYTHON", str(tmp_path / "nope" / "python"))
    dep = parse_pool(pool(vllm_dep("a"))).deployments[0]
    with pytest.raises(ConfigError) as exc:
        get_backend("vllm").command(dep, "127.0.0.1", 8123, None, lambda _m: None)
    assert "JUNTO_VLLM_PYTHON" in exc.value.message and "junto vllm install" in exc.value.hint
