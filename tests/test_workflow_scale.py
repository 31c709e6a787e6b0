"""The workflow at scale, on a tiny system (real packmol, OpenMM, analysis; CPU, 1 thread):

- the workstation profile with a GPU demanded but absent: a clear error, or a warning and
  the CPU when fallback is allowed; that run (with two tiny umbrella windows) then gives
  summary.csv, barriers.csv and the HTML report;
- a Snakemake run killed (SIGKILL to its process group) during MD production resumes
  from the checkpoint when restarted, with exactly the frames of an uninterrupted run;
- a recipe that fails validation stops the workflow before any job, naming the field.
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import pandas as pd
import pytest

from scale_workflow import MD, N_FRAMES, TINY, cmd as _cmd, env as _env, run as _run, workdir as _workdir


# ------------------------------------------------------------------ bad input


def test_invalid_recipe_fails_before_any_job_naming_the_field(root, tmp_path):
    bad = {**TINY, "name": "tiny_bad", "salts": [{"cation": "Li", "anion": "FSI", "molarity": 1.0}]}
    work = _workdir(tmp_path, bad)
    proc = _run(root, work, timeout=120)
    assert proc.returncode != 0
    assert "system 'tiny_bad'" in proc.stderr and "salts.0.molarity: unknown field" in proc.stderr
    assert not (work / "results").exists()


def test_missing_gpu_without_cpu_fallback_is_a_clear_error(root, tmp_path):
    work = _workdir(tmp_path, analyze=False, md={**MD, "platform": "CUDA", "allow_cpu_fallback": False})
    proc = _run(root, work, "--profile", str(root / "profiles" / "workstation"), "--cores", "1", timeout=300)
    assert proc.returncode != 0
    log = (work / "results" / "tiny_scale" / "logs" / "md.log").read_text()
    assert "[gpu-slot] GPU 0 (CUDA index 0)" in log  # the profile's gpu=1 slot was handed out
    assert "platform 'CUDA' is not available" in log and "CPU fallback is off" in log
    assert "CPU fallback is off" in proc.stderr  # show-failed-logs: the reason is on the console
    assert not (work / "results" / "tiny_scale" / "md" / "md.json").exists()


# ------------------------------------------------------------------ profile, fallback, summary, report


def test_cpu_fallback_warns_and_runs_on_cpu(scale_run):
    res = scale_run / "results" / "tiny_scale"
    log = (res / "logs" / "md.log").read_text()
    assert "PlatformFallbackWarning" in log and "falling back to the CPU platform" in log
    md = json.loads((res / "md" / "md.json").read_text())
    assert md["platform"] == "CPU" and md["platform_properties"] == {"Threads": "1"}
    assert md["n_frames"] == N_FRAMES


def test_summary_row_matches_md_and_analysis(scale_run):
    res = scale_run / "results"
    summary = pd.read_csv(res / "summary.csv")
    assert list(summary["system"]) == ["tiny_scale"]
    row = summary.iloc[0]
    md = json.loads((res / "tiny_scale" / "md" / "md.json").read_text())
    assert row["density_g_cm3"] == pytest.approx(md["density_production_mean_g_cm3"], rel=1e-5)
    coord = pd.read_csv(res / "tiny_scale" / "analysis" / "coordination.csv").set_index("partner")
    for partner in coord.index:
        assert row[f"cn_molecules_{partner}"] == pytest.approx(coord.loc[partner, "cn_molecules"], rel=1e-5)
    spec = pd.read_csv(res / "tiny_scale" / "analysis" / "speciation.csv")
    cation = spec[spec["definition"].str.startswith("cation")].set_index("class")["fraction"]
    assert row["agg_fraction_cation_centric"] == pytest.approx(cation["AGG"], abs=1e-6)
    assert row[["ssip_fraction_anion_centric", "cip_fraction_anion_centric",
                "agg_fraction_anion_centric"]].sum() == pytest.approx(1.0, abs=1e-5)


def test_pmf_windows_follow_the_md_platform_policy(scale_run):
    res = scale_run / "results" / "tiny_scale"
    for k in (0, 1):
        log = (res / "logs" / f"pmf_li_dme_window_{k}.log").read_text()
        assert "[gpu-slot] GPU 0" in log and "falling back to the CPU platform" in log
    barrier = json.loads((res / "pmf" / "li_dme" / "barrier.json").read_text())
    summary = pd.read_csv(scale_run / "results" / "summary.csv").iloc[0]
    assert summary["pmf_li_dme_dG_barrier_kJ_mol"] == pytest.approx(barrier["dG_barrier_kJ_mol"], rel=1e-5)
    assert summary["pmf_li_dme_dG_barrier_err_kJ_mol"] == pytest.approx(barrier["dG_barrier_err_kJ_mol"],
                                                                        rel=1e-5, abs=1e-9)
    barriers = pd.read_csv(scale_run / "results" / "barriers.csv")
    assert barriers.loc[0, "dG_barrier_kJ_mol"] == pytest.approx(barrier["dG_barrier_kJ_mol"], rel=1e-3)


def test_report_has_every_figure_and_table_with_captions(root, scale_run):
    html = (scale_run / "report.html").read_text()
    for name in ("thermo.png", "rdf.png", "coordination.png", "shells.png", "speciation.png", "rdf.csv",
                 "coordination.csv", "shells.csv", "speciation.csv", "clusters.csv", "residence.csv",
                 "transport.csv", "summary.csv", "summary.html", "pmf.png", "overlap.png", "histograms.png",
                 "pmf.csv", "barriers.png", "barriers.csv"):
        assert name in html, name
    # captions are rendered (jinja: the system name is filled in) and ship with the report
    assert "Radial distribution functions g(r) of the cation" in html
    assert "Ion pairing in tiny_scale" in html
    for caption in (root / "report").glob("*.rst"):
        assert caption.read_text().strip(), caption


# ------------------------------------------------------------------ kill -9 and resume


def _thermo_production_rows(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.startswith("production,"))
    except FileNotFoundError:
        return 0


def _processes_in(work: Path) -> list[int]:
    """PIDs of live processes whose command line mentions ``work`` (zombies excluded)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(work) in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def test_killed_workflow_resumes_md_from_checkpoint(root, tmp_path):
    work = _workdir(tmp_path, analyze=False)
    md_dir = work / "results" / "tiny_scale" / "md"
    proc = subprocess.Popen(_cmd(root, work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(work), start_new_session=True)
    try:
        end = time.time() + 300
        # wait for production rows after a production checkpoint, and leave work undone
        while not ((md_dir / "production.chk").exists() and _thermo_production_rows(md_dir / "thermo.csv") >= 3):
            assert proc.poll() is None, "snakemake ended before MD production was reached"
            assert time.time() < end, "MD production never started"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake, its job shell and solvmd md: one process group
        proc.wait(timeout=60)
    assert not _processes_in(work), "the job processes must die with snakemake's process group"
    assert not (md_dir / "md.json").exists(), "killed before the end: nothing may look finished"
    rows_at_kill = _thermo_production_rows(md_dir / "thermo.csv")
    assert 3 <= rows_at_kill < 10

    # README: after a crash, unlock the directory and rerun with --rerun-incomplete
    stale = _run(root, work, timeout=120)
    assert stale.returncode != 0 and "Directory cannot be locked" in stale.stderr  # the killed run's lock
    assert _run(root, work, "--unlock", timeout=120).returncode == 0
    again = _run(root, work, "--rerun-incomplete")
    assert again.returncode == 0, again.stderr[-4000:]
    md = json.loads((md_dir / "md.json").read_text())
    assert md["resumed_from"] is not None and md["resumed_from"]["stage"] == "production"
    assert md["resumed_from"]["step"] > md["stages"]["production"]["start_step"]
    assert md["n_frames"] == N_FRAMES
    thermo = pd.read_csv(md_dir / "thermo.csv")
    assert thermo["step"].is_unique and thermo["step"].is_monotonic_increasing
    assert list(thermo["step"]) == list(range(100, 1401, 100))  # every report of an uninterrupted run
    u = mda.Universe(str(md_dir / "topology.pdb"), str(md_dir / "traj.xtc"))
    times = np.array([ts.time for ts in u.trajectory])
    assert len(times) == N_FRAMES and np.allclose(np.diff(times), 0.1, atol=1e-3)
    log = (work / "results" / "tiny_scale" / "logs" / "md.log").read_text()
    assert re.search(r"resuming from production\.chk", log)
