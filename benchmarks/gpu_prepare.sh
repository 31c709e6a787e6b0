#!/usr/bin/env bash
# Prepare, here (where pip reaches an index), what benchmarks/gpu_check.sh needs on a lent GPU machine
# that reaches nothing. Its image has Python 3.12 with numpy, scipy, pandas, matplotlib, PyYAML, pytest
# and CUDA 13, but not solvmd's MD stack. Writes .whl/ (ignored by git, ~55 MiB; a call carries 64):
# - the wheels: OpenMM + its CUDA 13 plugin, RDKit, packmol, pydantic (installed there --no-deps;
#   MDAnalysis is left out to fit: the MD path imports it only where it is used);
# - gpu_inputs.tar.xz: the boxes built here (the ~20 k-atom bulk box for md_speed and the
#   production Zn-N4 interface in the split and exact forms for interface_step; interface builds
#   need MDAnalysis, and packing them here saves device minutes).
# Then: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540).
#   bash benchmarks/gpu_prepare.sh        (~5 min here, mostly packmol)
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
PY=${PY:-.venv/bin/python}
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
# OpenMM-CUDA-13 exists for Python 3.12 from OpenMM 8.4 on; its nvidia-*-cu13 needs come from the image
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS \
  -d .whl "openmm==8.4.0b0" "OpenMM-CUDA-13==8.4.0b0" "rdkit==2026.9.1" "packmol==21.2.3" \
  "pydantic==2.14.4" "pydantic-core==2.50.5" "annotated-types==0.8.0" "typing-inspection==0.4.5"
$PY - <<'PYEOF'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
import interface_step, md_speed
work = Path("results/benchmarks")
md_speed._build(134, work / "md_speed")
for form in ("split", "exact"):
    interface_step._build(Path("systems/iface_li_tfsi_dol_dme_znn4.yaml"), form, work / "interface_step", True)
PYEOF
tar -cJf .whl/gpu_inputs.tar.xz results/benchmarks/md_speed/speed_134 \
  results/benchmarks/interface_step/iface_li_tfsi_dol_dme_znn4_split results/benchmarks/interface_step/iface_li_tfsi_dol_dme_znn4_exact
du -sh .whl
