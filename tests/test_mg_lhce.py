"""Mg2+ complexes and LHCE recipes (issue 7): geometry, counts, charge, and bad input.

Every test is small (no MD): start geometries of the pre-assembled complexes, exact
counts of recipes, the net charge of a built system, and the error messages for recipes
that mix clashing templates, complexes whose charge does not balance, and neutral solvents
listed as salt ions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solvmd import complexes
from solvmd import species as species_registry
from solvmd.assembly.complex_geometry import build_structure
from solvmd.assembly.composition import resolve
from solvmd.errors import SolvmdError
from solvmd.recipe import load_recipe, parse_recipe


def _angle(a, b, c) -> float:
    u, v = a - b, c - b
    return float(np.degrees(np.arccos(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))))


def _inter_residue_min(st) -> float:
    sizes = [species_registry.get(m).n_atoms for m in st.members]
    res = np.repeat(np.arange(len(sizes)), sizes)
    d = np.linalg.norm(st.xyz_A[:, None] - st.xyz_A[None], axis=-1)
    bonded = {(a, b) for a, b, _ in st.bonds} | {(b, a) for a, b, _ in st.bonds}
    d[res[:, None] == res[None]] = np.inf
    for a, b in bonded:
        d[a, b] = np.inf
    metals = st.metals
    d[np.ix_(metals, metals)] = np.inf
    return float(d.min())


# ------------------------------------------------------------------ complex geometry


def test_mgcl_thf5_is_an_octahedron_with_the_tabulated_distances():
    st = build_structure("MgCl_THF5")
    x = st.xyz_A
    assert st.members == ["Mg", "Cl"] + ["THF"] * 5
    assert complexes.unit_charge("MgCl_THF5") == 1
    assert sum(species_registry.get(m).charge for m in st.members) == 1
    mg = x[st.metals[0]]
    donors = [d for _, d, _ in st.bonds]
    names = [species_registry.get("Mg").atom_names[0], species_registry.get("Cl").atom_names[0]]
    names += species_registry.get("THF").atom_names * 5
    assert names[donors[0]] == "Cl1"
    r = np.array([np.linalg.norm(x[d] - mg) for d in donors])
    assert r[0] == pytest.approx(2.40, abs=1e-6)  # Mg-Cl
    assert r[1:] == pytest.approx([2.08] * 5, abs=1e-6)  # Mg-O(THF)
    assert [names[d] for d in donors[1:]] == ["O1"] * 5  # THF binds through its only O
    angles = sorted(_angle(x[a], mg, x[b]) for a, b in itertools.combinations(donors, 2))
    assert angles[:12] == pytest.approx([90.0] * 12, abs=1e-6)  # 12 cis pairs
    assert angles[12:] == pytest.approx([180.0] * 3, abs=1e-6)  # 3 trans pairs
    assert _inter_residue_min(st) > 1.8  # ligands placed without clashes (angstrom)


def test_mg2cl3_thf6_is_a_face_sharing_bioctahedron():
    st = build_structure("Mg2Cl3_THF6")
    x = st.xyz_A
    assert st.members == ["Mg", "Mg", "Cl", "Cl", "Cl"] + ["THF"] * 6
    assert complexes.unit_charge("Mg2Cl3_THF6") == 1
    m1, m2 = (x[i] for i in st.metals)
    assert np.linalg.norm(m1 - m2) == pytest.approx(3.15, abs=1e-6)  # Mg...Mg
    for b in st.bridging:  # every mu-Cl bound to both Mg at 2.52 A
        assert np.linalg.norm(x[b] - m1) == pytest.approx(2.52, abs=1e-6)
        assert np.linalg.norm(x[b] - m2) == pytest.approx(2.52, abs=1e-6)
    assert len(st.bonds) == 12
    o_bonds = [(a, d) for a, d, r in st.bonds if d not in st.bridging]
    assert len(o_bonds) == 6 and sum(a == st.metals[0] for a, _ in o_bonds) == 3
    for a, d in o_bonds:
        assert np.linalg.norm(x[d] - x[a]) == pytest.approx(2.08, abs=1e-6)
        # each THF O is trans to one bridging Cl of its Mg
        trans = max(_angle(x[d], x[a], x[b]) for b in st.bridging)
        assert trans == pytest.approx(180.0, abs=1e-6)
    # Mg-Cl-Mg bridge angle from the two distances: 2 asin(3.15 / 2 / 2.52)
    expect = 2 * np.degrees(np.arcsin(3.15 / 2 / 2.52))
    assert _angle(m1, x[st.bridging[0]], m2) == pytest.approx(expect, abs=1e-6)
    assert _inter_residue_min(st) > 1.8


# ------------------------------------------------------------------ recipes: counts and charge


def test_lhce_counts_follow_the_molar_ratio_exactly():
    r = load_recipe("systems/lhce_fsi_dme_tte.yaml")
    r = r.model_copy(update={"size": r.size.model_copy(update={"salt_units": 10})})
    comp = resolve(r)
    assert comp.counts == {"Li": 10, "FSI": 10, "DME": 12, "TTE": 30}  # 1 : 1.2 : 3
    assert comp.net_charge == 0
    assert comp.n_atoms == 10 * 1 + 10 * 9 + 12 * 16 + 30 * 18  # 832
    for path, solvent, diluent in (("systems/lhce_fsi_dme_btfe.yaml", "DME", "BTFE"),
                                   ("systems/lhce_fsi_dol_tte.yaml", "DOL", "TTE")):
        c = resolve(load_recipe(path)).counts
        assert c == {"Li": 60, "FSI": 60, solvent: 72, diluent: 180}


def test_hce_and_dilute_lifsi_dme_concentrations():
    for path, molar in (("systems/li_fsi_dme_1M.yaml", 1.0), ("systems/li_fsi_dme_4M.yaml", 4.0)):
        comp = resolve(load_recipe(path))
        assert comp.counts["Li"] == comp.counts["FSI"] == 100
        assert comp.concentrations_M["LiFSI"] == pytest.approx(molar, rel=0.01)
    dme_per_li = [resolve(load_recipe(p)).counts["DME"] / 100 for p in
                  ("systems/li_fsi_dme_1M.yaml", "systems/li_fsi_dme_4M.yaml")]
    assert dme_per_li[0] > 4 * dme_per_li[1]  # ~8.4 vs ~1.5 DME per Li+


def test_complex_recipe_counts_and_neutrality():
    comp = resolve(load_recipe("systems/mgcl2_licl_thf_complexes.yaml"))
    assert comp.units["MgCl_THF5"] == 2 * comp.units["Mg2Cl3_THF6"]  # 0.2 M : 0.1 M
    n_mono, n_di = comp.units["MgCl_THF5"], comp.units["Mg2Cl3_THF6"]
    c = comp.counts
    assert c["Mg"] == n_mono + 2 * n_di
    assert c["Cl"] == (n_mono + n_di) + n_mono + 3 * n_di + comp.units["Li"]  # counter-ions + ligands + LiCl
    assert c["THF"] == comp.units["THF"] + 5 * n_mono + 6 * n_di
    assert comp.net_charge == 0
    mg_molar = sum(comp.concentrations_M[k] * (1 if "MgCl_" in k else 2) for k in comp.concentrations_M if "Mg" in k)
    assert mg_molar == pytest.approx(0.4, rel=0.03)
    assert comp.concentrations_M["LiCl"] == pytest.approx(0.8, rel=0.03)


def test_built_complex_system_is_neutral_and_packed_rigidly(tmp_path):
    import openmm

    from solvmd.assembly.system import build_system, load_build

    r = parse_recipe({"name": "apc_tiny", "salts": [{"cation": "Mg2Cl3_THF6", "anion": "Cl", "molar_ratio": 1}],
                      "solvents": [{"species": "THF", "molar_ratio": 30}], "size": {"salt_units": 1},
                      "forcefield": {"cutoff_nm": 0.7}})
    man = build_system(r, tmp_path / "b")
    pdb, system, man = load_build(tmp_path / "b")
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    q = np.array([nb.getParticleParameters(i)[0].value_in_unit(openmm.unit.elementary_charge)
                  for i in range(system.getNumParticles())])
    assert q.sum() == pytest.approx(0.0, abs=1e-9)
    el = [a.element.symbol for a in pdb.topology.atoms()]
    assert [round(v, 6) for v, e in zip(q, el) if e == "Mg"] == [1.6, 1.6]  # +2 x charge_scale 0.8
    (cx,) = man["complexes"]
    assert cx["name"] == "Mg2Cl3_THF6" and cx["count"] == 1 and cx["charge"] == 1
    inst = cx["instances"][0]
    assert [el[i] for i in inst["metals"]] == ["Mg", "Mg"] and [el[i] for i in inst["bridging"]] == ["Cl"] * 3
    xyz = np.array(pdb.getPositions(asNumpy=True).value_in_unit(openmm.unit.angstrom))
    d = np.array([np.linalg.norm(xyz[a] - xyz[b]) for a, b in inst["bonds"]])
    assert sorted(np.round(d, 2)) == [2.08] * 6 + [2.52] * 6  # packmol moved the complex as one rigid body
    assert np.linalg.norm(xyz[inst["metals"][0]] - xyz[inst["metals"][1]]) == pytest.approx(3.15, abs=2e-3)
    assert man["species"][0]["name"] == "Mg" and man["species"][0]["count"] == 2


# ------------------------------------------------------------------ bad input


def _recipe(salts, solvents=({"species": "DME", "molar_ratio": 1.2},)):
    return {"name": "bad", "salts": list(salts), "solvents": list(solvents), "size": {"salt_units": 4}}


@pytest.mark.parametrize("salt, field, words", [
    ({"cation": "TTE", "anion": "FSI", "molar_ratio": 1}, "salts.0.cation",
     ["TTE is a neutral solvent species", "list it under solvents", "Allowed cations: Li,", "MgCl_THF5"]),
    ({"cation": "Li", "anion": "BTFE", "molar_ratio": 1}, "salts.0.anion",
     ["BTFE is a neutral solvent species", "Allowed anions: Cl, FSI"]),
    ({"formula": {"Li": 1, "TTE": 1}, "molar_ratio": 1}, "salts.0.formula",
     ["TTE: a solvent (neutral, charge 0)"]),
    ({"cation": "MgCl_THF4", "anion": "Cl", "molar_ratio": 1}, "salts.0.cation",
     ["unknown species 'MgCl_THF4'", "allowed cations"]),
])
def test_diluent_or_unknown_name_as_salt_ion_is_refused(salt, field, words):
    with pytest.raises(SolvmdError) as err:
        parse_recipe(_recipe([salt]))
    msg = str(err.value)
    assert f"{field}:" in msg
    for w in words:
        assert w in msg


def _with_extra_species(monkeypatch, sp):
    reg = dict(species_registry.registry())
    reg[sp.name] = sp
    monkeypatch.setattr(species_registry, "registry", lambda: reg)


def test_two_species_with_the_same_residue_name_are_refused(monkeypatch):
    _with_extra_species(monkeypatch, species_registry.Species(
        name="DMX", smiles="COCCOC", charge=0, residue="DME", role="solvent", xml="dme.xml",
        density_g_cm3=0.865, donors=("O",)))
    with pytest.raises(SolvmdError) as err:
        parse_recipe(_recipe([{"cation": "Li", "anion": "FSI", "molar_ratio": 1}],
                             [{"species": "DME", "molar_ratio": 1.2}, {"species": "DMX", "molar_ratio": 3}]))
    msg = str(err.value)
    assert "solvents.1.species: species DMX clashes with DME (solvents.0.species)" in msg
    assert "residue name 'DME'" in msg


def test_overlapping_atom_types_from_two_xml_files_are_refused(monkeypatch, tmp_path):
    xml = (species_registry.FORCEFIELD_DIR / "dme.xml").read_text().replace('Residue name="DME"', 'Residue name="DMY"')
    (tmp_path / "dmy.xml").write_text(xml)  # a copy of DME whose types/classes are not re-prefixed
    _with_extra_species(monkeypatch, species_registry.Species(
        name="DMY", smiles="COCCOC", charge=0, residue="DMY", role="solvent", xml=str(tmp_path / "dmy.xml"),
        density_g_cm3=0.865, donors=("O",)))
    with pytest.raises(SolvmdError) as err:
        parse_recipe(_recipe([{"cation": "Li", "anion": "FSI", "molar_ratio": 1}],
                             [{"species": "DME", "molar_ratio": 1.2}, {"species": "DMY", "molar_ratio": 3}]))
    msg = str(err.value)
    assert "solvents.1.species: species DMY clashes with DME" in msg
    assert "both define atom type name(s) ['DME-CE'" in msg and "atom class name(s) ['DME_CT'" in msg


def test_shipped_species_share_no_residue_type_or_class_names():
    assert species_registry.template_conflicts(list(species_registry.registry())) == []


MONO = {"label": "x", "geometry": "octahedral", "metals": ["Mg"], "ligands": ["Cl"] + ["THF"] * 5,
        "charge": 1, "distances_A": {"O": 2.08, "Cl": 2.4}}


@pytest.mark.parametrize("change, words", [
    ({"charge": 2}, ["MgX.charge: declared +2 but the members sum to +1", "1 x Mg (+2), 1 x Cl (-1), 5 x THF (+0)"]),
    ({"ligands": ["Cl", "Cl"] + ["THF"] * 4, "charge": 1}, ["MgX.charge: declared +1 but the members sum to +0"]),
    ({"ligands": ["DME"] + ["THF"] * 5, "charge": 2}, ["DME has 2 donor atoms", "monodentate"]),
    ({"metals": ["TTE"]}, ["MgX.metals", "TTE is a solvent"]),
    ({"ligands": ["THF"] * 5}, ["MgX.ligands", "takes 6 ligands, got 5"]),
    ({"distances_A": {"O": 2.08}}, ["MgX.distances_A", "missing ['Cl']"]),
])
def test_bad_complex_definitions_name_the_field(change, words):
    with pytest.raises(SolvmdError) as err:
        complexes.parse_complexes({"MgX": {**MONO, **change}}, "complexes.yaml")
    msg = str(err.value)
    for w in words:
        assert w in msg


def test_registry_complexes_balance():
    for name, cx in complexes.registry().items():
        assert cx.charge == sum(species_registry.get(m).charge for m in cx.members) == 1, name
