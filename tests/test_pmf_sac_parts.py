"""Small parts of the interface PMF pipeline, checked against hand-computed numbers: the
first-shell counter, gap proposals, and the SAC comparison row from PMF records."""

import json

import numpy as np
import pandas as pd
import pytest

from solvmd.errors import SolvmdError
from solvmd.pmf.profile import ShellCounter, profile_table
from solvmd.pmf.sac import compare_sac
from solvmd.pmf.windows import Window, max_spacing_nm, pair_overlap, propose_windows

KT = 0.0083144626181532 * 298.15


def test_shell_counter_counts_molecules_and_sheet_atoms():
    # ion at the origin of a 3 nm box; DME residue 1 has two O within 0.3 nm (counts once), residue 2
    # one O at 0.35 nm (out), a TFS O at 0.21 nm across the periodic boundary; sheet: C at 0.25, 0.4; Zn at 0.28
    pos = np.array([[0.0, 0, 0], [0.2, 0, 0], [0, 0.22, 0], [0.35, 0, 0], [2.79, 0, 0],
                    [0, 0, 0.25], [0, 0, 0.40], [0, 0.28, 0]])
    data = {"cutoff_nm": 0.3, "ion_atom": 0, "donor_atoms": [1, 2, 3, 4], "donor_residue": [1, 1, 2, 3],
            "donor_species": ["DME", "DME", "DME", "TFS"], "surface_atoms": [5, 6, 7],
            "surface_elements": ["C", "C", "Zn"]}
    c = ShellCounter(data)
    assert c.columns == ["n_DME", "n_TFS", "n_surface_C", "n_surface_Zn"]
    assert c.count(pos, np.diag([3.0, 3.0, 3.0])).tolist() == [1, 1, 1, 1]
    assert c.count(pos, None).tolist() == [1, 0, 1, 1]  # no box: no periodic image


def test_profile_table_averages_windows_in_centre_order(tmp_path):
    for k, (r0, counts) in enumerate([(0.6, [[3, 1, 0], [4, 1, 0]]), (0.3, [[2, 0, 6], [2, 1, 6]])]):
        np.savez(tmp_path / f"window_{k}.npz", window=k, r0_nm=r0, cv_nm=np.array([r0, r0 + 0.02]),
                 shell_counts=np.array(counts), shell_columns=np.array(["n_DME", "n_TFS", "n_surface_C"]))
    df = profile_table([tmp_path / "window_0.npz", tmp_path / "window_1.npz"])
    assert df["r0_nm"].tolist() == [0.3, 0.6]
    assert df["n_DME"].tolist() == [2.0, 3.5] and df["n_TFS"].tolist() == [0.5, 1.0]
    assert df["n_shell_total"].tolist() == [2.5, 4.5] and df["n_surface_C"].tolist() == [6.0, 0.0]
    assert df["cv_mean_nm"].tolist() == pytest.approx([0.31, 0.61])


def test_gap_proposals_use_the_slid_means_and_the_mean_force():
    # window a (r0 0.60, k 1000) slid to 0.64; window b (r0 0.70, k 1000) slid to 0.83: a 0.19 nm gap
    a = Window(5, 0.60, 1000.0, x=np.full(10, 0.64))
    b = Window(6, 0.70, 1000.0, x=np.full(10, 0.83))
    prop = propose_windows([a, b], np.array([0.004]), 0.03, KT, 0.1)
    step = max_spacing_nm(np.sqrt(KT / 1000.0), 0.1)
    n = int(np.ceil(0.19 / step)) - 1
    assert len(prop) == n and all(p["between"] == [5, 6] for p in prop)
    targets = np.array([p["target_nm"] for p in prop])
    np.testing.assert_allclose(targets, np.linspace(0.64, 0.83, n + 2)[1:-1], atol=1e-5)
    # mean force interpolates from -40 (a) to -130 (b) kJ/mol/nm; r0 = target + F'/k
    fa, fb = 1000 * (0.60 - 0.64), 1000 * (0.70 - 0.83)
    expect = targets + (fa + (fb - fa) * (targets - 0.64) / 0.19) / 1000.0
    np.testing.assert_allclose([p["r0_nm"] for p in prop], expect, atol=1e-5)
    assert pair_overlap(step, np.sqrt(KT / 1000.0), np.sqrt(KT / 1000.0)) == pytest.approx(0.1)
    assert propose_windows([a, b], np.array([0.2]), 0.03, KT, 0.1) == []  # no gap, nothing proposed


def test_sac_row_from_records(tmp_path):
    pmf = tmp_path / "results" / "iface_x" / "pmf" / "li_height"
    pmf.mkdir(parents=True)
    (pmf.parent.parent / "build").mkdir()
    (pmf.parent.parent / "build" / "manifest.json").write_text(json.dumps({"surface": {"label": "Zn-N4"}}))
    (pmf / "spec.json").write_text(json.dumps({"cv": {"kind": "height", "cation": "LI"}}))
    (pmf / "barrier.json").write_text(json.dumps({
        "system": "iface_x", "cv": "li_height", "cv_kind": "height", "volume_term": "none",
        "dG_barrier_kJ_mol": 12.5, "dG_barrier_err_kJ_mol": 1.5, "dG_kJ_mol": 8.0, "dG_err_kJ_mol": 1.0,
        "bound_state": {"cv_nm": 0.30}, "transition_state": {"cv_nm": 0.45}, "far_end": {"cv_nm": 0.9},
        "min_neighbour_overlap": 0.12, "n_windows": 7, "sampled_ps_per_window": 3.0,
        "mbar_wham_max_diff_kJ_mol": 0.4}))
    pd.DataFrame({"r0_nm": [0.9, 0.25], "n_shell_total": [4.0, 2.5]}).to_csv(pmf / "profile.csv", index=False)
    with pytest.raises(SolvmdError, match="no 'adsorption' block"):  # a height PMF estimated before 2026-12
        compare_sac([pmf], tmp_path / "sac.csv")
    barrier = json.loads((pmf / "barrier.json").read_text())
    barrier["adsorption"] = {"dG_ads_kJ_mol": -8.0, "dG_ads_err_kJ_mol": 1.0, "dG_barrier_in_kJ_mol": 3.0,
                             "dG_barrier_in_err_kJ_mol": 0.7, "plateau_drift_kJ_mol": 0.2,
                             "plateau_drift_err_kJ_mol": 0.5, "plateau_flat": True, "contact_cv_nm": 0.27,
                             "ts_in_cv_nm": 0.5, "plateau_nm": [0.75, 0.9]}
    (pmf / "barrier.json").write_text(json.dumps(barrier))
    df = compare_sac([pmf], tmp_path / "sac.csv", tmp_path / "sac.png")
    row = df.iloc[0]
    assert (row["ion"], row["surface"], row["coordinate"]) == ("Li", "Zn-N4", "li_height")
    assert row["dG_ads_kJ_mol"] == -8.0 and row["dG_ads_err_kJ_mol"] == 1.0  # F(contact) - F(bulk plateau)
    assert (row["cn_bulk"], row["cn_contact"]) == (4.0, 2.5)
    # a height row's barrier is the one on the way in from bulk (docs/science.md §3), not F(TS) - F(bound)
    assert pd.read_csv(tmp_path / "sac.csv")["dG_barrier_kJ_mol"].tolist() == [3.0]
    assert (row["bound_cv_nm"], row["ts_cv_nm"], bool(row["plateau_flat"])) == (0.27, 0.5, True)
    assert (tmp_path / "sac.png").stat().st_size > 10000


def _noisy(F, sd=0.3, n=200, seed=1):
    rng = np.random.default_rng(seed)
    return F[None, :] + rng.normal(0.0, sd, (n, len(F)))


def test_adsorption_numbers_on_an_analytic_height_pmf():
    """Contact well -10 kJ/mol at 0.30 nm, barrier +6 at 0.50 nm, flat bulk beyond: dG_ads = -10,
    dG_barrier_in = +6 (both from the bulk plateau), plateau flat; errors = the bootstrap sd of the
    same difference (sqrt(2) x 0.3 for two independent bins)."""
    from solvmd.pmf.barrier import find_adsorption

    z = np.arange(0.26, 0.90, 0.02)
    F = -10.0 * np.exp(-(((z - 0.30) / 0.05) ** 2)) + 6.0 * np.exp(-(((z - 0.50) / 0.04) ** 2))
    a = find_adsorption(z, F, _noisy(F))
    assert a["dG_ads"][0] == pytest.approx(-10.0, abs=0.01) and a["contact_cv_nm"] == pytest.approx(0.30)
    assert a["dG_barrier_in"][0] == pytest.approx(6.0, abs=0.01) and a["ts_in_cv_nm"] == pytest.approx(0.50)
    assert a["dG_barrier_in"][1] == pytest.approx(0.3 * np.sqrt(1 + 1 / 8), rel=0.2)  # bin vs an 8-bin mean
    assert a["plateau_flat"] is True
    downhill = -10.0 * np.exp(-(((z - 0.30) / 0.05) ** 2))  # no barrier on the way in
    assert find_adsorption(z, downhill, _noisy(downhill))["dG_barrier_in"][0] == pytest.approx(0.0, abs=0.01)
    sloped = F + np.where(z > 0.6, 8.0 * (z - 0.6), 0.0)  # still rising by 1.2 kJ/mol over the plateau
    assert find_adsorption(z, sloped, _noisy(sloped, sd=0.1))["plateau_flat"] is False


def test_empty_range_end_gets_a_stiffer_window_shifted_by_the_mean_force():
    from solvmd.pmf.estimate import _empty_segments
    from solvmd.pmf.windows import propose_for_empty

    edges = np.linspace(0.25, 0.9, 14)
    counts = np.array([0] + [5] * 10 + [0, 0])
    assert _empty_segments(edges, counts) == [(0.25, 0.3), (0.8, 0.9)]
    # the last window (r0 0.90, k 1000) slid to 0.778: mean force 122 kJ/mol/nm pushes it down
    far = Window(6, 0.90, 1000.0, x=np.full(10, 0.778))
    near = Window(0, 0.25, 2500.0, x=np.full(10, 0.302))
    prop = propose_for_empty([near, far], [(0.8, 0.9)], KT, 0.1)
    n = int(np.ceil(0.1 / max_spacing_nm(np.sqrt(KT / 4000.0), 0.1)))
    assert len(prop) == n and all(p["k_kJ_mol_nm2"] == 4000.0 and p["between"] == [6] for p in prop)
    t = 0.8 + (np.arange(n) + 0.5) * 0.1 / n
    np.testing.assert_allclose([p["r0_nm"] for p in prop], t + 122.0 / 4000.0, atol=1e-5)


def test_gap_proposals_stiffen_where_a_window_slid_far():
    """A neighbour that slid more than 3 restraint widths marks a steep PMF: the windows that close
    the gap get 4x its force constant (softer ones would slide again on the next round)."""
    a = Window(7, 0.32, 2500.0, x=np.full(10, 0.445))  # 0.125 nm = 4.0 widths
    b = Window(8, 0.43, 2500.0, x=np.full(10, 0.451))
    prop = propose_windows([a, b], np.array([0.007]), 0.03, KT, 0.1)
    assert prop and all(p["k_kJ_mol_nm2"] == pytest.approx(10000.0) for p in prop)
    soft = Window(7, 0.42, 2500.0, x=np.full(10, 0.445))  # 0.8 width: not stiffened
    far = Window(8, 0.52, 2500.0, x=np.full(10, 0.53))  # (b's own place would be a repeat)
    prop = propose_windows([soft, far], np.array([0.007]), 0.03, KT, 0.1)
    assert prop and all(p["k_kJ_mol_nm2"] == pytest.approx(2500.0) for p in prop)


def test_gap_proposals_never_stiffen_past_the_cap():
    """Stiffening stops at K_MAX_KJ_MOL_NM2 (it compounded round after round on the demo)."""
    from solvmd.pmf.windows import K_MAX_KJ_MOL_NM2

    a = Window(1, 0.32, 40000.0, x=np.full(10, 0.36))  # slid 4 widths of a k = 40,000 window
    b = Window(2, 0.45, 40000.0, x=np.full(10, 0.45))
    prop = propose_windows([a, b], np.array([0.001]), 0.03, KT, 0.1)
    assert prop and all(p["k_kJ_mol_nm2"] == pytest.approx(K_MAX_KJ_MOL_NM2) for p in prop)


def test_a_gap_proposal_never_repeats_a_window_that_already_slid():
    """The demo re-proposed the same soft window (r0 0.313 nm, k 2500) four times; each slid the
    same way. A proposal landing within half a width of a sampled window of the same k is made 4x
    stiffer instead, and its centre re-shifted by the mean force over the new k."""
    a = Window(0, 0.25, 2500.0, x=np.full(10, 0.30))   # slid 2 widths: no 4x rule
    b = Window(1, 0.40, 2500.0, x=np.full(10, 0.40))
    first = propose_windows([a, b], np.array([0.001]), 0.03, KT, 0.1)
    assert first and all(p["k_kJ_mol_nm2"] == pytest.approx(2500.0) for p in first)
    # the same gap again, with the first proposal sampled (it slid like its neighbour)
    done = [Window(2 + j, p["r0_nm"], p["k_kJ_mol_nm2"], x=np.full(10, 0.33))
            for j, p in enumerate(first)]
    again = propose_windows([a, b] + done, np.array([0.001]), 0.03, KT, 0.1)
    again = [p for p in again if p["between"] == [0, 1]]
    assert again and all(p["k_kJ_mol_nm2"] == pytest.approx(10000.0) for p in again)
    for p in again:  # r0 = target + F/k with F interpolated between a (F=-125) and b (F=0)
        force = -125.0 + 125.0 * (p["target_nm"] - 0.30) / 0.10
        assert p["r0_nm"] == pytest.approx(p["target_nm"] + force / 10000.0, abs=1e-5)


def test_cut_overlap_counts_a_bridge_over_a_crowded_gap():
    """Windows ordered by sampled mean: a stiff window sitting between two soft ones overlaps
    neither much, but the soft pair bridges the cut; a real gap has no bridge."""
    from solvmd.pmf.estimate import cut_overlaps

    O = np.array([[0.60, 0.01, 0.39], [0.01, 0.98, 0.01], [0.39, 0.01, 0.60]])
    np.testing.assert_allclose(cut_overlaps(O), [0.39, 0.39])
    gap = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.001], [0.0, 0.001, 0.999]])
    np.testing.assert_allclose(cut_overlaps(gap), [0.1, 0.001])
    chain = np.array([[0.7, 0.3, 0.0], [0.2, 0.6, 0.2], [0.0, 0.3, 0.7]])  # neighbours only
    np.testing.assert_allclose(cut_overlaps(chain), [0.2, 0.2])  # min of O_ab and O_ba


def test_wham_cross_check_is_exact_for_stiff_windows_on_a_steep_pmf():
    """Windows of k 2,500-40,000 sampled exactly on a PMF rising 300 kJ/mol/nm (the
    demo's contact region), 0.04 nm report bins: WHAM with the bias taken at each bin centre is off
    by kJ/mol (its bin approximation, not the data); solved on sub-bins and summed into the same
    bins it follows the truth within sampling noise."""
    from solvmd.pmf.estimate import wham, wham_on_sub_bins

    kT, slope, rng = KT, 300.0, np.random.default_rng(7)
    centres = [0.25, 0.27, 0.30, 0.31, 0.34, 0.36, 0.40, 0.41, 0.44, 0.47]  # mixed k, as after gap closing
    ks = [2500.0, 10000.0, 40000.0, 2500.0, 10000.0, 40000.0, 2500.0, 10000.0, 40000.0, 2500.0]
    wins = []
    for i, (c, k) in enumerate(zip(centres, ks)):  # biased density: Gaussian at c - slope/k
        x = rng.normal(c - slope / k, np.sqrt(kT / k), 4000)
        wins.append(Window(i, float(c), k, temperature_K=298.15, x=x, dt_sample_ps=0.1, x_sub=x))
    edges = np.arange(0.29, 0.451, 0.04)  # every bin well inside the sampled range
    truth = slope * 0.5 * (edges[1:] + edges[:-1])  # linear F: bin averages are the centre values + const

    def err(F):
        d = F - truth
        return float(np.ptp(d[np.isfinite(d)]))

    assert err(kT * wham(wins, edges, kT)[0]) > 1.5    # the bin-centre approximation fails here (2.2)
    assert err(kT * wham_on_sub_bins(wins, edges, kT)) < 0.4  # sampling noise (0.2)
