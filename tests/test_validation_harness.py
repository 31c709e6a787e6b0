"""benchmarks/validation.py as a harness, on a tiny real system (~500 atoms, 2.4 ps per run, 2 packings).

What the long validation relies on (issue 13): two independent packings (different packmol and
velocity seeds) under the annealed protocol, one folder per run, a sitting limit (--max-runs) with
the rest resumed next time, and a table whose numbers come only from finished runs: the mean over
the packings and the spread between them as the error bar; an unfinished run gives its status,
never a number. The real run lengths are in docs/validation.md.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import validation as V  # noqa: E402

REAL_CHECKS, REAL_SYSTEMS = tuple(V.CHECKS), dict(V.SYSTEMS)  # before the harness fixture patches them

TINY = {"name": "tiny_val", "salts": [{"cation": "Li", "anion": "FSI", "molarity_M": 1.0}],
        "solvents": [{"species": "DME", "volume_fraction": 1.0}], "size": {"salt_units": 2},
        "forcefield": {"cutoff_nm": 0.6}, "packing": {"seed": 31}}
SHORT = ["--heat-ps", "0.4", "--anneal-K", "400", "--anneal-ps", "0.4", "--cool-ps", "0.2", "--equilibrate-ps", "0.4",
         "--production-ps", "1.0", "--frame-ps", "0.1", "--checkpoint-ps", "0.2", "--platform", "CPU"]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """Sitting 1 with --max-runs 1, then sitting 2 that finishes the second packing."""
    d = tmp_path_factory.mktemp("validation")
    (d / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    mp = pytest.MonkeyPatch()
    mp.setattr(V, "SYSTEMS", {"tiny": V.System(str(d / "tiny.yaml"), "LI", ether="DME")})
    mp.setattr(V, "CHECKS", [
        V._check("tiny_li_cn", ["tiny"], "Li+ CN (O atoms)", "O atoms", "4-5", "docs/science.md §5",
                 V._li_cn_o("tiny"), V._within(4.0, 5.0)),
        V._check("tiny_cip_agg", ["tiny"], "CIP + AGG (anion-centric)", "%", ">= 80 %", "docs/science.md §5",
                 V._cip_agg("tiny"), lambda x: x >= 80.0)])
    args = ["--systems", "tiny", "--packings", "2", "--atoms", "500", "--workdir", str(d / "work")] + SHORT
    V.main(args + ["--out", str(d / "out1"), "--max-runs", "1"])
    first = pd.read_csv(d / "out1" / "validation.csv")
    metrics1 = next((d / "work" / "tiny").glob("packing1_*/metrics.json"))
    stamp = metrics1.stat().st_mtime_ns
    V.main(args + ["--out", str(d / "out2")])
    yield d, first, pd.read_csv(d / "out2" / "validation.csv"), stamp
    mp.undo()


def test_unfinished_run_gives_no_number(harness):
    d, first, _, _ = harness
    assert list(first["check"]) == ["tiny_li_cn", "tiny_cip_agg"]
    assert (first["verdict"] == "unfinished").all()
    assert first["value"].isna().all() and first["spread"].isna().all() and first["values"].isna().all()
    assert (first["model"] == "unfinished - tiny packing 2: not started").all()
    md = (d / "out1" / "validation.md").read_text()
    assert "unfinished - tiny packing 2: not started" in md


def test_two_packings_seeds_annealed_protocol_and_resume(harness):
    d, _, table, stamp = harness
    folders = sorted((d / "work" / "tiny").iterdir())
    assert [f.name for f in folders] == ["packing1_seed31", "packing2_seed32"]
    m = [json.loads((f / "metrics.json").read_text()) for f in folders]
    assert [x["seeds"] for x in m] == [{"packmol": 31, "velocities": 2024}, {"packmol": 32, "velocities": 2025}]
    # the first sitting's run was not redone in the second
    assert (folders[0] / "metrics.json").stat().st_mtime_ns == stamp
    # independent starts: different packed coordinates
    xyz = [np.loadtxt([ln[30:54] for ln in (f / "build" / "system.pdb").read_text().splitlines()
                       if ln.startswith(("ATOM", "HETATM"))]) for f in folders]
    assert xyz[0].shape == xyz[1].shape and np.abs(xyz[0] - xyz[1]).max() > 1.0
    for f in folders:  # annealed protocol, as run
        md = json.loads((f / "md" / "md.json").read_text())
        assert md["protocol"]["anneal_K"] == 400.0 and md["stages"]["anneal"]["T_from_K"] == 400.0
        assert md["n_frames"] == 10
    row = table.set_index("check").loc["tiny_li_cn"]
    assert row["packings"] == 2 and row["seeds"] == "tiny: packmol 31/32, velocities 2024/2025"
    assert row["frames"] == "10 / 10" and "anneal 0.4 @ 400 K" in row["run_ps"] and "production 1 ps" in row["run_ps"]


def test_mean_and_spread_come_from_the_two_runs(harness):
    d, _, table, _ = harness
    m = [json.loads(p.read_text()) for p in sorted((d / "work" / "tiny").glob("packing*/metrics.json"))]
    t = table.set_index("check")
    cn = [x["cn_by_element"].get("O", 0.0) for x in m]
    assert t.loc["tiny_li_cn", "value"] == pytest.approx(np.mean(cn), abs=1e-4)
    assert t.loc["tiny_li_cn", "spread"] == pytest.approx(abs(cn[0] - cn[1]), abs=1e-4)
    sp = [100 * (x["speciation"]["anion_CIP"] + x["speciation"]["anion_AGG"]) for x in m]
    assert t.loc["tiny_cip_agg", "value"] == pytest.approx(np.mean(sp), abs=1e-4)
    assert t.loc["tiny_cip_agg", "spread"] == pytest.approx(max(sp) - min(sp), abs=1e-4)
    assert t.loc["tiny_li_cn", "verdict"].split()[0] == ("pass" if 4.0 <= np.mean(cn) <= 5.0 else "MISS")
    assert 0 < np.mean(cn) < 8  # a Li+ shell was found at all


def test_status_of_a_run_in_progress(tmp_path):
    """A run folder whose MD stopped part-way reports how far it got (from thermo.csv), no number."""
    from solvmd.md.protocol import load_protocol

    work = tmp_path / "run"
    (work / "build").mkdir(parents=True)
    (work / "md").mkdir()
    protocol = load_protocol(None, dict(heat_ps=5, anneal_K=450, anneal_ps=200, cool_ps=100, equilibrate_ps=250,
                                        production_ps=250))
    assert V.run_status(work, protocol) == "not started"
    (work / "build" / "manifest.json").write_text("{}")
    assert V.run_status(work, protocol) == "built, MD not started"
    (work / "md" / "thermo.csv").write_text("step,time_ps,stage\n25,0.1,heat\n30000,120.0,anneal\n")
    assert V.run_status(work, protocol) == "MD in progress (120 of 805 ps)"


def test_densities_report_only_finished_runs(tmp_path, monkeypatch):
    """benchmarks/densities.py: a sitting with --max-runs 0 reports 'not started' and no density;
    the next sitting runs it (tiny DME box, annealed protocol) and reports density, seeds, length."""
    import densities as D

    recipe = {"name": "tiny_dme", "solvents": [{"species": "DME", "volume_fraction": 1.0}],
              "size": {"target_atoms": 400}, "forcefield": {"cutoff_nm": 0.6}, "packing": {"seed": 11}}
    (tmp_path / "pure_dme.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.setattr(D, "recipe_path", lambda s: tmp_path / f"pure_{s.lower()}.yaml")
    monkeypatch.setattr(D, "REFERENCE", {"DME": D.REFERENCE["DME"]})
    args = ["--atoms", "400", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")] + SHORT
    D.main(args + ["--max-runs", "0"])
    t = pd.read_csv(tmp_path / "o" / "densities.csv")
    assert list(t["verdict"]) == ["unfinished - not started"] and t["rho_model_g_cm3"].isna().all()
    D.main(args)
    row = pd.read_csv(tmp_path / "o" / "densities.csv").iloc[0]
    thermo = pd.read_csv(tmp_path / "w" / "DME" / "packing1_seed11" / "md" / "thermo.csv")
    rho = thermo.loc[thermo["stage"] == "production", "density_g_cm3"]
    assert len(rho) == 10 and row["rho_model_g_cm3"] == pytest.approx(rho.mean(), abs=1e-4)
    assert row["seeds"] == "packmol 11, velocities 2024" and "anneal 0.4 @ 400 K" in row["run_ps"]
    assert row["deviation_pct"] == pytest.approx(100 * (rho.mean() - 0.865) / 0.865, abs=0.02)


def test_every_mg_complex_check_also_runs_on_the_bonded_recipe():
    """Issue 29: the Mg checks (CN, Mg-O peak, dimer and monomer intact, Mg...Mg) exist for the
    bonded Mg-Cl recipe too, with the bonded complex names and the same references."""
    rows = {c.id: c for c in REAL_CHECKS}
    free = [i for i in rows if i.startswith("mg_") and rows[i].systems == (V.MG,)]
    assert free == ["mg_thf_cn", "mg_thf_o_peak", "mg_dimer_intact", "mg_monomer_intact", "mg_dimer_mgmg"]
    for i in free:
        b = rows["mgb_" + i.removeprefix("mg_")]
        assert b.systems == (V.MGB,) and b.reference == rows[i].reference
    assert REAL_SYSTEMS[V.MGB].recipe == "systems/mgcl2_licl_thf_complexes_bonded.yaml"
    metrics = {V.MGB: {"complexes": {"Mg2Cl3_THF6_bonded": {"mm_mean_A": 3.15, "mm_std_A": 0.05, "mm_max_A": 3.3},
                                     "MgCl_THF5_bonded": {"fraction_intact": 1.0, "fraction_bonds_kept": 1.0,
                                                          "instances": 2, "frames": 10}}}}
    text, value = rows["mgb_dimer_mgmg"].evaluate(metrics)
    assert (text, value) == ("3.15 +- 0.05 A (max 3.30)", 3.15) and rows["mgb_dimer_mgmg"].passes(value)
    assert not rows["mgb_dimer_mgmg"].passes(1.22)  # the collapsed dimer of issue 29
    assert rows["mgb_monomer_intact"].evaluate(metrics)[1] == 100.0


def test_finished_runs_survive_a_fresh_machine(harness, tmp_path):
    """The work folder (checkpoints, trajectories) may be gone next session: the table is rebuilt,
    number for number, from the finished runs' records archived beside it (in git)."""
    d, _, table, _ = harness
    archive = sorted(p.name for p in (d / "out2" / "validation_runs" / "tiny").iterdir())
    assert archive == ["packing1_seed31.json", "packing2_seed32.json"]
    out = tmp_path / "fresh"
    shutil.copytree(d / "out2", out)
    args = ["--systems", "tiny", "--packings", "2", "--atoms", "500", "--workdir", str(tmp_path / "empty")] + SHORT
    V.main(args + ["--out", str(out), "--table-only"])  # the fixture's tiny system and checks are still set
    rebuilt = pd.read_csv(out / "validation.csv")
    pd.testing.assert_frame_equal(rebuilt[["check", "value", "values", "verdict"]], table[["check", "value", "values", "verdict"]])
