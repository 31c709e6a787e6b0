"""Transport: MSD of unwrapped coordinates, D with its fit window, Nernst-Einstein and
Einstein-Helfand conductivity with formal charges."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from solvmd.analysis import analyze, spec_from_dict
from solvmd.analysis import columns as C
from solvmd.analysis.transport import A2_PS_TO_M2_S, E_CHARGE, K_B, msd_fft
from synthetic import LI, Molecule, build_universe

CL = Molecule("CL", ["Cl1"], ["Cl"], np.zeros((1, 3)))
BOX = 40.0


def _walk(n_ions, n_frames, sigma, rng, paired=False):
    """Unwrapped random-walk trajectories of n_ions cations and n_ions anions."""
    start = rng.uniform(0, BOX, (2 * n_ions, 3))
    steps = rng.normal(scale=sigma, size=(n_frames, 2 * n_ions, 3))
    steps[0] = 0
    x = start + np.cumsum(steps, axis=0)
    if paired:  # every anion rides 2.4 A from its cation: no net charge transport
        x[:, n_ions:] = x[:, :n_ions] + np.array([2.4, 0, 0])
    return x


def _universe(x, dt, charges=None):
    n = x.shape[1] // 2
    u = build_universe([LI] * n + [CL] * n, x % BOX, [BOX, BOX, BOX, 90, 90, 90], dt_ps=dt)  # wrapped atoms
    if charges is not None:
        u.add_TopologyAttr("charges", np.repeat(charges, n))
    return u


def _spec(**kw):
    d = dict(topology="m", trajectory="m", cation="resname LI", partners={"CL": "resname CL"}, anions=["CL"],
             cutoffs_A={"CL": 3.0}, residence={"enabled": False}, rdf={"r_max_A": 4.0},
             charges={"LI": 1, "CL": -1}, temperature_K=300.0)  # fmt: skip
    d.update(kw)
    return spec_from_dict(d)


def _run(u, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyze(_spec(**kw), verbose=False, universe=u)


def test_msd_fft_equals_direct_average():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(50, 7, 3)), axis=0)
    direct = [np.mean(np.sum((x[k:] - x[: 50 - k]) ** 2, axis=-1)) for k in range(50)]
    np.testing.assert_allclose(msd_fft(x), direct, rtol=1e-10, atol=1e-10)


def test_diffusion_from_wrapped_trajectory_equals_unwrapped_reference():
    rng = np.random.default_rng(3)
    dt, sigma = 2.0, 0.9  # large steps: atoms cross the boundary many times
    x = _walk(400, 300, sigma, rng)
    res = _run(_universe(x, dt), transport={"remove_com_drift": False, "window": "fraction", "n_blocks": 1,
                                         "fit_start_frac": 0.1, "fit_stop_frac": 0.4})
    tr = res["transport"]
    tr = tr[tr[C.METHOD] == C.MSD_SELF].set_index(C.SPECIES)
    t = np.arange(300) * dt
    for name, sl in (("LI", slice(0, 400)), ("CL", slice(400, 800))):
        ref = np.array([np.mean(np.sum((x[k:, sl] - x[: 300 - k, sl]) ** 2, -1)) for k in range(300)])
        win = (t >= tr.loc[name, C.FIT_START]) & (t <= tr.loc[name, C.FIT_STOP])
        D_ref = np.polyfit(t[win], ref[win], 1)[0] / 6 * A2_PS_TO_M2_S
        assert tr.loc[name, C.D] == pytest.approx(D_ref, rel=1e-4)  # unwrapping is exact
        assert tr.loc[name, C.D] == pytest.approx(sigma**2 / (2 * dt) * A2_PS_TO_M2_S, rel=0.1)  # physics
    assert tr.loc["LI", C.FIT_START] == pytest.approx(0.1 * t[-1], abs=dt)
    assert tr.loc["LI", C.FIT_STOP] == pytest.approx(0.4 * t[-1], abs=dt)


def test_nernst_einstein_and_einstein_helfand_for_paired_ions():
    rng = np.random.default_rng(5)
    dt, sigma, T = 1.0, 0.5, 300.0
    x = _walk(100, 200, sigma, rng, paired=True)
    res = _run(_universe(x, dt))
    tr = res["transport"]
    per = tr[tr[C.METHOD] == C.MSD_SELF].set_index(C.SPECIES)
    ne = tr[tr[C.METHOD] == C.NERNST_EINSTEIN][C.SIGMA].item()
    eh = tr[tr[C.METHOD] == C.EINSTEIN_HELFAND][C.SIGMA].item()
    V = BOX**3 * 1e-30
    expected = E_CHARGE**2 / (V * K_B * T) * (100 * per.loc["LI", C.D] + 100 * per.loc["CL", C.D])
    assert ne == pytest.approx(expected, rel=1e-9)
    assert ne > 0.5  # S/m: 100 ion pairs in a 40 A box diffusing ~1e-9 m2/s
    # the pairs carry no net charge: collective (Einstein-Helfand) conductivity vanishes
    assert abs(eh) < 1e-6 * ne
    assert tr[C.SIGMA_MS_CM].dropna().to_numpy() == pytest.approx(10 * tr[C.SIGMA].dropna().to_numpy())
    assert (tr[C.TEMPERATURE] == T).all() and tr[C.VOLUME].iloc[0] == pytest.approx(BOX**3)


def test_formal_charges_undo_charge_scaling():
    rng = np.random.default_rng(7)
    x = _walk(20, 30, 0.3, rng)
    u = _universe(x, 1.0, charges=[0.8, -0.8])  # force-field charges scaled by 0.8
    res = _run(u, charges={}, charge_scale=0.8)
    tr = res["transport"]
    q = tr[tr[C.METHOD] == C.MSD_SELF].set_index(C.SPECIES)[C.CHARGE]
    assert q["LI"] == 1.0 and q["CL"] == -1.0
    assert res.meta["transport_charges_e"] == {"LI": 1.0, "CL": -1.0}


# ---------------------------------------------------------------- Onsager matrix, t+, errors (issue 27)
#
# Synthetic centre-of-mass trajectories with exactly known transport: Gaussian random walks
# (MSD exactly 6 D t, diffusive from the first lag), free ions plus contact pairs that move
# as one (a cation and an anion sharing one walk). With N_f free cations (D1), N_f free
# anions (D2) and N_p pairs (Dp), per unit 1/(V kB T): L++ = N_f D1 + N_p Dp,
# L-- = N_f D2 + N_p Dp, L+- = N_p Dp, so t+ = D1/(D1 + D2) exactly, whatever the pairs do.

from solvmd.analysis.spec import TransportSettings  # noqa: E402
from solvmd.analysis.transport import (  # noqa: E402
    N_A,
    check_uniform_times,
    combine_runs,
    find_window,
    transport_table,
)
from solvmd.errors import SolvmdError  # noqa: E402

V_A3, T_K = 40.0**3, 300.0


def _L_exact(n_times_D):
    """Onsager coefficient (mol^2/(J m s)) of a collective MSD slope 6 * sum(N D), D in A^2/ps."""
    return n_times_D * A2_PS_TO_M2_S / (V_A3 * 1e-30 * K_B * T_K) / N_A**2


def _walk3(rng, F, n, D, dt=1.0):
    steps = rng.normal(scale=np.sqrt(2 * D * dt), size=(F, n, 3))
    steps[0] = 0
    return rng.uniform(0, 40, (1, n, 3)) + np.cumsum(steps, axis=0)


def _mixture(seed, F=20000, n_free=30, n_pair=30, D1=0.2, D2=0.05, Dp=0.1):
    """Free cations, free anions and contact pairs; species 0 = cation (+1), 1 = anion (-1)."""
    rng = np.random.default_rng(seed)
    pairs = _walk3(rng, F, n_pair, Dp)
    cat = np.concatenate([_walk3(rng, F, n_free, D1), pairs], axis=1)
    an = np.concatenate([_walk3(rng, F, n_free, D2), pairs + np.array([2.4, 0, 0])], axis=1)
    com = np.concatenate([cat, an], axis=1)
    species = np.repeat([0, 1], n_free + n_pair)
    return com, species


def _table(com, species, names=("LI", "CL"), charges=(1, -1), masses=None, barycentric=False, F=None, **kw):
    F = com.shape[0] if F is None else F
    settings = TransportSettings(**{"n_blocks": 10, "max_lag_frac": 0.05, **kw})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transport_table(com, species, list(names), list(charges), np.arange(F) * 1.0, np.full(F, V_A3), T_K,
                               settings, masses=masses, barycentric=barycentric)  # fmt: skip


def _get(df, method, species=None, species_j=None, frame=None):
    sel = df[C.METHOD] == method
    if species is not None:
        sel &= df[C.SPECIES] == species
    if species_j is not None:
        sel &= df[C.SPECIES_J] == species_j
    if frame is not None:
        sel &= df[C.REF_FRAME] == frame
    out = df[sel]
    assert len(out) == 1, (method, species, species_j, frame, len(out))
    return out.iloc[0]


def test_fully_paired_ions_give_equal_L_and_no_conductivity():
    com, species = _mixture(1, F=3000, n_free=0, n_pair=40)
    df, _, _ = _table(com, species)
    L = {(i, j): _get(df, C.ONSAGER, i, j, C.LAB)[C.L] for i, j in (("LI", "LI"), ("LI", "CL"), ("CL", "CL"))}
    assert L["LI", "CL"] == pytest.approx(L["LI", "LI"], rel=1e-9)
    assert L["CL", "CL"] == pytest.approx(L["LI", "LI"], rel=1e-9)
    assert L["LI", "LI"] == pytest.approx(_L_exact(40 * 0.1), rel=0.5)  # physics, loose: one collective walk
    ne = _get(df, C.NERNST_EINSTEIN)[C.SIGMA]
    assert abs(_get(df, C.ONSAGER_SIGMA, frame=C.LAB)[C.SIGMA]) < 1e-9 * ne
    assert _get(df, C.IONICITY_ROW)[C.IONICITY] == pytest.approx(0.0, abs=1e-9)


def test_free_plus_paired_ions_t_plus_exact():
    D1, D2, Dp, nf, npr = 0.2, 0.05, 0.1, 30, 30
    df, _, _ = _table(*_mixture(2, D1=D1, D2=D2, Dp=Dp, n_free=nf, n_pair=npr))
    exact = {("LI", "LI"): _L_exact(nf * D1 + npr * Dp), ("CL", "CL"): _L_exact(nf * D2 + npr * Dp),
             ("LI", "CL"): _L_exact(npr * Dp)}  # fmt: skip
    for (i, j), val in exact.items():
        row = _get(df, C.ONSAGER, i, j, C.LAB)
        assert abs(row[C.L] - val) < 5 * row[C.L_STD], (i, j, row[C.L], val, row[C.L_STD])
        assert row[C.L_STD] < 0.2 * val
    t = _get(df, C.TRANSFERENCE_ROW, "LI", frame=C.LAB)
    assert abs(t[C.TRANSFERENCE] - D1 / (D1 + D2)) < 5 * t[C.TRANSFERENCE_STD] and t[C.TRANSFERENCE_STD] < 0.05
    Dc, Da = (nf * D1 + npr * Dp) / (nf + npr), (nf * D2 + npr * Dp) / (nf + npr)
    assert t[C.TRANSFERENCE_IDEAL] == pytest.approx(Dc / (Dc + Da), abs=0.02)  # self-diffusion: many particles
    assert _get(df, C.TRANSFERENCE_ROW, "CL", frame=C.LAB)[C.TRANSFERENCE] == pytest.approx(1 - t[C.TRANSFERENCE])
    ion = _get(df, C.IONICITY_ROW)
    exact_ionicity = nf * (D1 + D2) / ((nf + npr) * (Dc + Da))  # 0.556
    assert abs(ion[C.IONICITY] - exact_ionicity) < 5 * ion[C.IONICITY_STD] and ion[C.IONICITY_STD] < 0.06
    # the conductivity from L_ij is the Einstein-Helfand one, to rounding
    eh = _get(df, C.EINSTEIN_HELFAND)[C.SIGMA]
    assert _get(df, C.ONSAGER_SIGMA, frame=C.LAB)[C.SIGMA] == pytest.approx(eh, rel=1e-10)
    assert df[df[C.METHOD] == C.ONSAGER][C.SIGMA].sum() == pytest.approx(eh, rel=1e-10)
    assert df[C.DIFFUSIVE].all()  # random walks are diffusive from the first lag


def test_independent_walkers_no_cross_term_and_t_plus_ideal():
    df, _, _ = _table(*_mixture(3, n_free=60, n_pair=0))
    cross = _get(df, C.ONSAGER, "LI", "CL", C.LAB)
    assert abs(cross[C.L]) < 5 * cross[C.L_STD]
    assert cross[C.L_STD] < 0.1 * _get(df, C.ONSAGER, "LI", "LI", C.LAB)[C.L]
    t = _get(df, C.TRANSFERENCE_ROW, "LI", frame=C.LAB)
    assert abs(t[C.TRANSFERENCE] - t[C.TRANSFERENCE_IDEAL]) < 5 * np.hypot(t[C.TRANSFERENCE_STD],
                                                                          t[C.TRANSFERENCE_IDEAL_STD])
    assert t[C.TRANSFERENCE_IDEAL] == pytest.approx(0.8, abs=0.02)
    assert abs(_get(df, C.IONICITY_ROW)[C.IONICITY] - 1.0) < 5 * _get(df, C.IONICITY_ROW)[C.IONICITY_STD]


def test_multi_salt_transference_numbers_exact():
    """LiTFSI + LiNO3: Li (+1), TFSI (-1), NO3 (-1); some Li travel with an NO3 (pairs).
    Exact: t_i = N_i,free D_i / sum_k N_k,free D_k (pairs carry no current), sum t_i = 1."""
    rng = np.random.default_rng(4)
    F, DL, DT, DN, Dp = 20000, 0.2, 0.08, 0.15, 0.1
    nLf, nT, nNf, npr = 30, 20, 10, 10
    pairs = _walk3(rng, F, npr, Dp)
    li = np.concatenate([_walk3(rng, F, nLf, DL), pairs], 1)
    no3 = np.concatenate([_walk3(rng, F, nNf, DN), pairs + 2.5], 1)
    com = np.concatenate([li, _walk3(rng, F, nT, DT), no3], 1)
    species = np.repeat([0, 1, 2], [nLf + npr, nT, nNf + npr])
    df, _, _ = _table(com, species, names=("LI", "TFSI", "NO3"), charges=(1, -1, -1))
    denom = nLf * DL + nT * DT + nNf * DN
    exact = {"LI": nLf * DL / denom, "TFSI": nT * DT / denom, "NO3": nNf * DN / denom}  # 0.59, 0.16, 0.15
    total = 0.0
    for name, val in exact.items():
        r = _get(df, C.TRANSFERENCE_ROW, name, frame=C.LAB)
        assert abs(r[C.TRANSFERENCE] - val) < 5 * r[C.TRANSFERENCE_STD] and r[C.TRANSFERENCE_STD] < 0.06, name
        total += r[C.TRANSFERENCE]
    assert total == pytest.approx(1.0, abs=1e-12)
    assert abs(_get(df, C.ONSAGER, "LI", "NO3", C.LAB)[C.L] - _L_exact(npr * Dp)) < 5 * _get(
        df, C.ONSAGER, "LI", "NO3", C.LAB)[C.L_STD]
    ideal = sum(_get(df, C.TRANSFERENCE_ROW, n, frame=C.LAB)[C.TRANSFERENCE_IDEAL] for n in exact)
    assert ideal == pytest.approx(1.0, abs=1e-12)


def test_error_bars_calibrated_over_seeds():
    """Jackknife errors over 10 time blocks against the known truth, 24 seeds x 4 quantities:
    z = (estimate - exact) / error is t-distributed with 9 dof (rms 1.13)."""
    D1, D2, Dp, nf, npr = 0.2, 0.05, 0.1, 20, 20
    zs, est, err = [], [], []
    for seed in range(24):
        df, _, _ = _table(*_mixture(100 + seed, F=4000, D1=D1, D2=D2, Dp=Dp, n_free=nf, n_pair=npr))
        t = _get(df, C.TRANSFERENCE_ROW, "LI", frame=C.LAB)
        vals = [(t[C.TRANSFERENCE], t[C.TRANSFERENCE_STD], D1 / (D1 + D2))]
        for (i, j), nd in ((("LI", "LI"), nf * D1 + npr * Dp), (("LI", "CL"), npr * Dp), (("CL", "CL"), nf * D2 + npr * Dp)):
            r = _get(df, C.ONSAGER, i, j, C.LAB)
            vals.append((r[C.L], r[C.L_STD], _L_exact(nd)))
        zs += [(v - x) / s for v, s, x in vals]
        est.append(vals[0][0])
        err.append(vals[0][1])
    zs = np.array(zs)
    rms = float(np.sqrt(np.mean(zs**2)))
    assert 0.7 < rms < 1.7, rms
    assert np.mean(np.abs(zs) < 2) > 0.8
    assert np.max(np.abs(zs)) < 8
    # the error bar of t+ is the scatter of t+ over independent runs
    assert 0.6 < np.mean(err) / np.std(est, ddof=1) < 1.6


def test_solvent_fixed_frame_equals_mass_fraction_formula():
    """With momentum conserved (barycentric frame exact), t+ in the solvent-fixed frame is
    (t+ - w-)/w0, w the mass fractions (Fong et al. 2020; as the transport-analysis PR uses)."""
    rng = np.random.default_rng(5)
    F, m = 3000, np.array([7.0, 180.0, 90.0])  # Li, anion, solvent molecule masses
    com, species = _mixture(5, F=F, n_free=15, n_pair=15)
    n0 = 100
    sol = _walk3(rng, F, n0, 0.1)
    masses = np.concatenate([np.full(30, m[0]), np.full(30, m[1]), np.full(n0, m[2])])
    allc = np.concatenate([com, sol], 1)
    allc -= np.einsum("fmx,m->fx", allc, masses / masses.sum())[:, None, :]  # system centre of mass at rest
    spc = np.concatenate([species, np.full(n0, 2)])
    df, _, info = _table(allc, spc, names=("LI", "CL", "DME"), charges=(1, -1, 0), masses=masses, barycentric=True)
    assert info["reference_frames"] == [C.BARYCENTRIC, C.SOLVENT_FIXED] and info["solvent_species"] == ["DME"]
    t_b = _get(df, C.TRANSFERENCE_ROW, "LI", frame=C.BARYCENTRIC)[C.TRANSFERENCE]
    t_0 = _get(df, C.TRANSFERENCE_ROW, "LI", frame=C.SOLVENT_FIXED)[C.TRANSFERENCE]
    M = 30 * m[0] + 30 * m[1] + n0 * m[2]
    w_an, w_0 = 30 * m[1] / M, n0 * m[2] / M
    assert t_0 == pytest.approx((t_b - w_an) / w_0, rel=1e-9)
    # conductivity: the same in both frames, and the Einstein-Helfand one
    eh = _get(df, C.EINSTEIN_HELFAND)[C.SIGMA]
    for f in (C.BARYCENTRIC, C.SOLVENT_FIXED):
        assert _get(df, C.ONSAGER_SIGMA, frame=f)[C.SIGMA] == pytest.approx(eh, rel=1e-9)


def _ou(rng, F, n, tau, D, dt=1.0):
    """Positions of n particles whose velocity is an Ornstein-Uhlenbeck process (correlation time tau):
    MSD = 6 D (t - tau (1 - exp(-t/tau))), ballistic for t << tau, diffusive for t >> tau."""
    a = np.exp(-dt / tau)
    sv = np.sqrt(D / tau)  # per-component velocity sd: D = <v^2> tau
    v = np.empty((F, n, 3))
    v[0] = rng.normal(scale=sv, size=(n, 3))
    noise = rng.normal(scale=sv * np.sqrt(1 - a * a), size=(F, n, 3))
    for k in range(1, F):
        v[k] = a * v[k - 1] + noise[k]
    return np.cumsum(v * dt, axis=0)


def test_diffusive_regime_found_on_ballistic_then_diffusive_curve():
    tau, D = 5.0, 0.1
    t = np.arange(0, 2001) * 1.0
    msd = 6 * D * (t - tau * (1 - np.exp(-t / tau)))
    w = find_window(t, {"X": msd}, 1000.0, 0.1)
    # local slope 1 + tau/(t - tau) reaches 1.1 at t = 11 tau; grid of 10 points per decade
    assert w.diffusive and 10 * tau <= w.start <= 15 * tau and w.stop == 1000.0
    short = find_window(t, {"X": msd}, 15 * tau, 0.1)
    assert not short.diffusive and "too short" in short.reason
    ballistic = find_window(t, {"X": msd}, 2 * tau, 0.1)
    m = lambda s: 6 * D * (s - tau * (1 - np.exp(-s / tau)))  # noqa: E731
    beta = np.log(m(2 * tau) / m(tau)) / np.log(2)  # the secant over a factor 2 ending at the longest lag: 1.63
    assert not ballistic.diffusive and f"slope {beta:.2f} at {np.sqrt(2) * tau:.4g} ps" in ballistic.reason


def test_diffusive_regime_on_simulated_trajectory_and_warning_when_too_short():
    rng = np.random.default_rng(6)
    tau, D, F = 4.0, 0.1, 4000
    x = np.concatenate([_ou(rng, F, 150, tau, D), _ou(rng, F, 150, tau, D)], axis=1)
    species = np.repeat([0, 1], 150)
    df, _, info = _table(x, species, n_blocks=4, max_lag_frac=0.5)
    row = _get(df, C.MSD_SELF, "LI")
    assert row[C.DIFFUSIVE] and 8 * tau <= row[C.FIT_START] <= 20 * tau
    assert row[C.D] == pytest.approx(D * A2_PS_TO_M2_S, rel=0.1)
    assert row[C.LOGLOG_SLOPE] == pytest.approx(1.0, abs=0.1)
    assert not any("NOT DIFFUSIVE" in w for w in df[C.WARNING])
    # the same dynamics, 20x slower to decorrelate: the run is too short - said in every ion row
    x = _ou(rng, 600, 200, 60.0, D)
    with pytest.warns(Warning, match="too short for the diffusive regime"):
        df2, _, info2 = transport_table(x, np.repeat([0, 1], 100), ["LI", "CL"], [1, -1], np.arange(600.0),
                                        np.full(600, V_A3), T_K, TransportSettings(n_blocks=2))  # fmt: skip
    ions = df2[df2[C.SPECIES].isin(["LI", "CL", C.ALL_IONS])]
    assert not ions[C.DIFFUSIVE].any()
    assert ions[C.WARNING].str.contains("NOT DIFFUSIVE").all()
    assert any("NOT FINAL" in w for w in info2["warnings"])


def test_combined_runs_jackknife_over_runs():
    D1, D2 = 0.2, 0.05
    runs = [_table(*_mixture(200 + k, F=4000))[0] for k in range(4)]
    comb = combine_runs(runs)
    t = _get(comb, C.TRANSFERENCE_ROW, "LI", frame=C.LAB)
    assert abs(t[C.TRANSFERENCE] - D1 / (D1 + D2)) < 6 * t[C.TRANSFERENCE_STD]
    single = [_get(r, C.TRANSFERENCE_ROW, "LI", frame=C.LAB)[C.TRANSFERENCE] for r in runs]
    assert t[C.TRANSFERENCE] == pytest.approx(np.mean(single), abs=0.03)  # ratio of means ~ mean of ratios
    assert (comb[C.N_RUNS] == 4).all() and comb[C.ERROR_METHOD].str.contains("4 independent runs").all()
    assert _get(comb, C.ONSAGER, "LI", "CL", C.LAB)[C.L] == pytest.approx(
        np.mean([_get(r, C.ONSAGER, "LI", "CL", C.LAB)[C.L] for r in runs]), rel=1e-12)
    with pytest.raises(SolvmdError, match="at least 2"):
        combine_runs(runs[:1])
    other = runs[1].copy()
    for col in (C.SPECIES, C.SPECIES_J):
        other[col] = other[col].replace("CL", "BF4")
    with pytest.raises(SolvmdError, match="other species"):
        combine_runs([runs[0], other])


# ---------------------------------------------------------------- through the analysis (MDAnalysis)


SOL = Molecule("SOL", ["O1"], ["O"], np.zeros((1, 3)))


def _ion_solvent_universe(rng, n_pair=20, n_free=20, n_sol=60, F=400, sigma=0.5, dt=1.0):
    ions = _walk(n_free, F, sigma, rng)  # free cations and anions
    pairs = _walk(n_pair, F, sigma * 0.7, rng, paired=True)
    cat = np.concatenate([ions[:, :n_free], pairs[:, :n_pair]], 1)
    an = np.concatenate([ions[:, n_free:], pairs[:, n_pair:]], 1)
    sol = _walk(n_sol, F, sigma, rng)[:, :n_sol]
    x = np.concatenate([cat, an, sol], 1)
    n_ion = n_free + n_pair
    u = build_universe([LI] * n_ion + [CL] * n_ion + [SOL] * n_sol, x % BOX, [BOX, BOX, BOX, 90, 90, 90], dt_ps=dt)
    return u, x


def _spec_sol(**kw):
    return _spec(partners={"CL": "resname CL", "SOL": "resname SOL"}, charges={"LI": 1, "CL": -1, "SOL": 0},
                 cutoffs_A={"CL": 3.0, "SOL": 3.0}, **kw)  # fmt: skip


def test_analysis_sigma_from_L_equals_einstein_helfand_and_frames():
    """A wrapped MDAnalysis trajectory (ions paired and free, solvent), drift removed: both
    frames give the Einstein-Helfand conductivity; t+ moves between frames as momentum says."""
    u, _ = _ion_solvent_universe(np.random.default_rng(8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze(_spec_sol(), verbose=False, universe=u)
    tr = res["transport"]
    eh = _get(tr, C.EINSTEIN_HELFAND)[C.SIGMA]
    assert eh > 0
    for f in (C.BARYCENTRIC, C.SOLVENT_FIXED):
        assert _get(tr, C.ONSAGER_SIGMA, frame=f)[C.SIGMA] == pytest.approx(eh, rel=1e-9)
        assert tr[(tr[C.METHOD] == C.ONSAGER) & (tr[C.REF_FRAME] == f)][C.SIGMA].sum() == pytest.approx(eh, rel=1e-9)
    m = {"LI": 6.94, "CL": 35.45, "SOL": 15.999}
    Mt = 40 * m["LI"] + 40 * m["CL"] + 60 * m["SOL"]
    t_b = _get(tr, C.TRANSFERENCE_ROW, "LI", frame=C.BARYCENTRIC)[C.TRANSFERENCE]
    t_0 = _get(tr, C.TRANSFERENCE_ROW, "LI", frame=C.SOLVENT_FIXED)[C.TRANSFERENCE]
    assert t_0 == pytest.approx((t_b - 40 * m["CL"] / Mt) / (60 * m["SOL"] / Mt), rel=1e-6)
    meta = res.meta["transport"]
    assert meta["solvent_species"] == ["SOL"] and meta["n_blocks"] == 5
    curves = res["msd"]
    assert set(curves[C.CURVE]) == {"self", "collective", "charge dipole"}


def test_analysis_wrapped_equals_unwrapped_input():
    u, x = _ion_solvent_universe(np.random.default_rng(9), F=200)
    n = x.shape[1]
    u2 = build_universe([LI] * 40 + [CL] * 40 + [SOL] * 60, x, [BOX, BOX, BOX, 90, 90, 90], dt_ps=1.0)
    assert n == 140
    tabs = []
    for uu in (u, u2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tabs.append(analyze(_spec_sol(), verbose=False, universe=uu)["transport"])
    num = [C.D, C.L, C.SIGMA, C.TRANSFERENCE, C.IONICITY]
    np.testing.assert_allclose(tabs[0][num].to_numpy(float), tabs[1][num].to_numpy(float), rtol=1e-5, atol=1e-30)


def test_bad_input_single_frame_no_box_and_one_ion():
    rng = np.random.default_rng(10)
    x = _walk(5, 1, 0.5, rng)
    with pytest.warns(Warning, match="1 frame"):
        res = analyze(_spec(), verbose=False, universe=_universe(x, 1.0))
    tr = res["transport"]
    assert tr[C.D].isna().all() and (~tr[C.DIFFUSIVE]).all()
    # no box: one clear error before anything is computed
    u = build_universe([LI] * 5 + [CL] * 5, _walk(5, 20, 0.5, rng), None)
    with pytest.raises(SolvmdError, match="no periodic box"):
        _run(u)
    # one ion of a species: numbers, and a warning saying what they are
    x = _walk(1, 300, 0.5, rng)
    with pytest.warns(Warning, match="one molecule"):
        res = analyze(_spec(), verbose=False, universe=_universe(x, 1.0))
    row = _get(res["transport"], C.MSD_SELF, "LI")
    assert np.isfinite(row[C.D]) and "one molecule" in row[C.WARNING]


def test_bad_input_nonuniform_times_and_unwrap_ambiguity(tmp_path):
    check_uniform_times(np.arange(10) * 2.0)
    check_uniform_times(np.zeros(10))  # a format without times: not checked
    with pytest.raises(SolvmdError, match="not uniform.*frame 4 -> 5"):
        check_uniform_times(np.r_[np.arange(5) * 2.0, 20.0 + np.arange(5) * 2.0])
    # a trajectory file whose frames jump in time (two restart segments glued)
    from synthetic import write_trajectory

    rng = np.random.default_rng(11)
    u = _universe(_walk(5, 30, 0.3, rng), 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.trajectory[0]
        u.atoms.write(str(tmp_path / "top.pdb"))
        import MDAnalysis as mda

        with mda.Writer(str(tmp_path / "t.xtc"), u.atoms.n_atoms) as w:
            for ts in u.trajectory:
                ts.time = ts.frame * 2.0 + (10.0 if ts.frame >= 15 else 0.0)
                w.write(u.atoms)
    u3 = mda.Universe(str(tmp_path / "top.pdb"), str(tmp_path / "t.xtc"))
    with pytest.raises(SolvmdError, match="not uniform"):
        _run(u3, timestep_ps=2.0)
    del write_trajectory
    # frames so far apart that a molecule may have crossed half the box: warned, in the table
    x = _walk(20, 40, 6.0, rng)
    with pytest.warns(Warning, match="unwrap"):
        res = analyze(_spec(), verbose=False, universe=_universe(x, 1.0))
    assert res["transport"][C.WARNING].str.contains("unwrap").all()


def test_cli_transport_repeats(tmp_path, capsys):
    from solvmd.cli import main

    paths = []
    for k in range(3):
        df, _, _ = _table(*_mixture(300 + k, F=3000))
        paths.append(tmp_path / f"r{k}.csv")
        df.to_csv(paths[-1], index=False)
    out = tmp_path / "runs" / "transport_runs.csv"
    assert main(["transport-repeats", *map(str, paths), "-o", str(out)]) in (0, None)
    comb = pd.read_csv(out)
    assert (comb[C.N_RUNS] == 3).all()
    assert "t LI (lab (drift not removed))" in capsys.readouterr().out
    assert main(["transport-repeats", str(paths[0]), str(tmp_path / "missing.csv"), "-o", str(out)]) == 2


def test_msd_fft_in_column_chunks_equals_one_transform(monkeypatch):
    import solvmd.analysis.transport as tm

    x = np.cumsum(np.random.default_rng(12).normal(size=(300, 17, 3)), axis=0)
    whole = msd_fft(x)
    monkeypatch.setattr(tm, "FFT_CHUNK_BYTES", 16 * 1024 * 5)  # 5 columns of a 1024-long transform at a time
    np.testing.assert_allclose(tm.msd_fft(x), whole, rtol=1e-12, atol=1e-9)
