#!/usr/bin/env bash
# One prepared GPU check for a lent GPU machine (one H100 or H200), from the repository root:
#   bash benchmarks/gpu_check.sh                 (GPU_CHECK_PLATFORM=CUDA by default)
# Expected runtime on one H100 from a bare machine: ~6 min (install from carried wheels ~1 min,
# probe + `solvmd platforms` ~0.5 min, CUDA-marked tests ~1 min, md_speed at ~1.8 k and ~20 k atoms
# against stock OpenMM with `solvmd md` end to end ~2.5 min, the ~7.4 k-atom Zn-N4 interface
# ~1 min); a hard limit of 7.5 min (timeout 450) keeps it inside 8.
#
# Install, first that applies: .venv/ (a machine where this repository was installed); the wheels
# in .whl/ (a machine that reaches no index, such as the lent ones: `bash benchmarks/gpu_prepare.sh`
# fetches them and prebuilds the interface here, then carry=[".whl"]), installed --no-deps into
# /tmp/site with solvmd taken from the tree; else pip from the index into a new .venv.
# Result: one table, benchmarks/results/gpu_check_<card>.md (+ .csv), also copied to $OUT when set;
# commit it with the card's name. benchmarks/gpu_check.py says what each row is.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
PLATFORM=${GPU_CHECK_PLATFORM:-CUDA}
export PYTHONUNBUFFERED=1
if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
elif ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PATH="/tmp/site/bin:$PATH"
  # the CUDA 13 libraries of the image (pip's nvidia-* packages and the toolkit) for OpenMM's CUDA plugin
  NV=$(python3 - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages(), "/usr/local/cuda/lib64"]
dirs = {os.path.dirname(p) for r in roots for p in glob.glob(os.path.join(r, "nvidia", "**", "lib*.so*"), recursive=True)}
print(":".join(sorted(dirs) + [d for d in ("/usr/local/cuda/lib64",) if os.path.isdir(d)]))
EOF
)
  export LD_LIBRARY_PATH="$NV${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  PY=python3
  if [ -f .whl/gpu_inputs.tar.xz ]; then tar -xJf .whl/gpu_inputs.tar.xz; fi  # prebuilt boxes (results/benchmarks/)
else
  python3 -m venv .venv && .venv/bin/pip install -q -e ".[test,cuda12]"
  PY=.venv/bin/python
fi
echo "[gpu_check] installed in $((SECONDS - START)) s; $($PY -c 'import openmm; print("OpenMM", openmm.__version__)')"
$PY - <<EOF
import openmm
names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
print("[gpu_check] OpenMM platforms:", names)
if "$PLATFORM" not in names:
    print("[gpu_check] plugin load failures:", *openmm.Platform.getPluginLoadFailures(), sep="\n  ")
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
timeout $((450 - (SECONDS - START))) $PY benchmarks/gpu_check.py --platform "$PLATFORM" "$@"
if [ -n "${OUT:-}" ]; then cp benchmarks/results/gpu_check_*.md benchmarks/results/gpu_check_*.csv "$OUT/" 2>/dev/null || true; fi
echo "[gpu_check] done in $((SECONDS - START)) s"
