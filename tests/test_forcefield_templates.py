"""Species force-field XMLs (forcefields/*.xml): templates, coverage, numbers.

Every species of the registry is parameterized alone with its own XML file; all XMLs
are also loaded together. Numbers checked: template charge sums, exact term counts
against the RDKit graph, minimized geometries, and the OPLS unit conversions.
"""

from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import combinations

import numpy as np
import openmm
import pytest
from openmm import app, unit

from solvmd import species as S

REGISTRY = S.registry()
NAMES = sorted(REGISTRY)
XML_FILES = sorted({str(sp.xml_path) for sp in REGISTRY.values()})


def _graph(mol):
    bonds = {frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in mol.GetBonds()}
    nbr = {a.GetIdx(): [n.GetIdx() for n in a.GetNeighbors()] for a in mol.GetAtoms()}
    angles = {(min(i, k), j, max(i, k)) for j in nbr for i, k in combinations(nbr[j], 2)}
    dihedrals = set()
    for b in mol.GetBonds():
        j, k = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        for i in nbr[j]:
            for l in nbr[k]:
                if len({i, j, k, l}) == 4:
                    dihedrals.add(min((i, j, k, l), (l, k, j, i)))
    return bonds, angles, dihedrals


def _forces(system, cls):
    return [f for f in system.getForces() if isinstance(f, cls)]


def _context(system):
    return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))


_CACHE: dict = {}


def _built(name):
    """(species, topology, RDKit positions, System) for one molecule with its own XML only."""
    if name not in _CACHE:
        sp = REGISTRY[name]
        top, pos = S.molecule_topology(sp)
        system = app.ForceField(str(sp.xml_path)).createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None)
        _CACHE[name] = (sp, top, pos, system)
    return _CACHE[name]


def _minimized(name):
    sp, top, pos, system = _built(name)
    ctx = _context(system)
    ctx.setPositions(pos)
    openmm.LocalEnergyMinimizer.minimize(ctx, 1e-3, 0)
    state = ctx.getState(getEnergy=True, getPositions=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getPositions(asNumpy=True).value_in_unit(unit.angstrom))


def _bond_lengths(mol, x):
    return np.array([np.linalg.norm(x[b.GetBeginAtomIdx()] - x[b.GetEndAtomIdx()]) for b in mol.GetBonds()])


def _angle_deg(x, i, j, k):
    u, v = x[i] - x[j], x[k] - x[j]
    return math.degrees(math.acos(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v), -1.0, 1.0)))


@pytest.mark.parametrize("name", NAMES)
def test_template_charge_equals_formal_charge(name):
    sp, _, _, system = _built(name)
    (nb,) = _forces(system, openmm.NonbondedForce)
    assert nb.getNumParticles() == sp.n_atoms
    q = sum(nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in range(sp.n_atoms))
    assert q == pytest.approx(sp.charge, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_every_bond_angle_dihedral_parameterized(name):
    sp, _, _, system = _built(name)
    bonds, angles, dihedrals = _graph(sp.mol)

    hb = _forces(system, openmm.HarmonicBondForce)
    got_bonds = [frozenset(f.getBondParameters(n)[:2]) for f in hb for n in range(f.getNumBonds())]
    assert len(got_bonds) == len(bonds) and set(got_bonds) == bonds

    got_angles = []
    for f in _forces(system, openmm.HarmonicAngleForce) + _forces(system, openmm.CustomAngleForce):
        for n in range(f.getNumAngles()):
            i, j, k = f.getAngleParameters(n)[:3]
            got_angles.append((min(i, k), j, max(i, k)))
    assert len(got_angles) == len(angles) and set(got_angles) == angles

    got_dihedrals = set()
    for f in _forces(system, openmm.PeriodicTorsionForce) + _forces(system, openmm.RBTorsionForce):
        for n in range(f.getNumTorsions()):
            t = tuple(f.getTorsionParameters(n)[:4])
            got_dihedrals.add(min(t, t[::-1]))
    missing = dihedrals - got_dihedrals
    assert not missing, f"{name}: dihedrals without a torsion term: {sorted(missing)}"


@pytest.mark.parametrize("name", [n for n in NAMES if n != "PF6"])  # RDKit cannot type hexacoordinate P-
def test_minimized_energy_finite_and_bonds_keep_rdkit_lengths(name):
    sp, _, pos, _ = _built(name)
    energy, x = _minimized(name)
    assert math.isfinite(energy)
    from solvmd.species import _conformer

    ref = _bond_lengths(sp.mol, _conformer(sp.smiles, 42))  # raw RDKit MMFF geometry, independent of the XML
    got = _bond_lengths(sp.mol, x)
    if len(ref):
        assert np.max(np.abs(got - ref)) < 0.1


def test_pf6_relaxes_to_octahedron():
    """From the (distorted) RDKit start the F-P-F term reaches the octahedron, P-F = 1.606 A (CL&P)."""
    sp, _, pos, _ = _built("PF6")
    energy, x = _minimized("PF6")
    p = next(a.GetIdx() for a in sp.mol.GetAtoms() if a.GetSymbol() == "P")
    fs = [a.GetIdx() for a in sp.mol.GetAtoms() if a.GetSymbol() == "F"]
    angles = sorted(_angle_deg(x, i, p, k) for i, k in combinations(fs, 2))
    assert np.allclose(angles[:12], 90.0, atol=1.0) and np.allclose(angles[12:], 180.0, atol=1.0)
    assert np.allclose([np.linalg.norm(x[i] - x[p]) for i in fs], 1.606, atol=0.005)
    assert energy == pytest.approx(0.0, abs=0.1)  # no intramolecular nonbonded pairs in PF6-


def test_pf6_angle_term_is_clp_harmonic_about_90_and_flat_at_180():
    sp, _, _, system = _built("PF6")
    (ca,) = _forces(system, openmm.CustomAngleForce)
    expr = ca.getEnergyFunction()
    k = ca.getAngleParameters(0)[3][0]
    assert k == pytest.approx(1165.0)  # CL&P ka, kJ/mol/rad^2 (E = 1/2 ka dtheta^2)

    def e(theta):
        return eval(expr.replace("^", "**"), {"cos": math.cos, "theta": theta, "k": k})

    d = 1e-3
    assert (e(math.pi / 2 + d) + e(math.pi / 2 - d)) / d**2 == pytest.approx(k, rel=1e-4)
    assert e(math.pi) == 0.0 and e(math.pi - d) < 1e-9


def test_no3_stays_planar_trigonal():
    sp, _, _, _ = _built("NO3")
    _, x = _minimized("NO3")
    n = next(a.GetIdx() for a in sp.mol.GetAtoms() if a.GetSymbol() == "N")
    os_ = [a.GetIdx() for a in sp.mol.GetAtoms() if a.GetSymbol() == "O"]
    assert sum(_angle_deg(x, i, n, k) for i, k in combinations(os_, 2)) == pytest.approx(360.0, abs=0.1)
    assert np.allclose([np.linalg.norm(x[o] - x[n]) for o in os_], 1.226, atol=0.005)


def test_opls_units_dme():
    """OPLS kcal/mol numbers -> OpenMM: k_bond doubled, Fourier V_n/2 per cosine term."""
    sp, _, _, system = _built("DME")
    names = sp.atom_names
    idx = {nm: i for i, nm in enumerate(names)}
    (hb,) = _forces(system, openmm.HarmonicBondForce)
    (co,) = [hb.getBondParameters(n) for n in range(hb.getNumBonds())
             if {names[hb.getBondParameters(n)[0]], names[hb.getBondParameters(n)[1]]} == {"C1", "O1"}]
    assert co[2].value_in_unit(unit.nanometer) == pytest.approx(0.1410)  # OPLS CT-OS r0 1.410 A
    assert co[3].value_in_unit(unit.kilojoule_per_mole / unit.nanometer**2) == pytest.approx(2 * 320 * 4.184 * 100)
    (ha,) = _forces(system, openmm.HarmonicAngleForce)
    (coc,) = [ha.getAngleParameters(n) for n in range(ha.getNumAngles())
              if names[ha.getAngleParameters(n)[1]] == "O1" and "C3" not in
              {names[ha.getAngleParameters(n)[0]], names[ha.getAngleParameters(n)[2]]}]
    assert coc[3].value_in_unit(unit.degree) == pytest.approx(109.5)  # OPLS CT-OS-CT 109.5 deg, 60 kcal/mol/rad^2
    assert coc[4].value_in_unit(unit.kilojoule_per_mole / unit.radian**2) == pytest.approx(2 * 60 * 4.184)

    # C-O-C-C torsion, OPLS-AA V1..V3 = 0.65, -0.25, 0.67 kcal/mol
    want = (idx["C1"], idx["O1"], idx["C2"], idx["C3"])
    (pt,) = _forces(system, openmm.PeriodicTorsionForce)
    terms = [pt.getTorsionParameters(n) for n in range(pt.getNumTorsions())]
    terms = [t for t in terms if tuple(t[:4]) in (want, want[::-1])]
    assert len(terms) == 3
    for phi in np.radians([0.0, 60.0, 111.0, 180.0, 250.0]):
        e_omm = sum(t[6].value_in_unit(unit.kilojoule_per_mole)
                    * (1 + math.cos(t[4] * phi - t[5].value_in_unit(unit.radian))) for t in terms)
        e_opls = 4.184 * (0.65 / 2 * (1 + math.cos(phi)) - 0.25 / 2 * (1 - math.cos(2 * phi))
                          + 0.67 / 2 * (1 + math.cos(3 * phi)))
        assert e_omm == pytest.approx(e_opls, abs=2e-4)


def test_type_and_class_names_unique_across_files():
    seen_types, seen_classes, seen_residues = {}, {}, {}
    for path in XML_FILES:
        root = ET.parse(path).getroot()
        for t in root.iter("Type"):
            name = t.get("name")
            assert name not in seen_types, f"type {name} in {path} and {seen_types.get(name)}"
            seen_types[name] = path
            seen_classes.setdefault(t.get("class"), set()).add(path)
        for r in root.iter("Residue"):
            assert r.get("name") not in seen_residues
            seen_residues[r.get("name")] = path
    shared = {c: p for c, p in seen_classes.items() if len(p) > 1}
    assert not shared, f"classes defined in more than one file: {shared}"
    assert set(seen_residues) == {sp.residue for sp in REGISTRY.values()}


def test_all_files_load_together_one_system():
    ff = app.ForceField(*XML_FILES)
    top = app.Topology()
    chain = top.addChain()
    for name in NAMES:
        S.add_molecule(top, chain, REGISTRY[name])
    system = ff.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None)
    (nb,) = _forces(system, openmm.NonbondedForce)
    q = sum(nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
            for i in range(system.getNumParticles()))
    assert q == pytest.approx(sum(REGISTRY[n].charge for n in NAMES), abs=1e-6)
    assert system.getNumParticles() == sum(REGISTRY[n].n_atoms for n in NAMES)


def test_xml_files_match_generator(root):
    """The committed XMLs are exactly what forcefields/tools/make_xml.py writes."""
    proc = subprocess.run([sys.executable, str(root / "forcefields" / "tools" / "make_xml.py"), "--check"],
                          capture_output=True, text=True, cwd=root, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_generator_fails_loudly_on_a_missing_term(root, monkeypatch):
    sys.path.insert(0, str(root / "forcefields" / "tools"))
    import make_xml

    spec = next(s for s in make_xml.SPECIES if s.name == "DME")
    torsions = dict(make_xml.TORSIONS)
    del torsions[("OS", "CT", "CT", "OS")]
    monkeypatch.setattr(make_xml, "TORSIONS", torsions)
    with pytest.raises(KeyError, match="OS"):
        make_xml.species_xml(REGISTRY["DME"], spec)


def test_species_coordinates_of_pf6_are_octahedral():
    """solvmd refines RDKit geometries with the species force field: PF6- becomes an octahedron."""
    from solvmd import species as registry

    x = registry.get("PF6").coordinates()
    v = np.delete(x, 1, axis=0) - x[1]
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.606, atol=0.01)
    cos = np.clip((v @ v.T) / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1)), -1, 1)
    angles = np.sort(np.degrees(np.arccos(cos[np.triu_indices(6, 1)])))
    np.testing.assert_allclose(angles[:12], 90.0, atol=2.0)
    np.testing.assert_allclose(angles[12:], 180.0, atol=2.0)
