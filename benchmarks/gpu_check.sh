#!/usr/bin/env bash
# The GPU measurements, as one script for a lent GPU machine (real-size architectures, random weights, no download).
# Expects the wheels of packages the GPU image lacks (xgrammar and its needs) in .whl/; writes logs to $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site
out=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$out/gpu.txt"
python3 benchmarks/captioner_real_size.py --max-new-tokens 200 --variants 4 2>&1 | grep -v Warning | tee "$out/captioner.txt"
PYTHONPATH="$PWD:${PYTHONPATH:-}" python3 benchmarks/musicgen_real_size.py --variants 4 --duration 10 2>&1 | grep -v Warning | tee "$out/musicgen.txt"
