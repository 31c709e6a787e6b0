"""RDF and cutoffs: compared with MDAnalysis InterRDF, mdtraj.compute_rdf and a brute-force count."""

from __future__ import annotations

import warnings

import mdtraj
import numpy as np
import pytest
from MDAnalysis.analysis.rdf import InterRDF

from solvmd.analysis import analyze, spec_from_dict
from solvmd.analysis import columns as C
from solvmd.analysis.spec import RDFSettings
from solvmd.analysis.structure import find_cutoff
from synthetic import random_system, write_trajectory

PARTNERS = {"FSI": "resname FSI and (element N or element O)", "DME": "resname DME and element O"}


def _spec(**kw):
    base = dict(
        topology="mem.pdb",
        trajectory="mem.dcd",
        cation="resname LI",
        partners=PARTNERS,
        anions=["FSI"],
        rdf={"r_max_A": 7.0, "bin_A": 0.1},
        residence={"enabled": False},
        transport={"enabled": False},
    )
    base.update(kw)
    return spec_from_dict(base)


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    d = tmp_path_factory.mktemp("rdf")
    u = random_system(n_cat=6, n_an=8, n_sol=12, n_frames=12, box=15.0, seed=3)
    write_trajectory(u, d / "sys.pdb", d / "traj.dcd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze(_spec(topology=str(d / "sys.pdb"), trajectory=str(d / "traj.dcd")), verbose=False)
    return d, res


def _block(rdf, partner, dtype=C.ALL_DONORS):
    b = rdf[(rdf[C.PARTNER] == partner) & (rdf[C.DONOR_TYPE] == dtype)]
    return b[C.R].to_numpy(), b[C.G].to_numpy(), b[C.N_R].to_numpy()


def _mda_universe(d):
    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(str(d / "sys.pdb"), str(d / "traj.dcd"))


@pytest.mark.parametrize("partner,dtype", [("FSI", C.ALL_DONORS), ("FSI", "N"), ("FSI", "O"), ("DME", C.ALL_DONORS)])
def test_rdf_matches_mdanalysis_interrdf(system, partner, dtype):
    d, res = system
    u = _mda_universe(d)
    sel = PARTNERS[partner] if dtype == C.ALL_DONORS else f"resname {partner} and element {dtype}"
    ref = InterRDF(u.select_atoms("resname LI"), u.select_atoms(sel), nbins=70, range=(0.0, 7.0)).run()
    r, g, _ = _block(res["rdf"], partner, dtype)
    np.testing.assert_allclose(r, ref.results.bins, atol=1e-9)
    np.testing.assert_allclose(g, ref.results.rdf, rtol=1e-9, atol=1e-12)
    assert g.max() > 0  # the comparison is not vacuous


def test_rdf_matches_mdtraj(system):
    d, res = system
    traj = mdtraj.load(str(d / "traj.dcd"), top=str(d / "sys.pdb"))
    top = traj.topology
    li = [a.index for a in top.atoms if a.residue.name == "LI"]
    don = [a.index for a in top.atoms if a.residue.name == "DME" and a.element.symbol == "O"]
    pairs = np.array([(i, j) for i in li for j in don])
    r_nm, g_ref = mdtraj.compute_rdf(traj, pairs, r_range=(0.0, 0.7), n_bins=70)
    r, g, _ = _block(res["rdf"], "DME")
    np.testing.assert_allclose(r, r_nm * 10, atol=1e-6)
    np.testing.assert_allclose(g, g_ref, rtol=1e-6, atol=1e-9)
    assert g.max() > 0


def test_running_cn_equals_brute_force_pair_count(system):
    d, res = system
    u = _mda_universe(d)
    li = u.select_atoms("resname LI")
    don = u.select_atoms(PARTNERS["FSI"])
    edges = np.arange(1, 71) * 0.1
    counts = np.zeros(edges.size)
    for ts in u.trajectory:
        L = ts.dimensions[:3].astype(np.float64)
        dv = li.positions[:, None, :].astype(np.float64) - don.positions[None, :, :]
        dv -= L * np.round(dv / L)  # minimum image, written out by hand
        dist = np.sqrt((dv**2).sum(-1)).ravel()
        counts += (dist[None, :] < edges[:, None]).sum(1)
    _, _, n_r = _block(res["rdf"], "FSI")
    np.testing.assert_allclose(n_r, counts / (li.n_atoms * u.trajectory.n_frames), atol=1e-12)


def test_rdf_volume_weighting_matches_mdtraj_for_changing_box(tmp_path):
    """With a fluctuating (NPT) box the normalisation is sum(1/V) per frame, as in mdtraj."""
    u = random_system(n_cat=4, n_an=4, n_sol=6, n_frames=6, box=14.0, seed=5)
    dims = np.array([[14.0 + 0.4 * k] * 3 + [90.0] * 3 for k in range(6)], dtype=np.float32)
    for k, ts in enumerate(u.trajectory):
        ts.dimensions = dims[k]
    write_trajectory(u, tmp_path / "s.pdb", tmp_path / "t.dcd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze(_spec(topology=str(tmp_path / "s.pdb"), trajectory=str(tmp_path / "t.dcd"),
                            rdf={"r_max_A": 6.0, "bin_A": 0.2}), verbose=False)  # fmt: skip
    traj = mdtraj.load(str(tmp_path / "t.dcd"), top=str(tmp_path / "s.pdb"))
    li = [a.index for a in traj.topology.atoms if a.residue.name == "LI"]
    don = [a.index for a in traj.topology.atoms if a.residue.name == "DME" and a.element.symbol == "O"]
    _, g_ref = mdtraj.compute_rdf(traj, np.array([(i, j) for i in li for j in don]), r_range=(0, 0.6), n_bins=30)
    _, g, _ = _block(res["rdf"], "DME")
    np.testing.assert_allclose(np.cumsum(g * np.arange(30) ** 2), np.cumsum(g_ref * np.arange(30) ** 2), rtol=2e-3, atol=1e-6)


# ------------------------------------------------------------------ automatic cutoff


def _shape(r, peaks):
    return sum(h * np.exp(-0.5 * ((r - c) / w) ** 2) for c, h, w in peaks)


R = np.arange(0.025, 10.0, 0.05)


def test_cutoff_is_first_minimum_after_first_peak():
    # Li-O like: sharp peak at 2.0, deep minimum, second shell at 4.3, bulk 1
    g = _shape(R, [(2.0, 25.0, 0.12), (4.3, 1.5, 0.5)]) + 1.0 / (1 + np.exp(-(R - 4.0) / 0.3))
    info = find_cutoff(R, g, RDFSettings())
    exact = R[np.argmin(np.where((R > 2.0) & (R < 4.3), g, np.inf))]
    assert info[C.COORDINATING] is True
    assert info[C.PEAK_R] == pytest.approx(2.0, abs=0.05)
    assert info[C.CUTOFF] == pytest.approx(exact, abs=0.15)
    assert 2.3 < info[C.CUTOFF] < 4.0


def test_flat_zero_gap_gives_cutoff_in_the_gap():
    g = _shape(R, [(2.0, 30.0, 0.1)]) + np.where(R > 3.6, 1.0, 0.0)
    info = find_cutoff(R, g, RDFSettings(smooth_A=0.0))
    assert 2.4 < info[C.CUTOFF] < 3.6


def test_partner_without_solvation_peak_is_not_coordinating():
    # diluent: excluded from the shell, g rises smoothly to bulk beyond 4 A
    g = 1.0 / (1 + np.exp(-(R - 5.0) / 0.4)) + _shape(R, [(6.0, 0.2, 0.4)])
    info = find_cutoff(R, g, RDFSettings())
    assert info[C.COORDINATING] is False and info[C.CUTOFF] is None
    assert "no first-shell peak" in info["reason"]
    # a weak contact peak below bulk density is not a solvation shell either
    weak = g + _shape(R, [(2.0, 0.5, 0.1)])
    assert find_cutoff(R, weak, RDFSettings())[C.CUTOFF] is None
    # ... unless the threshold is lowered on purpose
    assert find_cutoff(R, weak, RDFSettings(min_peak_g=0.3))[C.CUTOFF] is not None


def test_peak_without_minimum_gets_no_cutoff():
    g = _shape(R, [(2.0, 20.0, 0.15)])
    g = np.where(R > 2.0, 20.0 * np.exp(-(R - 2.0) / 50.0), g)  # never comes down
    info = find_cutoff(R, g, RDFSettings())
    assert info[C.CUTOFF] is None and "no minimum" in info["reason"]


def test_stray_close_contact_is_not_taken_as_the_first_shell():
    g = _shape(R, [(0.9, 1.5, 0.08), (2.1, 20.0, 0.12), (4.5, 1.3, 0.5)]) + np.where(R > 4.0, 1.0, 0.0)
    info = find_cutoff(R, g, RDFSettings())
    assert info[C.PEAK_R] == pytest.approx(2.1, abs=0.05)
    assert 2.5 < info[C.CUTOFF] < 4.2


def test_pipeline_reports_noncoordinating_partner_and_override(tmp_path):
    """A partner with no peak: no cutoff, CN 0, flagged; an override in the spec is used as given."""
    from synthetic import ANION3, LI, SOLVENT3, build_universe

    rng = np.random.default_rng(1)
    mols = [LI] * 4 + [SOLVENT3] * 4 + [ANION3] * 4
    frames = []
    for _ in range(8):
        li = np.array([[2, 2, 2], [12, 12, 2], [12, 2, 12], [2, 12, 12.0]]) + rng.uniform(-0.5, 0.5, (4, 3))
        sol = [SOLVENT3.xyz + li[k] + np.array([0, 0, -2.0]) - SOLVENT3.xyz[0] for k in range(4)]  # O1 at 2 A
        # anions kept >= 6 A from every cation
        an = []
        for _k in range(4):
            while True:
                c = rng.uniform(0, 20, 3)
                dv = li - c
                dv -= 20 * np.round(dv / 20)
                if np.sqrt((dv**2).sum(1)).min() > 6.5:
                    break
            an.append(ANION3.xyz + c)
        frames.append(np.concatenate([li, *sol, *an]) % 20)
    u = build_universe(mols, np.array(frames), [20, 20, 20, 90, 90, 90])
    with pytest.warns(UserWarning, match="FSI: not coordinating"):
        res = analyze(_spec(rdf={"r_max_A": 9.0}), verbose=False, universe=u)
    cn = res["coordination"].set_index(C.PARTNER)
    assert not cn.loc["FSI", C.COORDINATING] and np.isnan(cn.loc["FSI", C.CUTOFF])
    assert cn.loc["FSI", C.CN_MOL] == 0
    assert cn.loc["DME", C.CN_MOL] == 1.0 and 2.0 < cn.loc["DME", C.CUTOFF] < 4.0
    res2 = analyze(_spec(rdf={"r_max_A": 9.0}, cutoffs_A={"DME": 2.5}), verbose=False, universe=u)
    assert res2.cutoffs["DME"][C.CUTOFF] == 2.5 and res2.cutoffs["DME"][C.CUTOFF_SOURCE] == "override"


@pytest.mark.parametrize(
    "box",
    [[24.0, 24.0, 24.0, 90, 90, 90], [30.0, 22.0, 25.0, 90, 90, 90], [16.0, 17.0, 18.0, 70, 80, 95]],
    ids=["cubic-cell-list", "orthorhombic-cell-list", "triclinic-capped_distance"],
)
def test_rdf_matches_interrdf_for_large_and_triclinic_boxes(box):
    u = random_system(n_cat=6, n_an=12, n_sol=20, n_frames=4, box=15.0, seed=8)
    for ts in u.trajectory:
        ts.dimensions = np.array(box, dtype=np.float32)
        ts.positions = ts.positions * (min(box[:3]) / 15.0)
    r_max = 7.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze(_spec(rdf={"r_max_A": r_max, "bin_A": 0.1}), verbose=False, universe=u)
    ref = InterRDF(u.select_atoms("resname LI"), u.select_atoms(PARTNERS["FSI"]), nbins=70, range=(0.0, r_max)).run()
    _, g, _ = _block(res["rdf"], "FSI")
    # same pair counts in every bin; the triclinic volume differs in the 8th digit (float32 box)
    np.testing.assert_allclose(g, ref.results.rdf, rtol=1e-6, atol=1e-12)
    assert g.max() > 0


def test_cell_list_pairs_equal_capped_distance():
    from MDAnalysis.lib.distances import capped_distance

    from solvmd.analysis.contacts import pairs_within

    rng = np.random.default_rng(0)
    box = np.array([31.0, 27.0, 40.0, 90, 90, 90], dtype=np.float32)
    ref = (rng.uniform(-5, 45, (40, 3))).astype(np.float32)  # also outside the primary cell
    conf = (rng.uniform(0, 40, (900, 3))).astype(np.float32)
    for cut in (2.5, 6.0, 9.0):
        p1, d1 = pairs_within(ref, conf, cut, box)
        p2, d2 = capped_distance(ref, conf, cut, box=box)
        a = dict(zip(map(tuple, p1.tolist()), d1))
        b = dict(zip(map(tuple, p2.tolist()), d2))
        assert a.keys() == b.keys() and len(a) > 10
        assert max(abs(a[k] - b[k]) for k in a) < 1e-4
