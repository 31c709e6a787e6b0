"""Issue 13, bad input for the force-field tools: each a clear error, nothing in forcefields/ overwritten.

(a) a charge-generation result whose total charge is off by more than 1e-6 e (the RESP
    finalisation, the XML generator reading a charge file, the M-N4 `update` step);
(b) a species whose XML template no longer matches its SMILES;
(c) a bonded complex whose geometry is not the declared one: tests/test_bonded_complexes.py
    (`test_packed_geometry_that_is_not_the_declared_one_is_refused`,
    `test_bad_bonded_definitions_name_the_field`).
No QM program runs here: the validating/writing functions get small synthetic inputs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from solvmd import species
from solvmd.errors import SolvmdError

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "forcefields" / "tools"
QM = ROOT / "forcefields" / "qm"


def _tool(name: str):
    """A forcefields/tools script as a module (as tests/test_qm_charges.py loads them)."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", "").startswith(str(TOOLS)):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


mn4 = _tool("mn4_site_charges")
qm_esp = _tool("qm_esp")


# ------------------------------------------------------------------ (a) total charge off by > 1e-6 e
def test_finalize_refuses_a_sum_just_beyond_the_tolerance():
    """4 atoms: resp prints 6 decimals, so the raw sum may be off by 4 x 5e-7 + 1e-6 = 3e-6 e;
    3.5e-6 off is refused, 2.5e-6 off is put back to exactly the formal charge."""
    base = np.array([0.4, -0.6, 0.1, 0.1])
    with pytest.raises(qm_esp.ChargeFitError, match=r"off by \+3\.50e-06"):
        qm_esp.finalize(base + [3.5e-6, 0, 0, 0], [0, 1, 2, 2], 0.0)
    q = qm_esp.finalize(base + [2.5e-6, 0, 0, 0], [0, 1, 2, 2], 0.0)
    assert abs(q.sum()) < 1e-12 and q[0] == pytest.approx(0.4 + 2.5e-6 - 2.5e-6 / 4, abs=1e-12)


def test_make_xml_refuses_a_charge_file_off_by_2e6_and_writes_nothing(tmp_path, monkeypatch):
    mx = _tool("make_xml")
    spec = next(s for s in mx.SPECIES if s.name == "TTE")
    rec = json.loads((QM / spec.charges_json).read_text())
    rec["charges"]["O1"] += 2e-6
    qm = tmp_path / "qm"
    qm.mkdir()
    for f in QM.glob("resp_*.json"):
        shutil.copy(f, qm / f.name)
    (qm / spec.charges_json).write_text(json.dumps(rec))
    monkeypatch.setattr(mx, "QM_DIR", qm)
    out = tmp_path / "ff"
    out.mkdir()
    (out / "tte.xml").write_text("previous file\n")
    with pytest.raises(ValueError, match=r"TTE: charges in .*resp_TTE.json sum to \+0\.0000020"):
        mx.main(["--outdir", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["tte.xml"]  # no other XML written before the error
    assert (out / "tte.xml").read_text() == "previous file\n"


def _mn4_record(metal: str, q_metal: float, q_n: float, off: float = 0.0) -> dict:
    return {"metal": metal, "two_S": 1, "functional": "pbe", "basis": "def2-svp", "q_metal": q_metal,
            "q_N_site": q_n, "q_C_alpha": -(q_metal + 4 * q_n) / 8 + off}


def _surfaces_copy(tmp_path, monkeypatch, *records):
    qm = tmp_path / "qm"
    qm.mkdir()
    for rec in records:
        (qm / f"mn4_{rec['metal']}.json").write_text(json.dumps(rec))
    monkeypatch.setattr(mn4, "RESULTS", qm)
    path = tmp_path / "surfaces.yaml"
    shutil.copy(ROOT / "forcefields" / "surfaces.yaml", path)
    return path


def test_mn4_update_fills_the_empty_line_of_an_unsourced_metal(tmp_path, monkeypatch):
    """The refusal keeps `Co: {metal: null, ...}`; `update` replaces that line with the fit."""
    path = _surfaces_copy(tmp_path, monkeypatch, _mn4_record("Co", 0.4123, -0.0917))
    assert yaml.safe_load(path.read_text())["charges"]["MN4"]["Co"]["metal"] is None
    assert mn4.cmd_update(path) == ["Co"]
    after = yaml.safe_load(path.read_text())
    co = after["charges"]["MN4"]["Co"]
    assert (co["metal"], co["N_site"]) == (0.4123, -0.0917)
    assert "[ESP26]" in co["source"] and "mn4_Co.json" in co["source"]
    before = yaml.safe_load((ROOT / "forcefields" / "surfaces.yaml").read_text())
    before["charges"]["MN4"]["Co"] = co
    assert after == before  # nothing else changed


def test_mn4_update_refuses_a_non_neutral_site_and_leaves_surfaces_yaml(tmp_path, monkeypatch):
    """A good record (Co) and a bad one (Ni: M + 4 N + 8 C_alpha = 8 x 2.5e-7 = 2e-6 e): error, file untouched."""
    path = _surfaces_copy(tmp_path, monkeypatch, _mn4_record("Co", 0.41, -0.09),
                          _mn4_record("Ni", 0.35, -0.08, off=2.5e-7))
    text = path.read_text()
    with pytest.raises(qm_esp.ChargeFitError, match=r"mn4_Ni.json: M \+ 4 N \+ 8 C_alpha = \+2\.00e-06, not neutral"):
        mn4.cmd_update(path)
    assert path.read_text() == text


# ------------------------------------------------------------------ (b) template vs SMILES
WRONG_TTE = "FC(F)(F)C(F)OCC(F)(F)C(F)F"  # C5H4F8O like TTE, another connectivity


@pytest.fixture
def tte_with_another_smiles(monkeypatch):
    reg = species.registry()
    assert species.Species(**{**dataclasses.asdict(reg["TTE"]), "smiles": WRONG_TTE}).n_atoms == reg["TTE"].n_atoms
    wrong = dataclasses.replace(reg["TTE"], smiles=WRONG_TTE)
    monkeypatch.setattr(species, "registry", lambda: {**reg, "TTE": wrong})
    species._refined_conformer.cache_clear()
    yield wrong
    species._refined_conformer.cache_clear()


def test_species_whose_template_no_longer_matches_its_smiles(tte_with_another_smiles):
    with pytest.raises(SolvmdError) as err:
        species.get("TTE").coordinates()
    msg = str(err.value)
    assert msg.startswith("species TTE: No template found for residue") and "\n" not in msg
    assert "no longer matches the SMILES in forcefields/species.yaml" in msg and "make_xml.py" in msg


def test_build_with_a_stale_template_is_one_clear_error_and_writes_nothing(tte_with_another_smiles, tmp_path):
    from solvmd.assembly.system import build_system
    from solvmd.recipe import parse_recipe

    r = parse_recipe({"name": "stale", "salts": [{"cation": "Li", "anion": "FSI", "molarity_M": 1.0}],
                      "solvents": [{"species": "DME", "volume_fraction": 0.5},
                                   {"species": "TTE", "volume_fraction": 0.5}],
                      "size": {"salt_units": 2}, "forcefield": {"cutoff_nm": 0.6}})
    with pytest.raises(SolvmdError, match="TTE.*make_xml.py"):
        build_system(r, tmp_path / "b")
    assert not (tmp_path / "b" / "manifest.json").exists() and not (tmp_path / "b" / "system.xml").exists()
