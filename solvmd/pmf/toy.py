"""Analytic test systems for the umbrella machinery: a particle in a known double well.

- :func:`height_double_well`: one particle, U(z) = h((z-c)^2/a^2 - 1)^2 plus a harmonic
  confinement in x, y; CV = height above the plane z = 0. Exact F(z) = U(z).
- :func:`distance_double_well`: a fixed particle (mass 0) and a mobile one in a periodic
  box, U(r) = h((r-c)^2/a^2 - 1)^2 on their distance. Exact: without the volume term
  F(r) = U(r); with it F(r) = U(r) - 2kT ln r.

Both return ``(system, positions_nm)``; :func:`exact_binned` gives the exact bin-averaged
free energies to compare a histogram PMF with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm as mm
from scipy.integrate import trapezoid

from solvmd.pmf_spec import KB_KJ_MOL_K


def double_well(x, h=10.0, c=0.5, a=0.15):
    return h * ((np.asarray(x) - c) ** 2 / a**2 - 1.0) ** 2


def _expr(var, h, c, a):
    return f"{h}*(({var}-{c})^2/{a}^2-1)^2"


def height_double_well(h=10.0, c=0.5, a=0.15, mass=10.0, k_xy=500.0):
    system = mm.System()
    system.addParticle(mass)
    f = mm.CustomExternalForce(_expr("z", h, c, a) + f" + 0.5*{k_xy}*(x^2+y^2)")
    f.addParticle(0, [])
    system.addForce(f)
    return system, np.array([[0.0, 0.0, c - a]])


def distance_double_well(h=10.0, c=0.5, a=0.15, mass=10.0, box_nm=3.0):
    system = mm.System()
    system.addParticle(0.0)  # fixed
    system.addParticle(mass)
    system.setDefaultPeriodicBoxVectors(mm.Vec3(box_nm, 0, 0), mm.Vec3(0, box_nm, 0), mm.Vec3(0, 0, box_nm))
    f = mm.CustomBondForce(_expr("r", h, c, a))
    f.addBond(0, 1, [])
    f.setUsesPeriodicBoundaryConditions(True)
    system.addForce(f)
    # start near the box edge so the pair is split across the boundary: exercises minimum image
    p0 = np.array([0.05, 0.05, 0.05])
    return system, np.array([p0, p0 - np.array([c - a, 0.0, 0.0]) + np.array([box_nm, 0, 0])])


def exact_binned(edges, temperature_K=298.15, radial=False, volume=True, n_quad=200, **well):
    """Exact -kT ln( mean over the bin of exp(-U/kT) [r^2 for radial] ), zeroed at its minimum.

    ``radial`` with ``volume=False`` adds 2kT ln(bin centre) (the estimator's convention).
    """
    kT = KB_KJ_MOL_K * temperature_K
    edges = np.asarray(edges, float)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        x = np.linspace(lo, hi, n_quad)
        wgt = np.exp(-double_well(x, **well) / kT) * (x**2 if radial else 1.0)
        out.append(-kT * np.log(trapezoid(wgt, x) / (hi - lo)))
    F = np.array(out)
    if radial and not volume:
        F = F + 2.0 * kT * np.log(0.5 * (edges[1:] + edges[:-1]))
    return F - F.min()


def write_inputs(system: mm.System, positions, out_dir) -> tuple[Path, Path]:
    """system.xml + state.xml (positions, box) for the file-based window functions."""
    from solvmd.pmf.io import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    integ = mm.VerletIntegrator(0.001)
    ctx = mm.Context(system, integ, mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(np.asarray(positions))
    st = ctx.getState(getPositions=True)
    sp = atomic_write_text(out_dir / "system.xml", mm.XmlSerializer.serialize(system))
    tp = atomic_write_text(out_dir / "state.xml", mm.XmlSerializer.serialize(st))
    return sp, tp


# The slow partner of :func:`slow_coupled_double_well`: a heavy particle whose x coordinate s sits in
# its own double well and tilts the height double well by lam*(z - c)*s. It plays the slow motion
# orthogonal to the CV (a shell rearranging) that makes umbrella windows correlated.
SLOW = {"h_s": 2.5, "a_s": 0.1, "lam": 60.0, "mass_s": 40.0}


def slow_coupled_double_well(h=10.0, c=0.5, a=0.15, mass=10.0, k_xy=500.0, **slow):
    """Height double well (particle 0, CV z) coupled to a slow coordinate s (particle 1's x).

    U = h((z-c)^2/a^2 - 1)^2 + h_s((s/a_s)^2 - 1)^2 + lam (z - c) s + confinement of the other
    coordinates (kJ/mol, nm). Exact F(z) = U_dw(z) - kT ln int exp(-(U_s(s) + lam (z-c) s)/kT) ds,
    see :func:`exact_slow_coupled`. Returns ``(system, positions_nm)``.
    """
    p = {**SLOW, **slow}
    system = mm.System()
    system.addParticle(mass)
    system.addParticle(p["mass_s"])
    f = mm.CustomCompoundBondForce(2, _expr("z1", h, c, a) + f" + {p['h_s']}*((x2/{p['a_s']})^2-1)^2"
                                   f" + {p['lam']}*(z1-{c})*x2 + 0.5*{k_xy}*(x1^2+y1^2+y2^2+z2^2)")
    f.addBond([0, 1], [])
    system.addForce(f)
    return system, np.array([[0.0, 0.0, c - a], [-p["a_s"], 0.0, 0.0]])


def exact_slow_coupled(edges, temperature_K=298.15, h=10.0, c=0.5, a=0.15, n_quad=200, **slow):
    """Exact bin-averaged F(z) (kJ/mol, zero at its minimum) of :func:`slow_coupled_double_well`."""
    p = {**SLOW, **slow}
    kT = KB_KJ_MOL_K * temperature_K
    s = np.linspace(-4 * p["a_s"], 4 * p["a_s"], 2001)
    us = p["h_s"] * ((s / p["a_s"]) ** 2 - 1.0) ** 2
    out = []
    for lo, hi in zip(np.asarray(edges)[:-1], np.asarray(edges)[1:]):
        z = np.linspace(lo, hi, n_quad)
        inner = trapezoid(np.exp(-(us[None, :] + p["lam"] * (z[:, None] - c) * s[None, :]) / kT), s, axis=1)
        out.append(-kT * np.log(trapezoid(np.exp(-double_well(z, h, c, a) / kT) * inner, z) / (hi - lo)))
    F = np.array(out)
    return F - F.min()


def toy_spec(kind: str = "height", **overrides):
    """A PMFSpec for the toy double wells (Reference platform; fast)."""
    from solvmd.pmf_spec import load_spec

    cv = (
        {"kind": "height", "cation_atoms": [0], "z0_nm": 0.0}
        if kind == "height"
        else {"kind": "distance", "cation_atoms": [0], "partner_atoms": [1]}
    )
    d = dict(
        name=f"toy_{kind}", cv=cv, range_nm=[0.3, 0.7], spacing_nm=0.04, k_kJ_mol_nm2=4000.0,
        equil_ps=10.0, sample_ps=1000.0, sample_interval_steps=50, timestep_fs=4.0, friction_per_ps=20.0,
        platform="Reference", init="place" if kind == "height" else "pull", n_bootstrap=30, seed=1,
    )
    if "n_windows" in overrides or "centers_nm" in overrides:
        d.pop("spacing_nm")
    d.update(overrides)
    return load_spec(d)


def toy_system(kind: str = "height"):
    return height_double_well() if kind == "height" else distance_double_well()


def run_toy(kind, out_dir, n_jobs: int = 1, estimate: bool = True, **overrides):
    """Write inputs, run all windows (n_jobs processes), estimate; returns (spec, result or None)."""
    from solvmd.pmf.estimate import estimate_pmf
    from solvmd.pmf.umbrella import run_windows

    spec = toy_spec(kind, **overrides)
    system, pos = toy_system(kind)
    sx, st = write_inputs(system, pos, Path(out_dir) / "inputs")
    run_windows(sx, st, spec, out_dir, n_jobs=n_jobs)
    return spec, (estimate_pmf(out_dir, spec) if estimate else None)


def solvated_distance_double_well(n_per_side: int = 8, spacing_nm: float = 0.37, cutoff_nm: float = 1.0, **well):
    """The distance double well inside an argon-like LJ liquid (benchmark load, not analytic).

    ``n_per_side**3 - 2`` solvent atoms on a cubic lattice; particles 0 (fixed) and 1 are the pair.
    """
    box = n_per_side * spacing_nm
    g = (np.arange(n_per_side) + 0.5) * spacing_nm
    lattice = np.array(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1).T
    system = mm.System()
    system.setDefaultPeriodicBoxVectors(mm.Vec3(box, 0, 0), mm.Vec3(0, box, 0), mm.Vec3(0, 0, box))
    nb = mm.NonbondedForce()
    nb.setNonbondedMethod(mm.NonbondedForce.CutoffPeriodic)
    nb.setCutoffDistance(cutoff_nm)
    nb.setUseDispersionCorrection(False)
    for i in range(len(lattice)):
        system.addParticle(0.0 if i == 0 else 40.0)
        nb.addParticle(0.0, 0.34, 0.99)
    system.addForce(nb)
    h, c, a = well.get("h", 10.0), well.get("c", 0.5), well.get("a", 0.15)
    f = mm.CustomBondForce(_expr("r", h, c, a))
    f.addBond(0, 1, [])
    f.setUsesPeriodicBoundaryConditions(True)
    system.addForce(f)
    nb.addException(0, 1, 0.0, 0.1, 0.0)
    pos = lattice.copy()
    pos[1] = pos[0] + np.array([c - a, 0.0, 0.0])  # pair partner at the first well, replacing a lattice site
    return system, pos
