"""The Snakemake workflow end to end on a tiny system (real packmol, OpenMM, analysis)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from scale_workflow import MD
from scale_workflow import TINY as _TINY

TINY = {**_TINY, "name": "tiny_wf"}


def _snakemake(root: Path, workdir: Path, config: dict, *extra: str) -> subprocess.CompletedProcess:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).parent / "snakemake"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "SOLVMD_CPU_THREADS": "2", "HOME": str(workdir)}
    return subprocess.run(
        [str(snakemake), "-s", str(root / "Snakefile"), "-d", str(workdir), "--cores", "2",
         "--configfile", str(workdir / "config.yaml"), *extra],
        capture_output=True, text=True, env=env, timeout=900,
    )


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory, root):
    work = tmp_path_factory.mktemp("wf")
    (work / "recipes").mkdir()
    (work / "recipes" / "tiny_wf.yaml").write_text(yaml.safe_dump(TINY))
    config = {"systems": ["tiny_wf"], "recipes_dir": str(work / "recipes"), "md": MD}
    proc = _snakemake(root, work, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


def test_workflow_builds_runs_and_analyzes(workflow_run):
    res = workflow_run / "results" / "tiny_wf"
    manifest = json.loads((res / "build" / "manifest.json").read_text())
    assert {r["name"]: r["count"] for r in manifest["species"]}["Li"] == 4
    md = json.loads((res / "md" / "md.json").read_text())
    assert md["n_frames"] == 20 and md["platform"] == "CPU"
    coordination = pd.read_csv(res / "analysis" / "coordination.csv").set_index("partner")
    assert coordination.loc["total", "cn_donor_atoms"] > 0  # Li+ is solvated by some donor atoms
    spec = pd.read_csv(res / "analysis" / "speciation.csv")
    assert len(spec) > 0


def test_bad_config_fails_before_any_job(root, tmp_path):
    proc = _snakemake(root, tmp_path, {"systems": ["tiny_wf"], "md": {"timestep_fss": 2}})
    assert proc.returncode != 0
    assert "timestep_fss" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_unknown_system_fails_before_any_job(root, tmp_path):
    proc = _snakemake(root, tmp_path, {"systems": ["no_such_system"], "md": MD})
    assert proc.returncode != 0
    assert "no recipe for ['no_such_system']" in proc.stderr
