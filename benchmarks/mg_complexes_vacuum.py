"""Do the isolated Mg complexes hold together in solvmd's force field? (about 3 min, 1 CPU thread)

    python benchmarks/mg_complexes_vacuum.py [--bonded-only]

Builds MgCl(THF)5+ and [Mg2(mu-Cl)3(THF)6]+ from their ideal start geometry
(forcefields/complexes.yaml) and, in vacuum with solvmd's force field (geometric mixing,
ionic charges x scale):

1. minimizes them and prints the Mg-O, Mg-Cl (< 3 A) and Mg...Mg distances (angstrom);
2. runs 20 ps of Langevin MD at 300 K and prints the fraction of the start metal-ligand
   bonds kept over the last 5 ps (Mg-O < 2.6 A, Mg-Cl < 3.0 A) and Mg...Mg.

Rows: the shipped Aqvist Mg2+ (opls_411) with charges x 0.8 and x 1.0; probe LJ sets
(sigma, epsilon) for a softer/larger Mg2+; and probe ion-induced-dipole terms -C4/r^4 on
the Mg-O pairs (the idea of the Li-Merz 12-6-4 model, Li & Merz, JCTC 2014, 10, 289,
doi:10.1021/ct400751u) with ASSUMED C4 magnitudes. Probes only, not published parameter
sets. Vacuum is not the THF solution (docs/validation.md has that); it shows whether the
point-charge model holds a complex together on its own (forcefields/SOURCES.md: Complexes).
"""

from __future__ import annotations

import sys

import numpy as np
import openmm
from openmm import unit

from solvmd import complexes
from solvmd.assembly.bonded_complexes import add_complex_bonds
from solvmd.assembly.complex_geometry import build_structure
from solvmd.assembly.system import build_topology
from solvmd.forcefield import create_system

# (label, Mg LJ (sigma nm, epsilon kJ/mol) or None = shipped, charge scale, C4 kcal/mol A^4 or 0)
CASES = [("Aqvist 1990 (opls_411), charges x 0.8", None, 0.8, 0.0),
         ("Aqvist 1990 (opls_411), full charges", None, 1.0, 0.0),
         ("probe sigma 1.9 A, eps 1.5 kJ/mol, x 0.8", (0.19, 1.5), 0.8, 0.0),
         ("probe sigma 2.1 A, eps 0.5 kJ/mol, x 0.8", (0.21, 0.5), 0.8, 0.0),
         ("Aqvist x 0.8 + probe C4 60 on Mg-O", None, 0.8, 60.0),
         ("Aqvist x 0.8 + probe C4 120 on Mg-O", None, 0.8, 120.0)]
BOND_LIMIT_A = {"O": 2.6, "Cl": 3.0}


def _context(name: str, mg_lj, scale: float, c4: float, integrator) -> tuple[openmm.Context, list[str], object]:
    """Vacuum context of complex ``name`` at its start geometry, minimized."""
    st = build_structure(name)
    top = build_topology({name: 1}, (5.0, 5.0, 5.0))
    top.setPeriodicBoxVectors(None)
    # exact form (the Mg LJ is edited in its CustomNonbondedForce below), natural masses, 2 fs
    system = create_system(top, complexes.unit_members(name), charge_scale=scale, mixing="exact", hydrogen_mass_amu=None)
    el = [a.element.symbol for a in top.atoms()]
    add_complex_bonds(system, {name: 1}, el, st.xyz_A / 10.0)  # *_bonded complexes only (issue 13)
    if mg_lj is not None:
        s, e = mg_lj
        lj = next(f for f in system.getForces() if isinstance(f, openmm.CustomNonbondedForce))
        for i, sym in enumerate(el):
            if sym == "Mg":
                lj.setParticleParameters(i, [2 * np.sqrt(e) * s**6, 2 * np.sqrt(e) * s**3])
    if c4:
        f = openmm.CustomBondForce(f"-{c4 * 4.184e-4!r}/r^4")  # kcal/mol A^4 -> kJ/mol nm^4
        for m in (i for i, sym in enumerate(el) if sym == "Mg"):
            for o in (i for i, sym in enumerate(el) if sym == "O"):
                f.addBond(m, o, [])
        system.addForce(f)
    ctx = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(st.xyz_A / 10.0 * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(ctx, 1e-3, 5000)
    return ctx, el, st


def md_bonds_kept(name: str, mg_lj, scale: float, c4: float, ps: int = 20, seed: int = 1) -> tuple[float, float | None]:
    """Fraction of start metal-ligand bonds kept over the last 5 ps of ``ps`` ps at 300 K; mean Mg...Mg (A)."""
    integ = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
    integ.setRandomNumberSeed(seed)
    ctx, el, st = _context(name, mg_lj, scale, c4, integ)
    ctx.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    b = np.array([(a, d) for a, d, _ in st.bonds])
    limit = np.array([BOND_LIMIT_A[el[d]] for d in b[:, 1]])
    kept, mm = [], []
    for _ in range(ps):
        integ.step(500)
        x = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        kept.append((np.linalg.norm(x[b[:, 0]] - x[b[:, 1]], axis=1) < limit).mean())
        if len(st.metals) == 2:
            mm.append(np.linalg.norm(x[st.metals[0]] - x[st.metals[1]]))
    return float(np.mean(kept[-5:])), (float(np.mean(mm[-5:])) if mm else None)


def minimized(name: str, mg_lj, scale: float, c4: float = 0.0) -> dict:
    """Minimize complex ``name`` in vacuum; Mg LJ (sigma nm, epsilon kJ/mol) replaced if given."""
    ctx, el, st = _context(name, mg_lj, scale, c4, openmm.VerletIntegrator(0.001))
    x = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    out = {"Mg-O": [], "Mg-Cl": []}
    for m in st.metals:
        d = np.linalg.norm(x - x[m], axis=1)
        for key, sym in (("Mg-O", "O"), ("Mg-Cl", "Cl")):
            near = sorted(d[[i for i, s_ in enumerate(el) if s_ == sym]])
            out[key] += [r for r in near if r < 3.0]
    out["Mg...Mg"] = float(np.linalg.norm(x[st.metals[0]] - x[st.metals[1]])) if len(st.metals) == 2 else None
    return out


def main() -> int:
    print("# minimized (angstrom) | 20 ps at 300 K: start bonds kept, Mg...Mg")
    cases = [(c, ("MgCl_THF5", "Mg2Cl3_THF6")) for c in CASES]
    bonded = (("bonded Mg-Cl (GFN2-xTB Seminario), x 0.8", None, 0.8, 0.0), ("MgCl_THF5_bonded", "Mg2Cl3_THF6_bonded"))
    cases = [bonded] if "--bonded-only" in sys.argv else cases + [bonded]
    for (label, lj, scale, c4), names in cases:
        for name in names:
            r = minimized(name, lj, scale, c4)
            kept, mm_md = md_bonds_kept(name, lj, scale, c4)
            mm = f", Mg...Mg {r['Mg...Mg']:.2f}" if r["Mg...Mg"] else ""
            mm_md = f", Mg...Mg {mm_md:.2f}" if mm_md else ""
            print(f"{label:40s} {name:18s} Mg-O {np.round(r['Mg-O'], 2).tolist()} "
                  f"Mg-Cl {np.round(r['Mg-Cl'], 2).tolist()}{mm} | kept {100 * kept:.0f} %{mm_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
