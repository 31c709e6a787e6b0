"""Helpers for the workflow-at-scale tests: a tiny system run through the real Snakefile.

Not a test module: `conftest.py` builds the shared `scale_run` fixture from it, and
`test_workflow_scale.py`, `test_notebooks.py` use its helpers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

TINY = {
    "name": "tiny_scale",
    "salts": [{"cation": "Li", "anion": "FSI", "molarity_M": 1.0}],
    "solvents": [{"species": "DME", "volume_fraction": 1.0}],
    "size": {"salt_units": 4},
    "forcefield": {"cutoff_nm": 0.8},
}
MD = {"timestep_fs": 2.0, "heat_ps": 0.4, "equilibrate_ps": 0.4, "production_ps": 2.0, "report_interval_ps": 0.2,
      "frame_interval_ps": 0.1, "checkpoint_interval_ps": 0.4, "friction_per_ps": 5.0}
N_FRAMES = 20  # production_ps / frame_interval_ps
# two short umbrella windows on the Li-O(DME) distance inside the first shell (stiff enough that
# both stay in range; 1.5 ps and 3 bins leave ~15-40 decorrelated samples per bin, where the
# MBAR-WHAM cross-check needs bins with >= 10): exercises the PMF rules, not the physics
PMF = {"name": "li_dme", "cv": {"kind": "distance", "cation": "LI", "partner": "DME", "partner_site": "donor"},
       "range_nm": [0.20, 0.23], "spacing_nm": 0.03, "k_kJ_mol_nm2": 12000, "equil_ps": 0.1, "sample_ps": 1.5,
       "sample_interval_steps": 5, "bin_width_nm": 0.01, "friction_per_ps": 5.0, "checkpoint_ps": 0.5,
       "n_bootstrap": 10, "pull_nm_per_ns": 20}
BIN = Path(sys.executable).parent


def workdir(tmp: Path, recipe: dict = TINY, **config) -> Path:
    """``tmp`` with ``recipes/<name>.yaml`` and ``config.yaml`` (tiny MD, 1 thread per job)."""
    (tmp / "recipes").mkdir(parents=True, exist_ok=True)
    (tmp / "recipes" / f"{recipe['name']}.yaml").write_text(yaml.safe_dump(recipe))
    cfg = {"systems": [recipe["name"]], "recipes_dir": str(tmp / "recipes"), "md": dict(MD),
           "resources": {"md_threads": 1}, **config}
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp


def cmd(root: Path, work: Path, *extra: str) -> list[str]:
    return [str(BIN / "snakemake"), "-s", str(root / "Snakefile"), "-d", str(work), "--cores", "1",
            "--configfile", str(work / "config.yaml"), *extra]


def env(work: Path) -> dict:
    return {"PATH": f"{BIN}:/usr/bin:/bin", "SOLVMD_CPU_THREADS": "1", "HOME": str(work),
            "SOLVMD_GPU_LOCK_DIR": str(work / "gpu-locks"), "MPLBACKEND": "Agg"}


def run(root: Path, work: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd(root, work, *extra), capture_output=True, text=True, env=env(work), timeout=timeout)


def run_scale_workflow(root: Path, work: Path) -> Path:
    """Workstation profile, md.platform CUDA with CPU fallback allowed (no CUDA here), two
    umbrella windows; then ``snakemake --report``. Returns the working directory."""
    work = workdir(work, {**TINY, "pmf": PMF}, md={**MD, "platform": "CUDA", "allow_cpu_fallback": True})
    t0 = time.time()
    proc = run(root, work, "--profile", str(root / "profiles" / "workstation"), "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = run(root, work, "--report", str(work / "report.html"), timeout=300)
    assert report.returncode == 0, report.stderr[-4000:]
    print(f"scale workflow + report: {time.time() - t0:.1f} s")
    return work
