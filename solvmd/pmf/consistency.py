"""Consistency of an umbrella PMF with an unbiased run: PMF vs -kT ln g(r).

For a distance CV, the pair PMF without the volume term is W(r) = -kT ln g(r) + const,
and with it F(r) = -kT ln p(r) = W(r) - 2kT ln r + const. :func:`rdf_free_energy` turns
unbiased pair distances into both (g(r) by dividing the counts by the shell volumes
4/3 pi (r_hi^3 - r_lo^3); p(r) from the raw counts); :func:`compare` aligns a PMF with
them over bins the unbiased run samples well and reports the deviations in units of the
combined error bars.
"""

from __future__ import annotations

import math

import numpy as np
import openmm as mm
from openmm import unit

from solvmd.md.platforms import locale_kept
from solvmd.pmf import cv as cvmod
from solvmd.pmf.cv import ResolvedCV
from solvmd.pmf.io import apply_state, read_state, read_system


def rdf_free_energy(r_nm, edges, kT, statistical_inefficiency: float = 1.0, radial: bool = True):
    """(W, dW, F_raw, counts) per bin from unbiased pair distances.

    W = -kT ln g(r) (shell-volume normalised; the volume term removed), F_raw = -kT ln p(r)
    (volume term included); both up to a constant. dW = kT / sqrt(counts / g_stat).
    Empty bins are NaN.
    """
    r = np.ravel(np.asarray(r_nm, float))
    edges = np.asarray(edges, float)
    counts = np.histogram(r, bins=edges)[0].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        F_raw = -kT * np.log(counts / np.diff(edges))
        shell = (4.0 / 3.0) * math.pi * (edges[1:] ** 3 - edges[:-1] ** 3) if radial else np.diff(edges)
        W = -kT * np.log(counts / shell)
        dW = kT / np.sqrt(counts / max(1.0, statistical_inefficiency))
    for a in (F_raw, W, dW):
        a[counts == 0] = np.nan
    return W, dW, F_raw, counts


def compare(F, dF, W, dW, counts, min_count: int = 100) -> dict:
    """Align W to F (error-weighted mean offset) over bins with >= ``min_count`` unbiased counts.

    Returns the number of bins compared, the offset, the largest absolute deviation and the
    largest deviation in units of the combined error sqrt(dF^2 + dW^2).
    """
    F, dF, W, dW, counts = (np.asarray(a, float) for a in (F, dF, W, dW, counts))
    m = (counts >= min_count) & np.isfinite(F) & np.isfinite(W)
    if m.sum() < 2:
        raise ValueError(f"fewer than 2 bins with >= {min_count} unbiased samples to compare")
    err = np.sqrt(dF[m] ** 2 + dW[m] ** 2)
    w = 1.0 / np.maximum(err, 1e-12) ** 2
    d = W[m] - F[m]
    off = float(np.sum(w * d) / np.sum(w))
    dev = d - off
    return {
        "n_bins": int(m.sum()),
        "offset_kJ_mol": off,
        "max_abs_dev_kJ_mol": float(np.max(np.abs(dev))),
        "max_abs_z": float(np.max(np.abs(dev) / err)),
        "chi2_per_dof": float(np.sum((dev / err) ** 2) / max(1, m.sum() - 1)),
        "mask": m,
    }


def unbiased_cv_samples(
    system_xml, state_xml, rcv: ResolvedCV, n_samples: int, interval_steps: int, temperature_K: float,
    timestep_fs: float, friction_per_ps: float = 1.0, seed: int = 7, equil_steps: int = 0, platform=None,
) -> np.ndarray:
    """CV time series from plain (unbiased) Langevin dynamics, e.g. for the toy systems."""
    from solvmd.pmf.simulation import choose_platform

    system = read_system(system_xml)
    integ = mm.LangevinMiddleIntegrator(
        temperature_K * unit.kelvin, friction_per_ps / unit.picosecond, timestep_fs * unit.femtosecond
    )
    integ.setRandomNumberSeed(seed)
    plat, props = choose_platform(platform)
    with locale_kept():
        ctx = mm.Context(system, integ, plat, props)
    apply_state(ctx, read_state(state_xml), use_velocities=False)
    ctx.setVelocitiesToTemperature(temperature_K * unit.kelvin, seed)
    if equil_steps:
        integ.step(equil_steps)
    out = np.empty(n_samples)
    for i in range(n_samples):
        integ.step(interval_steps)
        out[i] = cvmod.context_cv(ctx, rcv)
    return out
