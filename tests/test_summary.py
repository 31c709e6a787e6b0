"""summary.csv: one row per system, numbers copied from md.json, coordination.csv,
speciation.csv and barrier.json (hand-written tables, so every value is known)."""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from solvmd.analysis import columns as C
from solvmd.errors import SolvmdError
from solvmd.summary import load_system, summarize

MD = {"platform": "CUDA", "timestep_fs": 2.0, "n_frames": 500, "temperature_K": 298.15,
      "stages": {"production": {"start_step": 1000, "steps": 50000, "npt": True}},
      "density_production_mean_g_cm3": 1.1234, "density_production_std_g_cm3": 0.0056,
      "density_estimate_g_cm3": 1.10}


def _speciation(anions: list[str], fractions: dict) -> pd.DataFrame:
    rows = []
    species = anions + ([C.ALL_ANIONS] if len(anions) > 1 else [])
    for sp in species:
        for cls in (C.SSIP, C.CIP, C.AGG):
            rows.append({C.DEFINITION: C.ANION_CENTRIC, C.SPECIES: sp, C.CLASS: cls,
                         C.FRACTION: fractions[(sp, cls)], C.MEAN_COUNT: 0.0, C.MEANING: ""})
    for cls in (C.SSIP, C.CIP, C.AGG):
        rows.append({C.DEFINITION: C.CATION_CENTRIC, C.SPECIES: C.CATIONS, C.CLASS: cls,
                     C.FRACTION: fractions[(C.CATIONS, cls)], C.MEAN_COUNT: 0.0, C.MEANING: ""})
    return pd.DataFrame(rows)


def _system(root, name, coordination, speciation, barriers=None, md=MD):
    base = root / name
    (base / "build").mkdir(parents=True)
    (base / "build" / "manifest.json").write_text(json.dumps({"name": name, "n_atoms": 1234,
                                                              "temperature_K": 298.15}))
    (base / "md").mkdir()
    (base / "md" / "md.json").write_text(json.dumps(md))
    if coordination is not None:
        (base / "analysis").mkdir()
        pd.DataFrame(coordination).to_csv(base / "analysis" / "coordination.csv", index=False)
        speciation.to_csv(base / "analysis" / "speciation.csv", index=False)
        (base / "analysis" / "analysis.json").write_text("{}")
    for cv, (dg, err) in (barriers or {}).items():
        (base / "pmf" / cv).mkdir(parents=True)
        (base / "pmf" / cv / "barrier.json").write_text(json.dumps({"dG_barrier_kJ_mol": dg,
                                                                      "dG_barrier_err_kJ_mol": err}))


@pytest.fixture
def results(tmp_path):
    fr_a = {("TFSI", C.SSIP): 0.1, ("TFSI", C.CIP): 0.3, ("TFSI", C.AGG): 0.6,
            ("NO3", C.SSIP): 0.0, ("NO3", C.CIP): 0.2, ("NO3", C.AGG): 0.8,
            (C.ALL_ANIONS, C.SSIP): 0.05, (C.ALL_ANIONS, C.CIP): 0.25, (C.ALL_ANIONS, C.AGG): 0.70,
            (C.CATIONS, C.SSIP): 0.15, (C.CATIONS, C.CIP): 0.05, (C.CATIONS, C.AGG): 0.80}
    _system(tmp_path, "sys_a",
            {C.PARTNER: ["TFSI", "NO3", "DME", C.TOTAL], C.CN_MOL: [1.5, 0.5, 2.0, 4.0],
             C.CN_DON: [1.75, 0.75, 3.5, 6.0]},
            _speciation(["TFSI", "NO3"], fr_a), barriers={"li_dme": (23.4, 1.2), "li_tfsi": (31.0, 2.5)})
    fr_b = {("FSI", C.SSIP): 0.4, ("FSI", C.CIP): 0.35, ("FSI", C.AGG): 0.25,
            (C.CATIONS, C.SSIP): 0.5, (C.CATIONS, C.CIP): 0.2, (C.CATIONS, C.AGG): 0.3}
    _system(tmp_path, "sys_b",
            {C.PARTNER: ["FSI", "DME", C.TOTAL], C.CN_MOL: [0.9, 2.6, 3.5], C.CN_DON: [1.1, 4.9, 6.0]},
            _speciation(["FSI"], fr_b), md={**MD, "density_production_mean_g_cm3": 0.97})
    return tmp_path


def test_rows_copy_the_numbers_of_the_analysis_tables(results):
    table = summarize(results).set_index("system")
    assert list(table.index) == ["sys_a", "sys_b"]
    a, b = table.loc["sys_a"], table.loc["sys_b"]
    assert a["density_g_cm3"] == 1.1234 and a["density_std_g_cm3"] == 0.0056 and b["density_g_cm3"] == 0.97
    assert a["production_ps"] == pytest.approx(100.0) and a["n_atoms"] == 1234 and a["platform"] == "CUDA"
    assert (a["cn_molecules_TFSI"], a["cn_donor_atoms_TFSI"], a["cn_molecules_NO3"]) == (1.5, 1.75, 0.5)
    assert (a["cn_molecules_DME"], a["cn_molecules_total"], a["cn_donor_atoms_total"]) == (2.0, 4.0, 6.0)
    assert (b["cn_molecules_FSI"], b["cn_donor_atoms_DME"]) == (0.9, 4.9)
    assert math.isnan(b["cn_molecules_TFSI"])  # partner absent from that system
    # anion-centric: the "all anions" row when there are several anion species, else the one species
    assert (a["ssip_fraction_anion_centric"], a["cip_fraction_anion_centric"],
            a["agg_fraction_anion_centric"]) == (0.05, 0.25, 0.70)
    assert (b["ssip_fraction_anion_centric"], b["agg_fraction_anion_centric"]) == (0.4, 0.25)
    assert (a["ssip_fraction_cation_centric"], b["cip_fraction_cation_centric"]) == (0.15, 0.2)
    assert (a["pmf_li_dme_dG_barrier_kJ_mol"], a["pmf_li_dme_dG_barrier_err_kJ_mol"]) == (23.4, 1.2)
    assert a["pmf_li_tfsi_dG_barrier_kJ_mol"] == 31.0
    assert math.isnan(b["pmf_li_dme_dG_barrier_kJ_mol"])  # no PMF for that system


def test_cli_writes_csv_and_html(results):
    out = subprocess.run([sys.executable, "-m", "solvmd.cli", "summarize", str(results), "--systems", "sys_b",
                          "--csv", str(results / "summary.csv"), "--html", str(results / "summary.html")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(results / "summary.csv")
    assert list(table["system"]) == ["sys_b"] and table.loc[0, "cn_molecules_DME"] == 2.6
    assert "<table" in (results / "summary.html").read_text()


def test_missing_results_are_named(tmp_path):
    with pytest.raises(SolvmdError, match="no finished systems"):
        summarize(tmp_path)
    with pytest.raises(SolvmdError, match="no results for system 'nope'"):
        load_system(tmp_path, "nope")
