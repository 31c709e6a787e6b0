"""Coordination, shell census, SSIP/CIP/AGG and clusters: a hand-built configuration with an
exactly known answer, and a brute-force all-pairs implementation on random systems."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from solvmd.analysis import analyze, spec_from_dict
from solvmd.analysis import columns as C
from solvmd.analysis.speciation import anion_classes, cation_classes
from solvmd.analysis.structure import coordination_per_cation
from synthetic import LI, SOLVENT3, Molecule, build_universe, random_system

PARTNERS = {"FSI": "resname FSI and (element N or element O)", "DME": "resname DME and element O"}


def _spec(cutoffs, **kw):
    d = dict(
        topology="mem.pdb",
        trajectory="mem.dcd",
        cation="resname LI",
        partners=PARTNERS,
        anions=["FSI"],
        cutoffs_A=cutoffs,
        rdf={"r_max_A": 6.0},
        residence={"enabled": False},
        transport={"enabled": False},
    )
    d.update(kw)
    return spec_from_dict(d)


def _run(u, cutoffs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyze(_spec(cutoffs, **kw), verbose=False, universe=u)


# ------------------------------------------------------------------ hand-built, exact

BOX = 30.0


def _hand_built(shift=(0.0, 0.0, 0.0)):
    """Li0 holds FSI_a and FSI_b; FSI_b is shared with Li1 (-> AGG); Li2 has one bidentate DME
    and no anion; Li3 and FSI_c touch across the periodic boundary (x = 0.5 vs 28.5);
    FSI_d and DME_b are free."""
    fsi = lambda n, o1, o2: Molecule("FSI", ["N1", "O1", "O2"], ["N", "O", "O"], np.array([n, o1, o2], float))  # noqa: E731
    dme = lambda o1, c, o2: Molecule("DME", ["O1", "C1", "O2"], ["O", "C", "O"], np.array([o1, c, o2], float))  # noqa: E731
    mols = [
        Molecule("LI", ["Li1"], ["Li"], np.array([[5.0, 5, 5]])),  # Li0
        Molecule("LI", ["Li1"], ["Li"], np.array([[11.6, 5, 5]])),  # Li1
        Molecule("LI", ["Li1"], ["Li"], np.array([[20.0, 20, 20]])),  # Li2
        Molecule("LI", ["Li1"], ["Li"], np.array([[0.5, 15, 15]])),  # Li3
        fsi([5, 5, 9.5], [5, 5, 7.0], [5, 6.2, 8.5]),  # FSI_a: O1 2.0 from Li0
        fsi([8.3, 5, 5], [7.0, 5, 5], [9.6, 5, 5]),  # FSI_b: O1 2.0 from Li0, O2 2.0 from Li1, N 3.3 from both
        fsi([27.2, 15, 15], [28.5, 15, 15], [25.9, 15, 15]),  # FSI_c: O1 2.0 from Li3 through the boundary
        fsi([15, 25, 5], [16.3, 25.6, 5], [13.7, 25.6, 5]),  # FSI_d: free
        dme([21.4, 20, 21.5], [20, 20.5, 22.2], [18.6, 20, 21.5]),  # DME_a: both O 2.05 from Li2
        dme([5, 20, 25], [6.4, 20.5, 25], [7.8, 20, 25]),  # DME_b: free
    ]
    xyz = (np.concatenate([m.xyz for m in mols]) + np.asarray(shift)) % BOX
    return mols, xyz


@pytest.fixture(scope="module")
def hand_built():
    mols, x0 = _hand_built()
    _, x1 = _hand_built(shift=(13.3, -7.1, 22.9))  # same configuration translated through the boundary
    u = build_universe(mols, np.stack([x0, x1]), [BOX, BOX, BOX, 90, 90, 90])
    return _run(u, {"FSI": 2.6, "DME": 2.6})


def test_hand_built_coordination_numbers(hand_built):
    cn = hand_built["coordination"].set_index(C.PARTNER)
    assert cn.loc["FSI", C.CN_MOL] == pytest.approx(1.0)  # (2 + 1 + 0 + 1) / 4
    assert cn.loc["FSI", C.CN_DON] == pytest.approx(1.0)  # N of FSI_b at 3.3 A is outside
    assert cn.loc["DME", C.CN_MOL] == pytest.approx(0.25)  # bidentate DME counts once ...
    assert cn.loc["DME", C.CN_DON] == pytest.approx(0.5)  # ... and twice per donor atom
    assert cn.loc["total", C.CN_MOL] == pytest.approx(1.25)
    assert cn.loc["FSI", C.FRAC_ANY] == pytest.approx(0.75)
    # the RDF's running CN at the cutoff is an independent count of the same pairs
    assert cn.loc["FSI", C.CN_DON_RDF] == pytest.approx(1.0)
    assert cn.loc["DME", C.CN_DON_RDF] == pytest.approx(0.5)


def test_hand_built_shell_census(hand_built):
    sh = hand_built["shells"]
    got = dict(zip(sh[C.COMPOSITION], sh[C.PERCENT]))
    assert got == pytest.approx({"FSI:1": 50.0, "FSI:2": 25.0, "DME:1": 25.0})
    assert sh[C.COMPOSITION].iloc[0] == "FSI:1"  # most common first


def test_hand_built_ssip_cip_agg_both_definitions(hand_built):
    sp = hand_built["speciation"]
    frac = {(d, c): f for d, c, f in zip(sp[C.DEFINITION], sp[C.CLASS], sp[C.FRACTION])}
    # anions: FSI_a CIP, FSI_b AGG (shared by Li0 and Li1), FSI_c CIP (across the boundary), FSI_d SSIP
    assert frac[(C.ANION_CENTRIC, "SSIP")] == pytest.approx(0.25)
    assert frac[(C.ANION_CENTRIC, "CIP")] == pytest.approx(0.50)
    assert frac[(C.ANION_CENTRIC, "AGG")] == pytest.approx(0.25)
    # cations: Li0, Li1 in the cluster {Li0, FSI_a, FSI_b, Li1} -> AGG; Li2 SSIP; Li3 + FSI_c -> CIP
    assert frac[(C.CATION_CENTRIC, "SSIP")] == pytest.approx(0.25)
    assert frac[(C.CATION_CENTRIC, "CIP")] == pytest.approx(0.25)
    assert frac[(C.CATION_CENTRIC, "AGG")] == pytest.approx(0.50)
    ct = hand_built.contacts
    np.testing.assert_array_equal(cation_classes(ct), [[2, 2, 0, 1]] * 2)
    np.testing.assert_array_equal(anion_classes(ct), [[1, 2, 1, 0]] * 2)


def test_hand_built_clusters(hand_built):
    cl = hand_built["clusters"]
    got = {(a, b): n for a, b, n in zip(cl[C.N_CATIONS], cl[C.N_ANIONS], cl[C.MEAN_CLUSTERS])}
    assert got == {(0, 1): 1.0, (1, 0): 1.0, (1, 1): 1.0, (2, 2): 1.0}
    assert cl[C.FRAC_IONS].sum() == pytest.approx(1.0)


def test_contact_table_is_tidy_and_periodic(hand_built):
    p = hand_built["contacts"]
    assert list(p.columns) == [C.FRAME, C.CATION, C.PARTNER, C.PARTNER_RES, C.DONOR, C.DIST]
    across = p[(p[C.CATION] == 3) & (p[C.PARTNER] == "FSI")]
    assert len(across) == 2 and np.allclose(across[C.DIST], 2.0, atol=1e-4)  # both frames
    assert (p[C.DIST] <= 2.6).all()


# ------------------------------------------------------------------ brute force, random systems


def _brute_force(u, cutoffs):
    """All pairs, minimum image by hand, python sets and a union-find: no code shared with solvmd."""
    li = u.select_atoms("resname LI")
    parts = {n: u.select_atoms(s) for n, s in PARTNERS.items()}
    anion_res = list(np.unique(parts["FSI"].resindices))
    out_mol, out_don, out_anion, out_cls = [], [], [], []
    for ts in u.trajectory:
        L = ts.dimensions[:3].astype(np.float64)
        mol = np.zeros((li.n_atoms, len(parts)), int)
        don = np.zeros((li.n_atoms, len(parts)), int)
        touching = {a: set() for a in anion_res}
        for i, pos in enumerate(li.positions.astype(np.float64)):
            for k, (n, ag) in enumerate(parts.items()):
                shell = set()
                for atom, x in zip(ag, ag.positions.astype(np.float64)):
                    dv = x - pos
                    dv -= L * np.round(dv / L)
                    if np.sqrt(dv @ dv) <= cutoffs[n]:
                        don[i, k] += 1
                        shell.add(atom.resindex)
                mol[i, k] = len(shell)
                if n == "FSI":
                    for r in shell:
                        touching[r].add(i)
        # union-find over cations and anions
        parent = {("c", i): ("c", i) for i in range(li.n_atoms)} | {("a", r): ("a", r) for r in anion_res}

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for r, cats in touching.items():
            for i in cats:
                parent[find(("c", i))] = find(("a", r))
        members = {}
        for node in parent:
            members.setdefault(find(node), []).append(node)
        cls = []
        for i in range(li.n_atoms):
            grp = members[find(("c", i))]
            n_c = sum(1 for t, _ in grp if t == "c")
            n_a = len(grp) - n_c
            cls.append(0 if n_a == 0 else (1 if (n_a == 1 and n_c == 1) else 2))
        out_mol.append(mol)
        out_don.append(don)
        out_anion.append([len(touching[r]) for r in anion_res])
        out_cls.append(cls)
    return np.array(out_mol), np.array(out_don), np.array(out_anion), np.array(out_cls)


@pytest.mark.parametrize("seed", [0, 1])
def test_against_brute_force_all_pairs(seed):
    u = random_system(n_cat=8, n_an=10, n_sol=10, n_frames=6, box=14.0, seed=seed)
    cutoffs = {"FSI": 3.0, "DME": 2.8}
    res = _run(u, cutoffs)
    mol, don, n_cat_per_anion, cls = _brute_force(u, cutoffs)
    per = coordination_per_cation(res.contacts)
    F, Cn, P = mol.shape
    got_mol = per[C.CN_MOL].to_numpy().reshape(F, Cn, P)
    got_don = per[C.CN_DON].to_numpy().reshape(F, Cn, P)
    np.testing.assert_array_equal(got_mol, mol)
    np.testing.assert_array_equal(got_don, don)
    assert mol[..., 0].max() >= 2 and don.sum() > 20  # the systems are not trivially empty
    np.testing.assert_array_equal(anion_classes(res.contacts), np.minimum(n_cat_per_anion, 2))
    np.testing.assert_array_equal(cation_classes(res.contacts), cls)
    assert len(set(cls.ravel())) >= 2
    # shell census from the brute-force counts
    comps = {}
    for f in range(F):
        for i in range(Cn):
            key = " ".join(f"{n}:{c}" for n, c in zip(PARTNERS, mol[f, i]) if c) or C.EMPTY_SHELL
            comps[key] = comps.get(key, 0) + 1
    sh = res["shells"]
    assert dict(zip(sh[C.COMPOSITION], sh[C.COUNT])) == comps
    assert list(sh[C.COUNT]) == sorted(sh[C.COUNT], reverse=True)
    cn = res["coordination"].set_index(C.PARTNER)
    assert cn.loc["FSI", C.CN_MOL] == pytest.approx(mol[..., 0].mean())
    assert cn.loc["DME", C.CN_DON] == pytest.approx(don[..., 1].mean())


def test_multiple_anion_species_are_reported_separately_and_together():
    u = random_system(n_cat=6, n_an=8, n_sol=8, n_frames=4, box=13.0, seed=4)
    # call the 3-atom solvent an anion too: two anion species
    res = _run(u, {"FSI": 3.0, "DME": 3.0}, anions=["FSI", "DME"])
    sp = res["speciation"]
    anion_rows = sp[sp[C.DEFINITION] == C.ANION_CENTRIC]
    assert set(anion_rows[C.SPECIES]) == {"FSI", "DME", C.ALL_ANIONS}
    for name, grp in anion_rows.groupby(C.SPECIES):
        assert grp[C.FRACTION].sum() == pytest.approx(1.0)
    tot = anion_rows[anion_rows[C.SPECIES] == C.ALL_ANIONS].set_index(C.CLASS)[C.MEAN_COUNT]
    per = anion_rows[anion_rows[C.SPECIES] != C.ALL_ANIONS].groupby(C.CLASS)[C.MEAN_COUNT].sum()
    assert tot.to_dict() == pytest.approx(per.to_dict())


def test_cation_inside_a_partner_residue_is_not_its_own_contact():
    """A cation atom that belongs to a partner residue (e.g. a complex ion) never contacts its own residue."""
    mgcl = Molecule("MGC", ["Mg1", "Cl1"], ["Mg", "Cl"], np.array([[5.0, 5, 5], [7.2, 5, 5]]))
    cl = Molecule("CL", ["Cl1"], ["Cl"], np.array([[5.0, 7.3, 5]]))
    u = build_universe([mgcl, cl, LI, SOLVENT3], np.concatenate([mgcl.xyz, cl.xyz, [[15, 15, 15]], SOLVENT3.xyz + 10]),
                       [20, 20, 20, 90, 90, 90])  # fmt: skip
    spec = spec_from_dict(dict(topology="m", trajectory="m", cation="element Mg", partners={"Cl": "element Cl"},
                               cutoffs_A={"Cl": 3.0}, rdf={"r_max_A": 8}, residence={"enabled": False},
                               transport={"enabled": False}))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze(spec, verbose=False, universe=u)
    assert res["coordination"].set_index(C.PARTNER).loc["Cl", C.CN_MOL] == 1.0  # only the free Cl



def test_second_pass_when_an_automatic_cutoff_exceeds_the_stored_range(monkeypatch):
    from solvmd.analysis import workflow

    u = random_system(n_cat=8, n_an=10, n_sol=10, n_frames=4, box=14.0, seed=0)
    ref = _run(u, {"FSI": 3.0, "DME": 2.8})
    monkeypatch.setattr(workflow, "_store_radius", lambda spec, r_max: 1.0)  # keep almost nothing in pass 1
    got = _run(u, {"FSI": 3.0, "DME": 2.8})
    pd.testing.assert_frame_equal(got["contacts"], ref["contacts"])
    assert len(ref["contacts"]) > 20
