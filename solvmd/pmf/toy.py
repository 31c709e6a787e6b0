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


# An adsorption-like height profile with a slow partner: a contact well at zc, a desolvation
# barrier at zb, flat bulk beyond (kJ/mol, nm), and a heavier particle whose x coordinate s hops in
# its own double well and shifts the barrier by lam * s (a shell rearranging, orthogonal to the CV:
# the motion that makes umbrella windows correlated). Integrated correlation time of s at 298 K,
# friction 20/ps, from 4 ns of its own dynamics (pymbar g of 0.2 ps samples): 1.6 ps at mass 15
# (the default), 3.9 ps at mass 40.
ADSORPTION = {"well": 8.0, "zc": 0.35, "wc": 0.04, "barrier": 6.0, "zb": 0.45, "wb": 0.035}
SLOW = {"h_s": 2.5, "a_s": 0.1, "lam": 40.0, "mass_s": 15.0}


def _profile_expr(p: dict) -> str:
    return (f"{p['barrier']}*exp(-(z1-{p['zb']})^2/(2*{p['wb']}^2)) - {p['well']}*exp(-(z1-{p['zc']})^2/"
            f"(2*{p['wc']}^2))")


def slow_coupled_adsorption(mass=10.0, k_xy=500.0, **params):
    """Height CV (particle 0's z above the plane z = 0) over a contact well, a barrier and a flat
    bulk, coupled to a slow coordinate s (particle 1's x) at the barrier:

    U = A g_b(z) - B g_c(z) + h_s((s/a_s)^2 - 1)^2 + lam s g_b(z) + confinement of the other
    coordinates, g_x = exp(-(z - z_x)^2 / (2 w_x^2)). The exact F(z) is
    :func:`exact_slow_coupled`. Returns ``(system, positions_nm)``.
    """
    p = {**ADSORPTION, **SLOW, **params}
    system = mm.System()
    system.addParticle(mass)
    system.addParticle(p["mass_s"])
    gb = f"exp(-(z1-{p['zb']})^2/(2*{p['wb']}^2))"
    f = mm.CustomCompoundBondForce(2, _profile_expr(p) + f" + {p['h_s']}*((x2/{p['a_s']})^2-1)^2"
                                   f" + {p['lam']}*x2*{gb} + 0.5*{k_xy}*(x1^2+y1^2+y2^2+z2^2)")
    f.addBond([0, 1], [])
    system.addForce(f)
    return system, np.array([[0.0, 0.0, p["zc"]], [-p["a_s"], 0.0, 0.0]])


def exact_slow_coupled(edges, temperature_K=298.15, n_quad=200, **params):
    """Exact bin-averaged F(z) (kJ/mol, zero at its minimum) of :func:`slow_coupled_adsorption`:
    F(z) = U(z) - kT ln int exp(-(U_s(s) + lam s g_b(z)) / kT) ds, averaged as exp(-F/kT) over each bin."""
    p = {**ADSORPTION, **SLOW, **params}
    kT = KB_KJ_MOL_K * temperature_K
    s = np.linspace(-4 * p["a_s"], 4 * p["a_s"], 2001)
    us = p["h_s"] * ((s / p["a_s"]) ** 2 - 1.0) ** 2
    out = []
    for lo, hi in zip(np.asarray(edges)[:-1], np.asarray(edges)[1:]):
        z = np.linspace(lo, hi, n_quad)
        gb = np.exp(-(z - p["zb"]) ** 2 / (2 * p["wb"] ** 2))
        u = p["barrier"] * gb - p["well"] * np.exp(-(z - p["zc"]) ** 2 / (2 * p["wc"] ** 2))
        inner = trapezoid(np.exp(-(us[None, :] + p["lam"] * s[None, :] * gb[:, None]) / kT), s, axis=1)
        out.append(-kT * np.log(trapezoid(np.exp(-u / kT) * inner, z) / (hi - lo)))
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
