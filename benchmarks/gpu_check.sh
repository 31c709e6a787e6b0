#!/usr/bin/env bash
# One prepared GPU check (well under 10 minutes on an H100/H200): the CUDA-marked tests, then the
# MD speed rows on CUDA (mixed precision) for the demo box and a ~20,000-atom box.
#   bash benchmarks/gpu_check.sh            (on the GPU machine, from the repository root)
# Results: benchmarks/results/md_speed_CUDA.csv (copied to $OUT when set).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -e ".[test,cuda12]"
fi
SOLVMD_PLATFORM=CUDA timeout 240 .venv/bin/python -m pytest -q -m cuda tests/test_cuda.py
timeout 300 .venv/bin/python benchmarks/md_speed.py --platform CUDA --salt-units 12 134 --steps 2000 --blocks 3 \
  --whole-run-ps 40
if [ -n "${OUT:-}" ]; then cp benchmarks/results/md_speed_CUDA.csv "$OUT/"; fi
