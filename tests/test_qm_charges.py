"""QM-derived charges (issue 13): the committed RESP / ESP charges and the fitting tools.

The committed charges are checked without any QM program (sum, symmetry, XML = JSON).
The tool tests run the real AmberTools ``resp`` and PySCF when installed
(``pip install 'solvmd[charges]'``) and are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from rdkit import Chem

from solvmd import species

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "forcefields" / "tools"
QM = ROOT / "forcefields" / "qm"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    sys.modules[name] = mod  # dataclasses look their module up while the file executes
    spec.loader.exec_module(mod)
    return mod


qm_esp = _tool("qm_esp")
needs_resp = pytest.mark.skipif(shutil.which("resp") is None, reason="AmberTools resp not installed ([charges] extra)")
needs_pyscf = pytest.mark.skipif(importlib.util.find_spec("pyscf") is None,
                                 reason="pyscf not installed ([charges] extra)")


# ------------------------------------------------------------------ committed fluoroether charges
@pytest.mark.parametrize("name", ["TTE", "BTFE"])
def test_committed_resp_charges_sum_symmetry_and_xml(name):
    rec = json.loads((QM / f"resp_{name}.json").read_text())
    sp = species.get(name)
    assert rec["smiles"] == sp.smiles and rec["atom_names"] == sp.atom_names
    q = np.array([rec["charges"][a] for a in sp.atom_names])
    assert abs(q.sum()) < 1e-6
    ranks = np.array(list(Chem.CanonicalRankAtoms(sp.mol, breakTies=False)))
    for r in np.unique(ranks):
        assert np.ptp(q[ranks == r]) < 1e-9, (name, np.array(sp.atom_names)[ranks == r])
    assert rec["n_conformers"] >= 2
    # the XML template carries exactly these charges
    res = ElementTree.parse(sp.xml_path).getroot().find(f".//Residue[@name='{sp.residue}']")
    xml_q = {a.get("name"): float(a.get("charge")) for a in res.findall("Atom")}
    assert [xml_q[a] for a in sp.atom_names] == pytest.approx(q.tolist(), abs=1e-9)
    # fluorination pulls charge off the ether O (docs/science.md section 4): less negative than OPLS -0.40
    o = sp.atom_names.index("O1")
    assert q[o] > -0.40


def test_make_xml_refuses_charges_fitted_for_another_smiles(tmp_path, monkeypatch):
    mx = _tool("make_xml")
    spec = next(s for s in mx.SPECIES if s.name == "BTFE")
    rec = json.loads((QM / spec.charges_json).read_text())
    rec["smiles"] = "FC(F)(F)COCC(F)F"
    (tmp_path / spec.charges_json).write_text(json.dumps(rec))
    monkeypatch.setattr(mx, "QM_DIR", tmp_path)
    with pytest.raises(ValueError, match="re-run the charge fit"):
        mx.qm_charges(species.get("BTFE"), spec)


# ------------------------------------------------------------------ fitting helpers
def test_finalize_checks_sum_and_symmetry():
    q = qm_esp.finalize(np.array([0.3000004, -0.6, 0.15, 0.1499996]), [0, 1, 2, 2], 0.0)
    assert abs(q.sum()) < 1e-12 and q[2] == q[3]
    with pytest.raises(qm_esp.ChargeFitError, match="sum to"):
        qm_esp.finalize(np.array([0.3, -0.6, 0.15, 0.16]), [0, 1, 2, 3], 0.0)
    with pytest.raises(qm_esp.ChargeFitError, match="unequal"):
        qm_esp.finalize(np.array([0.3, -0.6, 0.10, 0.20]), [0, 1, 2, 2], 0.0)


def test_mk_points_lie_outside_the_scaled_vdw_spheres():
    el = ["O", "H", "H"]
    xyz = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    pts = qm_esp.mk_points(el, xyz)
    d = np.linalg.norm(pts[:, None] - xyz[None], axis=2)
    r = np.array([qm_esp.MK_RADII_A[e] for e in el])
    assert len(pts) > 100 and np.all(d >= 1.4 * r[None] - 1e-9)
    with pytest.raises(qm_esp.ChargeFitError, match="Merz-Kollman radius"):
        qm_esp.mk_points(["Xe"], xyz[:1])


@needs_resp
def test_resp_recovers_point_charges_and_applies_group_constraint(tmp_path):
    el = ["C", "O", "H", "H"]
    xyz = np.array([[0, 0, 0], [1.2, 0, 0], [-0.55, 0.95, 0], [-0.55, -0.95, 0]], dtype=float)
    true = np.array([0.45, -0.55, 0.05, 0.05])
    pts = qm_esp.mk_points(el, xyz)
    esp = (true[None] / (np.linalg.norm(pts[:, None] - xyz[None], axis=2) / qm_esp.BOHR_A)).sum(1)
    qm_esp.write_espot(tmp_path / "x.esp", xyz, pts, esp)
    mol = qm_esp.RespMolecule([6, 8, 1, 1], [0, 0, 0, 3])
    q, _ = qm_esp.run_resp(tmp_path, qm_esp.resp_input("t", [mol], 0, 1e-5, False), tmp_path / "x.esp", "a")
    assert qm_esp.read_qout(q, 4) == pytest.approx(true, abs=2e-3)
    inp = qm_esp.resp_input("t", [mol], 0, 1e-5, False, groups=[(0.0, [1, 2])])
    q, _ = qm_esp.run_resp(tmp_path, inp, tmp_path / "x.esp", "b")
    got = qm_esp.read_qout(q, 4)
    assert got[0] + got[1] == pytest.approx(0.0, abs=2e-6) and got[2] == got[3]


@needs_pyscf
def test_esp_of_a_cation_far_away_is_its_charge_over_r():
    from pyscf import gto, scf

    mol = gto.M(atom="Li 0 0 0", basis="sto-3g", charge=1, verbose=0)
    mf = scf.RHF(mol).run()
    v = qm_esp.esp_at(mol, mf.make_rdm1(), np.array([[0.0, 0.0, 10 * qm_esp.BOHR_A]]))
    assert v[0] == pytest.approx(0.1, abs=1e-5)  # hartree/e at 10 bohr


# ------------------------------------------------------------------ M-N4 flake
@pytest.mark.parametrize("metal", ["Zn", "Fe", "Co"])  # Co: no sourced charges, its flake must still build
def test_mn4_flake_is_the_sheet_site_capped_and_d2h(metal):
    mn4 = _tool("mn4_site_charges")
    el, xyz, roles = mn4.build_flake(metal)
    assert sorted(set(el)) == sorted({"C", "H", "N", metal})
    assert (el.count("C"), el.count("N"), el.count("H"), el.count(metal)) == (26, 4, 14, 1)
    assert roles.count("C_alpha") == 8 and roles.count("N_site") == 4
    m = el.index(metal)
    d_mn = np.linalg.norm(xyz[[i for i, e in enumerate(el) if e == "N"]] - xyz[m], axis=1)
    from solvmd.assembly.surfaces import surface_parameters

    assert d_mn == pytest.approx(surface_parameters()["geometry"]["MN4_m_n_A"][metal], abs=1e-6)
    ch = [i for i, e in enumerate(el) if e == "H"]
    assert min(np.linalg.norm(xyz[ch][:, None] - xyz[None, [i for i, e in enumerate(el) if e == "C"]], axis=2).min(1)) \
        == pytest.approx(mn4.CH_BOND_A, abs=1e-9)
    classes = mn4.symmetry_classes(el, xyz)
    assert len({classes[i] for i, r in enumerate(roles) if r == "N_site"}) == 1
    assert len({classes[i] for i, r in enumerate(roles) if r == "C_alpha"}) == 2  # D2h: two sets of 4
    with pytest.raises(mn4.qm_esp.ChargeFitError, match="D2h"):
        mn4.symmetry_classes(el, xyz + np.where(np.arange(len(el))[:, None] == 0, 0.1, 0.0))


@pytest.mark.parametrize("path", sorted(QM.glob("mn4_*.json")), ids=lambda p: p.stem)
def test_committed_mn4_charges_are_the_fit_and_in_surfaces_yaml(path):
    from solvmd.assembly.surfaces import surface_parameters

    rec = json.loads(path.read_text())
    q, roles = np.array(rec["charges"]), rec["roles"] + ["H"] * (len(rec["charges"]) - len(rec["roles"]))
    assert abs(q.sum()) < 1e-5  # whole flake neutral (6-decimal rounding in the record)
    core = sum(x for x, r in zip(q, roles) if r in ("metal", "N_site", "C_alpha"))
    assert abs(core) < 1e-5  # the defect group constraint
    n = [x for x, r in zip(q, roles) if r == "N_site"]
    assert np.ptp(n) < 1e-6  # the four N are symmetry-equal
    yaml_q = surface_parameters()["charges"]["MN4"][rec["metal"]]
    assert yaml_q["metal"] == pytest.approx(rec["q_metal"], abs=5e-5)
    assert yaml_q["N_site"] == pytest.approx(rec["q_N_site"], abs=5e-5)
    assert path.name in yaml_q["source"] and "[ESP26]" in yaml_q["source"]


def test_a_non_aufbau_scf_state_is_refused_before_any_fit(tmp_path):
    """An occupied orbital above an empty one of the same spin (an excited configuration that level
    shifts or MOM can converge to, as the Fe flake's S = 2 run did) stops the charge run; an aufbau
    occupation, or alpha HOMO above the beta LUMO (allowed at fixed spin), passes."""
    mn4 = _tool("mn4_site_charges")
    occ = np.array([1.0, 1.0, 0.0])
    mn4.check_aufbau(np.array([[-0.5, -0.3, -0.1], [-0.6, -0.4, -0.35]]), np.array([occ, occ]), tmp_path)
    with pytest.raises(qm_esp.ChargeFitError, match=r"beta occupation is not aufbau \(HOMO -0.2000 Eh above LUMO -0.3000"):
        mn4.check_aufbau(np.array([[-0.5, -0.3, -0.1], [-0.6, -0.2, -0.3]]), np.array([occ, occ]), tmp_path)
    with pytest.raises(qm_esp.ChargeFitError, match="closed shell occupation"):
        mn4.check_aufbau(np.array([-0.5, -0.1, -0.3]), np.array([2.0, 2.0, 0.0]), tmp_path)


@needs_pyscf
def test_open_shell_route_smearing_then_aufbau_reaches_the_plain_ground_state(tmp_path):
    """The open-shell route of the M-N4 tool (level-shifted coarse start, Fermi smearing at fixed 2S
    annealed 0.02 -> 0.005 Eh, then an unsmeared aufbau SCF) on triplet O2 (UKS PBE/STO-3G, 1.21 A): it ends aufbau in both
    spin channels, with the spin fixed, at the energy a plain UKS from PySCF's default guess finds."""
    from pyscf import dft, gto

    mn4 = _tool("mn4_site_charges")
    mol = gto.M(atom="O 0 0 0; O 0 0 1.21", basis="sto-3g", spin=2, verbose=0)
    ref = dft.UKS(mol).density_fit(auxbasis=mn4.AUXBASIS)
    ref.xc = "pbe"
    e_ref = ref.kernel()
    mf = dft.UKS(mol).density_fit(auxbasis=mn4.AUXBASIS)
    mf.xc, mf.conv_tol, mf.level_shift = "pbe", 1e-9, 0.2
    msgs = []
    dm0 = mn4.anneal(mf, tmp_path, msgs.append)
    assert np.einsum("ij,ji", dm0[0] - dm0[1], mol.intor("int1e_ovlp")) == pytest.approx(2.0)  # 2S fixed
    assert msgs[0].startswith("coarse level-shifted start") and (tmp_path / "anneal.npz").exists()
    assert [m.split(" Eh")[0] for m in msgs[1:]] == [f"smearing sigma {s}" for s in mn4.ANNEAL_SIGMA_EH]
    mf = mn4.converge(mf, dm0, tmp_path, msgs.append)
    mn4.check_aufbau(mf.mo_energy, mf.mo_occ, tmp_path)
    assert [int(o.sum()) for o in mf.mo_occ] == [9, 7]
    assert mf.e_tot == pytest.approx(e_ref, abs=1e-6)
    assert mf.spin_square()[0] == pytest.approx(2.0, abs=0.02)
