"""Window jobs: restart/skip, stale files, parallel == sequential, and loud estimation errors."""

import numpy as np
import pytest

from solvmd.pmf import cv as cvmod
from solvmd.pmf import toy
from solvmd.pmf.estimate import PMFCoverageError, PMFOverlapError, estimate_pmf
from solvmd.pmf_spec import PMFSpecError
from solvmd.pmf.umbrella import CVSelectionError, PMFWarning, prepare_windows, run_window, run_windows

pytestmark = pytest.mark.filterwarnings("ignore::solvmd.pmf.umbrella.PMFWarning")  # 3 windows: sparse on purpose

SHORT = dict(n_windows=3, equil_ps=2.0, sample_ps=20.0, checkpoint_ps=2.0, init="place")


def _inputs(tmp_path, kind="height"):
    system, pos = toy.toy_system(kind)
    return toy.write_inputs(system, pos, tmp_path / "inputs")


def test_window_resumes_from_checkpoint_and_skips_when_done(tmp_path, monkeypatch):
    sx, st = _inputs(tmp_path)
    spec = toy.toy_spec("height", **SHORT)
    out = tmp_path / "pmf"
    prepare_windows(sx, st, spec, out)
    assert spec.n_samples == 100

    real = cvmod.cv_value
    calls = {"n": 0}

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] > 60:  # 1 call at the end of equilibration, then one per sample
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(cvmod, "cv_value", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_window(sx, None, spec, 1, out)
    monkeypatch.setattr(cvmod, "cv_value", real)
    assert not (out / "window_1.npz").exists()  # a killed job leaves nothing that looks finished
    with np.load(out / "window_1.partial.npz") as p:
        done = int(p["samples_done"])
        first = p["cv_nm"][:done].copy()
    assert done == 50  # checkpoints every 2 ps = 10 samples; killed at sample 59
    final = run_window(sx, None, spec, 1, out)
    with np.load(final) as z:
        x = z["cv_nm"]
        assert len(x) == 100 and np.all(np.isfinite(x))
        np.testing.assert_array_equal(x[:done], first)  # resumed, not restarted
    assert not (out / "window_1.partial.npz").exists() and not (out / "window_1.chk.xml").exists()

    mtime = final.stat().st_mtime_ns
    assert run_window(sx, None, spec, 1, out) == final and final.stat().st_mtime_ns == mtime  # skipped
    stiffer = toy.toy_spec("height", **dict(SHORT, k_kJ_mol_nm2=5000.0))
    with pytest.raises(PMFSpecError, match="delete the stale windows"):
        run_window(sx, None, stiffer, 1, out)


def test_parallel_windows_equal_sequential(tmp_path):
    sx, st = _inputs(tmp_path, "distance")
    spec = toy.toy_spec("distance", **dict(SHORT, init="pull"))
    run_windows(sx, st, spec, tmp_path / "seq", n_jobs=1)
    run_windows(sx, st, spec, tmp_path / "par", n_jobs=2)
    for k in range(3):
        with np.load(tmp_path / "seq" / f"window_{k}.npz") as a, np.load(tmp_path / "par" / f"window_{k}.npz") as b:
            np.testing.assert_array_equal(a["cv_nm"], b["cv_nm"])  # same seeds, same numbers
    # steered pull put each window's start at its centre
    for k, c in enumerate(spec.centers()):
        import openmm as mm

        state = mm.XmlSerializer.deserialize((tmp_path / "seq" / "init" / f"window_{k}.xml").read_text())
        rcv = cvmod.ResolvedCV.from_json(tmp_path / "seq" / "cv.json")
        pos = state.getPositions(asNumpy=True)._value
        assert abs(cvmod.cv_value(rcv, pos, state.getPeriodicBoxVectors(asNumpy=True)._value) - c) < 0.05


def test_non_overlapping_windows_warn_then_fail_loudly(tmp_path):
    sx, st = _inputs(tmp_path)
    spec = toy.toy_spec("height", **dict(SHORT, k_kJ_mol_nm2=20000.0))
    with pytest.warns(PMFWarning, match="predicted to overlap"):
        run_windows(sx, st, spec, tmp_path / "pmf")
    with pytest.raises(PMFOverlapError, match=r"windows (0 and 1 \(r0=0.3 and 0.5|1 and 2 \(r0=0.5 and 0.7) nm\) overlap only") as e:
        estimate_pmf(tmp_path / "pmf", spec)
    assert "Add windows" in str(e.value)
    assert (tmp_path / "pmf" / "overlap.png").is_file()  # the diagnostic figure is still written
    # forcing past the overlap check still cannot hide the unsampled gap
    with pytest.raises(PMFCoverageError, match="no samples in"):
        estimate_pmf(tmp_path / "pmf", spec, min_overlap=1e-300)


def test_missing_window_and_bad_atoms(tmp_path):
    sx, st = _inputs(tmp_path)
    spec = toy.toy_spec("height", **SHORT)
    out = tmp_path / "pmf"
    prepare_windows(sx, st, spec, out)
    run_window(sx, None, spec, 0, out)
    run_window(sx, None, spec, 2, out)
    with pytest.raises(PMFCoverageError, match=r"window_1.npz: window file missing \(pmf toy_height: windows \[1\] not sampled yet\)"):
        estimate_pmf(out, spec)
    bad = toy.toy_spec("height", **dict(SHORT, cv={"kind": "height", "cation_atoms": [3], "z0_nm": 0.0}))
    with pytest.raises(CVSelectionError, match=r"atoms \[3\] that do not exist"):
        prepare_windows(sx, st, bad, tmp_path / "bad")


def test_gap_proposals_stop_at_max_added_windows(tmp_path):
    """Windows that keep sliding are not fixed by ever more windows: past max_added_windows the
    estimate still refuses, proposes nothing new and says to sample longer."""
    sx, st = _inputs(tmp_path)
    spec = toy.toy_spec("height", **dict(SHORT, k_kJ_mol_nm2=20000.0, max_added_windows=0))
    with pytest.warns(PMFWarning):
        run_windows(sx, st, spec, tmp_path / "pmf")
    with pytest.raises(PMFOverlapError, match="max_added_windows=0") as e:
        estimate_pmf(tmp_path / "pmf", spec)
    assert "raise equil_ps/sample_ps" in str(e.value)
    assert not (tmp_path / "pmf" / "added_windows.json").exists()
