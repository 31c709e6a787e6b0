"""Transport: self-diffusion (MSD) and conductivity (Nernst-Einstein, Einstein-Helfand).

Molecule centres of mass are unwrapped frame to frame (minimum image of
each displacement), the system centre-of-mass drift removed, MSD computed with the FFT
algorithm over all time origins, and D = slope/6 from a linear fit inside the reported
window. Conductivity uses formal charges z (charge scaling undone):
Nernst-Einstein sigma = e^2/(V kB T) sum_i N_i z_i^2 D_i; Einstein-Helfand
sigma = e^2/(6 V kB T) d/dt <|sum_j z_j dr_j(t)|^2> (collective, includes correlations).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from solvmd.analysis import columns as C
from solvmd.analysis.contacts import AnalysisWarning
from solvmd.units import BOLTZMANN_J_K, ELEMENTARY_CHARGE_C

E_CHARGE = ELEMENTARY_CHARGE_C  # C
K_B = BOLTZMANN_J_K  # J/K
A2_PS_TO_M2_S = 1e-8  # 1 A^2/ps = 1e-20 m^2 / 1e-12 s


def msd_fft(x: np.ndarray) -> np.ndarray:
    """Mean-squared displacement over all time origins, averaged over particles.

    ``x``: unwrapped positions, shape (frames, particles, 3). Returns MSD(k), k = 0..frames-1.
    """
    x = np.asarray(x, dtype=np.float64)
    F = x.shape[0]
    if F == 0:
        return np.zeros(0)
    flat = x.reshape(F, -1)
    d = np.square(flat).sum(1)  # sum over particles and xyz of r^2 per frame
    d = np.append(d, 0.0)
    q = 2.0 * d.sum()
    s1 = np.zeros(F)
    for m in range(F):
        q -= d[m - 1] + d[F - m]
        s1[m] = q / (F - m)
    nfft = 1 << int(math.ceil(math.log2(2 * F)))
    spec = np.fft.rfft(flat, n=nfft, axis=0)
    ac = np.fft.irfft(spec * spec.conj(), n=nfft, axis=0)[:F].sum(1)
    s2 = ac / (F - np.arange(F))
    n_particles = x.shape[1] if x.ndim == 3 else 1
    return (s1 - 2.0 * s2) / n_particles


def fit_slope(t: np.ndarray, y: np.ndarray, start: float, stop: float) -> tuple[float, float, float]:
    """Least-squares slope of y(t) inside [start, stop]; returns slope, actual window start, stop."""
    sel = (t >= start - 1e-9) & (t <= stop + 1e-9)
    if sel.sum() < 2:
        return float("nan"), float("nan"), float("nan")
    slope = np.polyfit(t[sel], y[sel], 1)[0]
    return float(slope), float(t[sel][0]), float(t[sel][-1])


def transport_table(
    com_A: np.ndarray,
    mol_species: np.ndarray,
    species: list[str],
    charges: list[float | None],
    times_ps: np.ndarray,
    volumes_A3: np.ndarray,
    temperature_K: float,
    fit_start_frac: float,
    fit_stop_frac: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Self-diffusion per species and NE/EH conductivity; returns (summary, MSD curves).

    ``com_A``: unwrapped molecule centres (frames, molecules, 3), A; ``mol_species``: species
    index of each molecule; ``charges``: formal charge per species (None: unknown), e.
    """
    F = com_A.shape[0]
    t = times_ps - times_ps[0]
    t_end = t[-1] if F else 0.0
    win = (fit_start_frac * t_end, fit_stop_frac * t_end)
    V = float(np.mean(volumes_A3)) if len(volumes_A3) else float("nan")
    pref = E_CHARGE**2 / (V * 1e-30 * K_B * temperature_K)  # S/m per (m^2/s) for unit charge and count
    if F < 3:
        warnings.warn("transport: need at least 3 frames for an MSD fit", AnalysisWarning, stacklevel=2)
    rows, curves, ne_sum = _self_diffusion(com_A, mol_species, species, charges, t, win, pref)
    z_mol = np.array([np.nan if charges[s] is None else charges[s] for s in mol_species], dtype=np.float64)
    ions = np.isfinite(z_mol) & (z_mol != 0)
    if ions.any() and F >= 3:
        r, c = _conductivity(com_A[:, ions], z_mol[ions], t, win, pref, ne_sum)
        rows += r
        curves.append(c)
    elif not ions.any():
        warnings.warn(
            "transport: no formal charges known (spec field `charges`), conductivity not computed",
            AnalysisWarning,
            stacklevel=2,
        )
    df = pd.DataFrame(rows)
    cols = [C.SPECIES, C.METHOD, C.N_MOLECULES, C.CHARGE, C.D, C.SIGMA, C.SIGMA_MS_CM, C.FIT_START, C.FIT_STOP]
    df = df.reindex(columns=cols)
    df[C.SIGMA_MS_CM] = df[C.SIGMA] * 10.0
    df[C.TEMPERATURE] = temperature_K
    df[C.VOLUME] = V
    curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=[C.SPECIES, C.TIME, C.MSD])
    return df, curve


def _self_diffusion(com_A, mol_species, species, charges, t, win, pref) -> tuple[list[dict], list, float]:
    """MSD rows per species (D in m^2/s, Nernst-Einstein contribution in S/m), MSD curves, their NE sum."""
    F = com_A.shape[0]
    rows, curves, ne_sum = [], [], 0.0
    for k, name in enumerate(species):
        sel = mol_species == k
        msd = msd_fft(com_A[:, sel]) if F else np.zeros(0)
        slope, fs, fe = fit_slope(t, msd, *win) if F >= 3 else (np.nan, np.nan, np.nan)
        D = slope / 6.0 * A2_PS_TO_M2_S
        z = charges[k]
        contrib = np.nan
        if z is not None and z != 0:
            contrib = pref * int(sel.sum()) * z**2 * D
            ne_sum += contrib if np.isfinite(contrib) else np.nan
        rows.append({C.SPECIES: name, C.METHOD: C.MSD_SELF, C.N_MOLECULES: int(sel.sum()),
                     C.CHARGE: np.nan if z is None else z, C.D: D, C.SIGMA: contrib, C.FIT_START: fs, C.FIT_STOP: fe})
        curves.append(pd.DataFrame({C.SPECIES: name, C.TIME: t, C.MSD: msd}))
    return rows, curves, ne_sum


def _conductivity(com_ions, z, t, win, pref, ne_sum) -> tuple[list[dict], pd.DataFrame]:
    """Nernst-Einstein (sum of the species' terms) and Einstein-Helfand (charge-dipole MSD) rows, S/m."""
    M = (com_ions * z[None, :, None]).sum(1)  # translational charge dipole, e*A
    msd_M = msd_fft(M[:, None, :])
    slope, fs, fe = fit_slope(t, msd_M, *win)
    n_ions = int(z.size)
    rows = [{C.SPECIES: C.ALL_IONS, C.METHOD: C.NERNST_EINSTEIN, C.N_MOLECULES: n_ions, C.SIGMA: ne_sum,
             C.FIT_START: win[0], C.FIT_STOP: win[1]},
            {C.SPECIES: C.ALL_IONS, C.METHOD: C.EINSTEIN_HELFAND, C.N_MOLECULES: n_ions,
             C.SIGMA: pref * slope / 6.0 * A2_PS_TO_M2_S, C.FIT_START: fs, C.FIT_STOP: fe}]
    return rows, pd.DataFrame({C.SPECIES: "charge dipole (sum z r)", C.TIME: t, C.MSD: msd_M})
