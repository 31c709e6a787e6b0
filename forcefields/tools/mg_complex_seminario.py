#!/usr/bin/env python
"""Bonded Mg-Cl terms of MgCl(THF)5+ and [Mg2(mu-Cl)3(THF)6]+ by the Seminario method.

Usage (repository root; needs ``pip install tblite``, in the extra ``solvmd[charges]``)::

    python forcefields/tools/mg_complex_seminario.py        # -> forcefields/qm/mg_complexes_seminario.json
    python forcefields/tools/mg_complex_seminario.py --refit   # r0/theta0 only (QM from build/qm or the file)

Route:

1. Start: the complex exactly as ``solvmd.assembly.complex_geometry.build_structure`` builds it
   (full THF ligands, no reduction).
2. QM: GFN2-xTB (Bannwarth, Ehlert, Grimme, JCTC 2019, 15, 1652, doi:10.1021/acs.jctc.8b01176)
   via tblite, with the ALPB implicit solvent for THF (Ehlert et al., JCTC 2021, 17, 4250,
   doi:10.1021/acs.jctc.1c00471); geometry minimized (scipy L-BFGS, |grad|max < 3e-4 Eh/bohr),
   Hessian by central differences of the analytic gradient (0.005 bohr).
3. Seminario (Int. J. Quantum Chem. 1996, 60, 1271, doi:10.1002/(SICI)1097-461X(1996)60:7
   <1271::AID-QUA8>3.0.CO;2-W), as MCPB.py uses it: bond k = sum_i lambda_i |u_AB . v_i|
   over the eigenpairs of -H_AB; angle 1/k = 1/(R_AB^2 sum lambda |u_PA . v|) + 1/(R_CB^2 ...).
   Equivalent terms (all bridging Mg-Cl, all Cl-Mg-Cl, all Mg-Cl-Mg) are averaged.
   r_qm and theta_qm are the minimized GFN2-xTB values. Units written: A, deg, kJ/mol/A^2 and
   kJ/mol/rad^2 with E = 1/2 k (x - x0)^2 (OpenMM convention).
4. Effective r0 / theta0 (:func:`fit_equilibrium`): refitted until the MM minimum of each
   isolated complex, with the nonbonded pairs solvmd keeps (``bonded_complexes.excluded_pairs``:
   Mg-Cl and Cl...Cl excluded, the dimer's Mg...Mg kept since issue 29), is the GFN2-xTB geometry.
   ``--refit`` redoes only this step (after a change of the exclusions or charge scale).

Only the Mg-Cl part is bonded; Mg-O(THF) stays nonbonded (THF can leave).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from solvmd.forcefield_settings import DEFAULT_CHARGE_SCALE  # noqa: E402 (after the path insert)

RESULTS = ROOT / "forcefields" / "qm" / "mg_complexes_seminario.json"
BOHR_A = 0.529177210903
HARTREE_KJ = 2625.499639
Z = {"H": 1, "C": 6, "O": 8, "Mg": 12, "Cl": 17}
STEP_BOHR = 0.005


def calculator(numbers: np.ndarray, xyz_bohr: np.ndarray, charge: int):
    from tblite.interface import Calculator

    calc = Calculator("GFN2-xTB", numbers, xyz_bohr, charge=charge)
    calc.set("verbosity", 0)
    calc.add("alpb-solvation", "thf")
    return calc


def energy_gradient(numbers, xyz_bohr, charge) -> tuple[float, np.ndarray]:
    res = calculator(numbers, xyz_bohr, charge).singlepoint()
    return float(res.get("energy")), np.asarray(res.get("gradient"))


def minimize(numbers, xyz_bohr, charge, log) -> np.ndarray:
    from scipy.optimize import minimize as sp_min

    def fun(x):
        e, g = energy_gradient(numbers, x.reshape(-1, 3), charge)
        return e, g.ravel()

    res = sp_min(fun, xyz_bohr.ravel(), jac=True, method="L-BFGS-B",
                 options={"maxiter": 3000, "gtol": 3e-4, "ftol": 1e-12})
    gmax = float(np.abs(fun(res.x)[1]).max())
    log(f"minimized: E = {res.fun:.8f} Eh, max |grad| = {gmax:.2e} Eh/bohr, {res.nit} steps")
    if gmax > 1e-3:
        raise RuntimeError(f"GFN2-xTB minimization did not converge (max |grad| {gmax:.2e})")
    return res.x.reshape(-1, 3)


def hessian(numbers, xyz_bohr, charge, atoms: list[int]) -> np.ndarray:
    """Rows of the Cartesian Hessian (Eh/bohr^2) for ``atoms`` only (the blocks Seminario
    needs), by central differences of analytic gradients; returns the full-width rows."""
    n = len(numbers)
    H = np.zeros((3 * n, 3 * n))
    for a in atoms:
        for d in range(3):
            xp, xm = xyz_bohr.copy(), xyz_bohr.copy()
            xp[a, d] += STEP_BOHR
            xm[a, d] -= STEP_BOHR
            gp = energy_gradient(numbers, xp, charge)[1].ravel()
            gm = energy_gradient(numbers, xm, charge)[1].ravel()
            H[3 * a + d] = (gp - gm) / (2 * STEP_BOHR)
    return H


def _eig(H: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    block = -0.5 * (H[3 * a:3 * a + 3, 3 * b:3 * b + 3] + H[3 * b:3 * b + 3, 3 * a:3 * a + 3].T)
    w, v = np.linalg.eig(block)
    return np.real(w), np.real(v)


def seminario_bond(H, xyz_bohr, a, b) -> float:
    """k (Eh/bohr^2) of bond a-b."""
    u = xyz_bohr[b] - xyz_bohr[a]
    u /= np.linalg.norm(u)
    w, v = _eig(H, a, b)
    return float(sum(w[i] * abs(u @ v[:, i]) for i in range(3)))


def seminario_angle(H, xyz_bohr, a, b, c) -> float:
    """k (Eh/rad^2) of angle a-b-c (b central), original Seminario projection."""
    r_ab, r_cb = xyz_bohr[a] - xyz_bohr[b], xyz_bohr[c] - xyz_bohr[b]
    u_ab, u_cb = r_ab / np.linalg.norm(r_ab), r_cb / np.linalg.norm(r_cb)
    u_n = np.cross(u_cb, u_ab)
    u_n /= np.linalg.norm(u_n)
    u_pa, u_pc = np.cross(u_n, u_ab), np.cross(u_cb, u_n)
    w1, v1 = _eig(H, a, b)
    w2, v2 = _eig(H, c, b)
    s1 = sum(w1[i] * abs(u_pa @ v1[:, i]) for i in range(3))
    s2 = sum(w2[i] * abs(u_pc @ v2[:, i]) for i in range(3))
    return float(1.0 / (1.0 / (np.linalg.norm(r_ab) ** 2 * s1) + 1.0 / (np.linalg.norm(r_cb) ** 2 * s2)))


def _angle_deg(x, a, b, c) -> float:
    u, v = x[a] - x[b], x[c] - x[b]
    return float(np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v))))


def terms(name: str, log) -> dict:
    """Minimize + Hessian + Seminario for one complex; averaged terms and geometry."""
    from solvmd import complexes, species
    from solvmd.assembly.complex_geometry import build_structure

    cx, st = complexes.get(name), build_structure(name)
    el = [a.GetSymbol() for m in st.members for a in species.get(m).mol.GetAtoms()]
    numbers = np.array([Z[e] for e in el])
    x = minimize(numbers, st.xyz_A / BOHR_A, cx.charge, log)
    mg = list(st.metals)
    cl = [i for i, e in enumerate(el) if e == "Cl"]
    H = hessian(numbers, x, cx.charge, mg + cl)
    xa = x * BOHR_A
    bonds = {"terminal": [], "bridging": []}
    for m in mg:
        for c in cl:
            kind = "bridging" if c in st.bridging else "terminal"
            if c in st.bridging or any(b[0] == m and b[1] == c for b in st.bonds):
                k = seminario_bond(H, x, m, c) * HARTREE_KJ / BOHR_A ** 2
                bonds[kind].append((float(np.linalg.norm(xa[m] - xa[c])), k))
    out = {"bonds": {}, "angles": {}}
    for kind, vals in bonds.items():
        if vals:
            out["bonds"][f"Mg-Cl_{kind}"] = {"r_qm_A": float(np.mean([v[0] for v in vals])),
                                              "k_kJ_mol_A2": float(np.mean([v[1] for v in vals])),
                                              "n": len(vals), "spread_r_A": float(np.ptp([v[0] for v in vals]))}
    ang = {"Cl-Mg-Cl": [], "Mg-Cl-Mg": []}
    br = list(st.bridging)
    for m in mg:
        for i, a in enumerate(br):
            for c in br[i + 1:]:
                ang["Cl-Mg-Cl"].append((_angle_deg(xa, a, m, c), seminario_angle(H, x, a, m, c) * HARTREE_KJ))
    if len(mg) == 2:
        for c in br:
            k = seminario_angle(H, x, mg[0], c, mg[1]) * HARTREE_KJ
            ang["Mg-Cl-Mg"].append((_angle_deg(xa, mg[0], c, mg[1]), k))
    for key, vals in ang.items():
        if vals:
            out["angles"][key] = {"theta_qm_deg": float(np.mean([v[0] for v in vals])),
                                  "k_kJ_mol_rad2": float(np.mean([v[1] for v in vals])), "n": len(vals),
                                  "spread_deg": float(np.ptp([v[0] for v in vals]))}
    mo = [float(np.linalg.norm(xa[b[0]] - xa[b[1]])) for b in st.bonds if el[b[1]] == "O"]
    out["geometry"] = {"Mg-O_A_mean": float(np.mean(mo)), "Mg-O_A_range": [float(min(mo)), float(max(mo))]}
    if len(mg) == 2:
        out["geometry"]["Mg-Mg_A"] = float(np.linalg.norm(xa[mg[0]] - xa[mg[1]]))
    log(f"{name}: {out}")
    return out


BONDED_NAME = {"MgCl_THF5": "MgCl_THF5_bonded", "Mg2Cl3_THF6": "Mg2Cl3_THF6_bonded"}
CHARGE_SCALE = DEFAULT_CHARGE_SCALE  # the recipe default (docs/science.md §4); the r0/theta0 fit is for this scale


def _mm_values(name: str, terms: dict) -> dict[str, float]:
    """Minimize the isolated bonded complex with solvmd's force field + ``terms``; mean MM
    value (A or deg) per term kind."""
    import openmm
    from openmm import unit

    from solvmd import complexes
    from solvmd.assembly.bonded_complexes import _terms_for, add_complex_bonds
    from solvmd.assembly.complex_geometry import build_structure, complex_instances
    from solvmd.assembly.system import build_topology
    from solvmd.forcefield import create_system

    bname = BONDED_NAME[name]
    top = build_topology({bname: 1}, (4.0, 4.0, 4.0))
    el = [a.element.symbol for a in top.atoms()]
    xyz = build_structure(bname).xyz_A / 10.0 + 2.0
    system = create_system(top, complexes.unit_members(bname), charge_scale=CHARGE_SCALE)  # the recipe defaults
    add_complex_bonds(system, {bname: 1}, el, xyz, params={bname: terms})
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                         {"Threads": "1"})
    ctx.setPositions(xyz * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(ctx, 0.01, 20000)
    x = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    bonds, angles = _terms_for(bname, complex_instances({bname: 1})[0]["instances"][0], el)
    vals: dict[str, list[float]] = {}
    for i, j, kind in bonds:
        vals.setdefault(kind, []).append(float(np.linalg.norm(x[i] - x[j])))
    for i, j, k, kind in angles:
        vals.setdefault(kind, []).append(_angle_deg(x, i, j, k))
    return {k: float(np.mean(v)) for k, v in vals.items()}


def fit_equilibrium(name: str, qm: dict, log, tol: float = 0.002, max_iter: int = 40) -> dict:
    """Effective r0 / theta0 such that the MM minimum of the isolated complex (solvmd force field,
    charge_scale 0.8, Mg-O and Cl...O nonbonded) has the GFN2-xTB bond lengths and angles;
    force constants stay the Seminario ones. Fixed-point iteration p <- p + (QM - MM)."""
    terms = {"bonds": {k: dict(v, r0_A=v["r_qm_A"]) for k, v in qm["bonds"].items()},
             "angles": {k: dict(v, theta0_deg=v["theta_qm_deg"]) for k, v in qm["angles"].items()}}
    for it in range(max_iter):
        mm = _mm_values(name, terms)
        dev = {}
        for k, v in terms["bonds"].items():
            dev[k] = v["r_qm_A"] - mm[k]
            v["r0_A"] += dev[k]
        for k, v in terms["angles"].items():
            dev[k] = (v["theta_qm_deg"] - mm[k]) / 100.0  # compare degrees at 1/100 weight
            v["theta0_deg"] += 100.0 * dev[k]
        log(f"{name} fit {it}: MM {mm}")
        if max(abs(d) for d in dev.values()) < tol:
            break
    else:
        raise RuntimeError(f"{name}: equilibrium fit did not converge in {max_iter} iterations ({dev})")
    for group in ("bonds", "angles"):
        for k, v in terms[group].items():
            v["mm_minimum"] = mm[k]
    return dict(qm, **terms)


def qm_terms_from_results(results: dict) -> dict:
    """The QM part of a written results file (Seminario k, GFN2-xTB r_qm / theta_qm, geometry):
    each complex's terms without the fitted r0 / theta0 and MM minima, as :func:`terms` returns them."""
    fitted = ("r0_A", "theta0_deg", "mm_minimum")
    return {name: {"bonds": {k: {f: v for f, v in t.items() if f not in fitted} for k, t in cx["bonds"].items()},
                   "angles": {k: {f: v for f, v in t.items() if f not in fitted} for k, t in cx["angles"].items()},
                   "geometry": cx["geometry"]}
            for name, cx in results["complexes"].items()}


def main() -> int:
    from solvmd.io import write_json_atomic

    (ROOT / "build" / "qm").mkdir(parents=True, exist_ok=True)
    logf = open(ROOT / "build" / "qm" / "seminario_progress.log", "a")

    def log(msg: str) -> None:
        logf.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
        logf.flush()

    qm_cache = ROOT / "build" / "qm" / "seminario_qm.json"
    if "--refit" in sys.argv and qm_cache.exists():
        qm = json.loads(qm_cache.read_text())
    elif "--refit" in sys.argv:  # no QM cache here: the QM half (k, r_qm, theta_qm) of the shipped file
        qm = qm_terms_from_results(json.loads(RESULTS.read_text()))
    else:
        qm = {name: terms(name, log) for name in ("MgCl_THF5", "Mg2Cl3_THF6")}
        write_json_atomic(qm_cache, qm)
    out = {"method": "GFN2-xTB (tblite) + ALPB(THF); minimized; central-difference Hessian "
                     f"({STEP_BOHR} bohr); Seminario k, equivalent terms averaged; r_qm/theta_qm = GFN2-xTB "
                     "minimum; r0/theta0 = effective values that put the minimum of the isolated complex in "
                     f"solvmd's force field (charge_scale {CHARGE_SCALE}) at the GFN2-xTB geometry",
           "charge_scale": CHARGE_SCALE,
           "complexes": {name: fit_equilibrium(name, qm[name], log) for name in qm}}
    write_json_atomic(RESULTS, out)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
