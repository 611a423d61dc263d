"""Turn an embedded GGUF into a Hugging Face model directory (safetensors + tokenizer) that vLLM loads.

vLLM cannot serve the embedded Q4_1 GGUF, so ``junto models convert`` dequantizes it once:
the config and tokenizer (with its chat template) come from the GGUF's metadata, the weights are
dequantized into a model built from that config and saved as safetensors. The result lives in
``<cache>/models/<key>-hf/``, is written to a temporary folder, verified (config loads, the
tokenizer round-trips, the chat template renders, the model's perplexity on a plain English
sentence is sane: a wrong tensor layout gives thousands) and only then renamed into place.

The work needs torch, transformers, gguf and accelerate, which junto's own environment does not
carry: it runs in the vLLM virtualenv's Python (``junto vllm install`` puts gguf there). This file
is therefore also a standalone script: its ``_worker`` half imports nothing from junto.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

MARKER = "junto-convert.json"
DTYPES = ("float32", "bfloat16", "float16")
#: a sentence any instruct model has seen the like of; the converted model must find it unsurprising
_PROBE_TEXT = "The capital of France is Paris. The sun rises in the east and sets in the west."
_MAX_PERPLEXITY = 200.0


# ---------------------------------------------------------------------------------------------
# worker: runs inside the vLLM virtualenv (torch + transformers + gguf), imports nothing from junto
# ---------------------------------------------------------------------------------------------
def _worker(gguf_path: str, out_dir: str, dtype_name: str) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder, filename = os.path.split(gguf_path)
    dtype = getattr(torch, dtype_name)
    config = AutoConfig.from_pretrained(folder, gguf_file=filename)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    if not tokenizer.chat_template:
        raise SystemExit(f"{gguf_path} carries no chat template (tokenizer.chat_template)")
    # transformers keeps GGUF weights quantized when it loads them as a model (not serializable);
    # dequantize the tensors ourselves into a plain model built from the same config
    config.dtype = dtype_name
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    parsed = load_gguf_checkpoint(gguf_path, return_tensors=True, model_to_load=model, torch_dtype=dtype)
    missing, unexpected = model.load_state_dict(parsed["tensors"], strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise SystemExit(f"tensor names do not match the model: missing={sorted(set(missing) - tied)[:5]} "
                         f"unexpected={sorted(unexpected)[:5]}")
    if tied:
        model.tie_weights()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    del model
    return _verify(out_dir)


def _verify(out_dir: str) -> dict:
    """Load the saved directory afresh, as vLLM will, and check that it is a working model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(out_dir)
    tok = AutoTokenizer.from_pretrained(out_dir)
    sample = "Hello, world! 1 + 2 = 3 — naïve café."
    ids = tok.encode(sample, add_special_tokens=False)
    if tok.decode(ids) != sample:
        raise SystemExit(f"tokenizer round trip failed: {tok.decode(ids)!r} != {sample!r}")
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    if "hi" not in prompt:
        raise SystemExit(f"chat template does not render the message: {prompt!r}")
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    enc = tok(_PROBE_TEXT, return_tensors="pt")
    with torch.no_grad():
        loss = model(**enc, labels=enc["input_ids"]).loss.item()
    ppl = float(torch.exp(torch.tensor(loss)))
    if not ppl < _MAX_PERPLEXITY:
        raise SystemExit(f"converted model is broken: perplexity {ppl:.1f} on a plain sentence (expected < {_MAX_PERPLEXITY})")
    import transformers

    return {"architecture": (config.architectures or [config.model_type])[0], "vocab_size": config.vocab_size,
            "perplexity": round(ppl, 2), "chat_template": True, "transformers": transformers.__version__}


def _main(argv: list[str]) -> int:
    gguf_path, out_dir, dtype_name, report = argv
    info = _worker(gguf_path, out_dir, dtype_name)
    with open(report, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
    return 0


# ---------------------------------------------------------------------------------------------
# junto side: where converted models live, and running the worker
# ---------------------------------------------------------------------------------------------

Progress = Callable[[str], None]
#: ``model: embedded-hf:<key>`` in a pool file means the converted directory of embedded model <key>
EMBEDDED_HF_PREFIX = "embedded-hf:"


def converted_dir(key: str) -> Path:
    from junto.paths import cache_dir
    from junto.pool.models import catalog_entry

    return cache_dir() / "models" / f"{catalog_entry(key).key}-hf"


def conversion_info(key: str) -> dict | None:
    """The marker of a finished, verified conversion, or None."""
    try:
        return json.loads((converted_dir(key) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_converted(key: str) -> bool:
    from junto.pool.models import catalog_entry

    info = conversion_info(key)
    return bool(info) and info.get("source_sha256") == catalog_entry(key).sha256


def convert(key: str = "smollm2-135m-instruct", *, dtype: str = "float32", python: str | None = None,
            force: bool = False, progress: Progress | None = None, timeout_s: float = 1800) -> Path:
    """Convert embedded model ``key`` into ``converted_dir(key)`` (idempotent) and return that directory."""
    import fcntl
    import shutil
    import subprocess
    import tempfile
    import time

    from junto.errors import ConfigError, JuntoError
    from junto.paths import replace_dir
    from junto.pool import models
    from junto.pool.vllm_env import resolve_python

    progress = progress or (lambda _m: None)
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}", hint=f"choose one of: {', '.join(DTYPES)}")
    entry = models.catalog_entry(key)
    target = converted_dir(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one conversion at a time; a waiter then finds it done
        info = conversion_info(key)
        if not force and is_converted(key) and info.get("dtype") == dtype:
            return target
        py = resolve_python(python)
        gguf = models.pull(key, progress=progress)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
        report = tmp / ".report.json"
        progress(f"converting {entry.filename} to {dtype} safetensors with {py} (about a minute)")
        t0 = time.monotonic()
        try:
            # -I: the script folder (app/pool, whose types.py shadows the stdlib) must not go on sys.path
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
            try:
                proc = subprocess.run([py, "-I", os.path.abspath(__file__), str(gguf), str(tmp), dtype, str(report)],
                                      capture_output=True, text=True, env=env, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise JuntoError(f"converting {key} took longer than {timeout_s:.0f}s") from None
            if proc.returncode != 0:
                lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if "it/s]" not in ln]
                tail = "\n".join(lines[-8:])
                missing = "No module named" in tail
                raise JuntoError(
                    f"converting {key} failed:\n{tail}",
                    hint=("the vLLM virtualenv lacks transformers/gguf/accelerate: run `junto vllm install`"
                          if missing else "run `junto vllm install` again, then `junto models convert --force`"),
                )
            result = json.loads(report.read_text())
            report.unlink()
            result.update(key=key, dtype=dtype, source=str(gguf), source_sha256=entry.sha256,
                          license=entry.license, seconds=round(time.monotonic() - t0, 1), converted_at=time.time())
            (tmp / MARKER).write_text(json.dumps(result, indent=2))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is not
            for f in tmp.iterdir():
                os.chmod(f, 0o644)
            replace_dir(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        progress(f"converted {key} in {time.monotonic() - t0:.0f}s (perplexity check {result['perplexity']})")
        return target


def resolve_hf_model(model: str, *, python: str | None = None, progress: Progress | None = None) -> str:
    """``embedded-hf:<key>`` → the converted directory (converting on first use); anything else unchanged."""
    if not model.startswith(EMBEDDED_HF_PREFIX):
        return model
    key = model[len(EMBEDDED_HF_PREFIX):]
    if is_converted(key):
        return str(converted_dir(key))
    return str(convert(key, python=python, progress=progress))


if __name__ == "__main__":  # run by junto with the vLLM virtualenv's python
    sys.exit(_main(sys.argv[1:]))
