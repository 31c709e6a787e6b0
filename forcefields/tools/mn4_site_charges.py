#!/usr/bin/env python
"""M-N4 site charges from DFT on a hydrogen-capped graphene flake, ESP-fitted (RESP).

Usage (repository root; needs ``pip install 'solvmd[charges]'``)::

    python forcefields/tools/mn4_site_charges.py run Zn [--workdir build/qm]   # SCF + ESP + fit
    python forcefields/tools/mn4_site_charges.py update                         # results -> surfaces.yaml

Model (see forcefields/SOURCES.md, "M-N4 site charges"):

* Flake: the M-N4 divacancy site exactly as ``solvmd.assembly.surfaces.build_sheet`` builds it
  (planar, C-C 1.42 A, M-N of ``surfaces.yaml``), cut to every sheet atom within
  ``radius`` (5.0 A: C26N4M + 14 H, 31 heavy atoms) of the metal, atoms with < 2 kept neighbours
  pruned, each cut bond capped by H at 1.08 A (OPLS-AA CA-HA). Neutral; the N4 ligand
  is the closed-shell dianion of a Kekule structure, the metal M(II).
* DFT: PySCF, PBE/def2-SVP, density fitting (def2-universal-jfit), grids level 2, no
  geometry optimization (the MD sheet is frozen in this geometry). Spin state per metal in
  ``SPIN``; Fe is run in both S = 1 and S = 2 and the lower PBE energy is used.
* Open-shell SCF route (``anneal`` -> ``converge`` -> ``check_aufbau``): UKS with Fermi-Dirac
  smearing at fixed 2S (separate alpha/beta Fermi levels), sigma 0.02 -> 0.01 -> 0.005 Eh on
  the coarse grid (level 0), each step from the previous density, the first from a
  level-shifted coarse SCF (or from ``--guess-chk``, an earlier SCF of the flake); then an
  unsmeared SCF on the production grid (integer aufbau occupations; level shift 0.2 Eh only
  to steady the path, removed in PySCF's final check diagonalization). A state that is not
  aufbau in either spin channel is refused (no charges). ``--stability`` adds UKS internal
  stability analysis with a restart from the rotated orbitals (costly; off by default).
  Smearing replaces the earlier coarse guess + MOM, which locked the Fe flake into an
  excited configuration. On the Fe flake (S = 2) this route did not converge either (smeared
  DIIS diverged at sigma 0.02 and 0.005 Eh; SOURCES.md lists what was measured), so Fe has no
  charges from it yet.
* Fit: ESP on Merz-Kollman points (4 shells, 1 point/A^2), one-stage RESP (qwt 0.0005,
  hyperbolic, H free: no sp3 groups, so the second RESP stage of Bayly 1993 does not apply),
  atoms equal under the flake's D2h symmetry, and the defect M + 4 N + 8 alpha-C
  constrained to zero net charge: that is the MD sheet's model (all other sheet C carry 0),
  so q(M), q(N) go to surfaces.yaml and the builder's alpha-C compensation reproduces the
  fitted alpha-C charge. Charges are full (unscaled) like every other sheet charge.

Resumable: the SCF checkpoint (``<workdir>/<M>_S<2S>/scf.chk``) seeds a restart; a finished
SCF (``scf.npz``), annealed start (``anneal.npz``) and ESP (``esp.npz``) are not recomputed; each
state's record is kept as ``<workdir>/<M>_S<2S>_.../record.json``. The result JSON
(``forcefields/qm/mn4_<M>.json``) is written atomically only after every spin state of ``SPIN``
passed its checks (``run <M> --spins 2S`` runs one state; a later ``run <M>`` reuses it).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qm_esp  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "forcefields" / "qm"
FUNCTIONAL, BASIS, AUXBASIS = "pbe", "def2-svp", "def2-universal-jfit"
CH_BOND_A = 1.08  # OPLS-AA CA-HA aromatic C-H (GROMACS oplsaa.ff ffbonded.itp)
RADIUS_A = 5.0
GRID_LEVEL = 2  # PySCF DFT grid level (Treutler-Ahlrichs radial, Lebedev angular)
# 2S per metal: M(II) in a square-planar N4 field, as in the metal phthalocyanines
# (ZnPc, NiPc S = 0; CoPc, CuPc S = 1/2; FePc S = 1; MnPc S = 3/2). Fe also at S = 2
# (the PBE+U ground state of [HWO23]); the lower PBE energy is kept.
ANNEAL_SIGMA_EH = (0.02, 0.01, 0.005)  # Fermi smearing widths of the open-shell start (Eh)
# irrep search (``irrep_search``): SCF cycles per step before the occupations are re-checked, and
# the orbital-energy crossing (Eh) that moves an electron between irreps in an unconverged step
STEP_CYCLES = 60
SPIN = {"Zn": (0,), "Ni": (0,), "Co": (1,), "Cu": (1,), "Fe": (2, 4), "Mn": (3,)}


def build_flake(metal: str, radius_a: float = RADIUS_A) -> tuple[list[str], np.ndarray, list[str]]:
    """(elements, xyz in A centred on the metal, roles) of the capped flake."""
    from solvmd.assembly.surfaces import SurfaceSpec, build_sheet

    sheet = build_sheet(SurfaceSpec(kind="MN4", metal=metal, size_nm=(2.6, 2.6)))
    L = np.array([*sheet.box_xy_nm, 1e9]) * 10.0
    m = sheet.site_atoms[0]
    d = sheet.xyz_nm * 10.0 - sheet.xyz_nm[m] * 10.0
    d -= L * np.rint(d / L)
    nb: dict[int, list[int]] = {i: [] for i in range(sheet.n_atoms)}
    for i, j in sheet.bonds:
        nb[i].append(j)
        nb[j].append(i)
    keep = set(np.flatnonzero(np.linalg.norm(d[:, :2], axis=1) < radius_a).tolist())
    while True:
        drop = {k for k in keep if k != m and sum(n in keep for n in nb[k]) < 2}
        if not drop:
            break
        keep -= drop
    order = sorted(keep)
    el = [sheet.elements[k] for k in order]
    xyz = [d[k] for k in order]
    roles = [sheet.roles[k] for k in order]
    for k in order:
        for n in nb[k]:
            if n not in keep:
                u = (d[n] - d[k]) / np.linalg.norm(d[n] - d[k])
                el.append("H"), xyz.append(d[k] + CH_BOND_A * u), roles.append("H")
    return el, np.array(xyz), roles


def symmetry_classes(el: list[str], xyz: np.ndarray) -> list[int]:
    """Class index per atom under the flake's in-plane mirrors x -> -x, y -> -y (D2h);
    error if the flake is not symmetric."""
    keys = [(e, round(abs(x), 2), round(abs(y), 2)) for e, (x, y, _) in zip(el, xyz)]
    for sx, sy in ((-1, 1), (1, -1)):
        img = xyz * np.array([sx, sy, 1.0])
        for e, p in zip(el, img):
            dist = np.linalg.norm(xyz - p, axis=1)
            j = int(np.argmin(dist))
            if dist[j] > 1e-3 or el[j] != e:
                raise qm_esp.ChargeFitError("flake is not D2h-symmetric about the metal")
    uniq = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return [uniq[k] for k in keys]


def make_mol(el: list[str], xyz: np.ndarray, spin2: int, basis: str = BASIS, symmetry: bool = False):
    """PySCF molecule of the flake; ``symmetry``: D2h-adapted orbitals (the irrep route), with
    the coordinates kept in the flake's frame (checked: the ESP points are in that frame)."""
    from pyscf import gto

    mol = gto.M(atom=[(e, tuple(p)) for e, p in zip(el, xyz)], basis=basis, charge=0, spin=spin2,
                unit="Angstrom", verbose=4, max_memory=6000, symmetry="D2h" if symmetry else False)
    if not np.allclose(mol.atom_coords(unit="Angstrom"), xyz, atol=1e-6):
        raise qm_esp.ChargeFitError("PySCF moved the flake when adapting to symmetry")
    return mol


def run_scf(mol, wd: Path, log, xc: str = FUNCTIONAL, stabilize: bool = False,
            guess_chk: Path | None = None, stability: bool = False, route: str = "irrep",
            roks: bool = False, level_shift: float = 0.2, coarse_level: int = 0, grid_level: int = GRID_LEVEL,
            start: dict | None = None) -> tuple[np.ndarray, float, float, str, dict]:
    """Converged aufbau density matrix (alpha+beta), energy (Eh), <S^2>, stability status, and a
    dict of what the SCF did (route, configuration, cycles, wall time); resumable. Closed shells:
    one SCF from the default guess. Open shells: ``route`` "irrep" (default; ``irrep_search``:
    D2h irrep occupations held fixed, moved one electron at a time until aufbau, first on the
    coarse grid ``coarse_level``, then on the production grid) or "smearing" (the earlier
    ``anneal`` route: Fermi smearing to zero, then one unsmeared SCF; it did not converge for the
    Fe flake at 2S = 4). ``roks``: restricted open-shell KS instead of UKS (irrep route only).
    ``stabilize``: level shift ``level_shift`` also for a closed shell (plain DIIS from the minao
    guess diverged for the Ni flake). The path changes, not the state's definition: the result
    must pass ``check_aufbau`` (and, with ``stability``, UKS internal stability)."""
    from pyscf import lib

    done = wd / "scf.npz"
    if done.exists():
        z = np.load(done)
        info = json_load(wd / "scf_info.json")
        return (z["dm"], float(z["energy"]), float(z["s2"]),
                str(z["stability"]) if "stability" in z else "not run", info)
    t0 = time.time()
    info: dict = {"route": route if mol.spin else "closed shell", "method": scf_method(mol, roks)}
    if mol.spin and route == "irrep":
        mf, info = irrep_search(mol, wd, log, xc, roks, level_shift, min(coarse_level, grid_level), guess_chk, info,
                                grid_level=grid_level, start=start)
        info["start_configuration"] = start or info["search"][0]["configuration"]
    else:
        if roks:
            raise qm_esp.ChargeFitError("--roks is implemented for the irrep route only")
        mf = make_scf(mol, xc, grid_level, roks=False)
        mf.conv_tol, mf.max_cycle = 1e-8, 150
        mf.chkfile = str(wd / "scf.chk")
        mf.level_shift = level_shift if (mol.spin or stabilize) else 0.0
        dm0 = None
        if (wd / "scf.chk").exists():
            dm0 = mf.from_chk(str(wd / "scf.chk"))
            log(f"restart from {wd / 'scf.chk'}")
        elif mol.spin:
            dm0 = anneal(mf, wd, log, guess_chk)
        mf = converge(mf, dm0, wd, log)
        info["cycles"] = getattr(mf, "cycles", None)
    check_aufbau(*aufbau_channels(mf), wd)
    status = "not run"
    if stability and mol.spin:
        mf, status = stable_restart(mf, wd, log)
        check_aufbau(*aufbau_channels(mf), wd)
    e = mf.e_tot
    dm = mf.make_rdm1()
    dm = dm[0] + dm[1] if dm.ndim == 3 else dm
    s2 = float(mf.spin_square()[0]) if mol.spin else 0.0
    if mol.symmetry:
        info["configuration"] = irrep_config(mf)
    info["scf_wall_s_this_call"] = round(time.time() - t0)
    lib.chkfile.save(str(wd / "scf.chk"), "solvmd_done", {"e": e})
    from solvmd.io import write_json_atomic

    write_json_atomic(wd / "scf_info.json", info)
    qm_esp.save_npz_atomic(done, dm=dm, energy=e, s2=s2, stability=status)
    return dm, float(e), s2, status, info


def json_load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def scf_method(mol, roks: bool) -> str:
    return "RKS" if not mol.spin else ("ROKS" if roks else "UKS")


def make_scf(mol, xc: str, grid_level: int, roks: bool):
    """KS object of the flake: RKS (closed shell), UKS or ROKS; density fitting; grid level."""
    from pyscf import dft

    cls = {"RKS": dft.RKS, "UKS": dft.UKS, "ROKS": dft.ROKS}[scf_method(mol, roks)]
    mf = cls(mol).density_fit(auxbasis=AUXBASIS)
    mf.xc, mf.grids.level = xc, grid_level
    return mf


def aufbau_channels(mf) -> tuple[list, list]:
    """(orbital energies, occupations) per spin channel, as ``check_aufbau`` takes them. ROKS:
    the alpha and beta Fock matrices' diagonal in the canonical orbitals (PySCF ``mo_ea``/``mo_eb``),
    alpha occupied where occ > 0, beta where occ = 2."""
    e, o = mf.mo_energy, mf.mo_occ
    if hasattr(e, "mo_ea") and np.ndim(o) == 1 and mf.mol.spin:
        return [e.mo_ea, e.mo_eb], [(o > 0).astype(float), (o > 1).astype(float)]
    if np.ndim(e) == 1:
        return [e], [o]
    return [e[0], e[1]], [o[0], o[1]]


def _orbsym_channels(mf) -> list[np.ndarray]:
    from pyscf import symm

    mol = mf.mol
    if np.ndim(mf.mo_occ) == 2:
        return [np.asarray(symm.label_orb_symm(mol, mol.irrep_id, mol.symm_orb, c)) for c in mf.mo_coeff]
    sym = np.asarray(symm.label_orb_symm(mol, mol.irrep_id, mol.symm_orb, mf.mo_coeff))
    return [sym, sym]


def irrep_config(mf) -> dict[str, list[int]]:
    """Occupied orbitals per D2h irrep: {irrep: [n_alpha, n_beta]}."""
    mol = mf.mol
    syms = _orbsym_channels(mf)
    _, occs = aufbau_channels(mf)
    if len(occs) == 1:
        occs = [np.asarray(occs[0]) > 0, np.asarray(occs[0]) > 1]
    return {name: [int(((sym == ir) & (np.asarray(o) > 0)).sum()) for sym, o in zip(syms, occs)]
            for ir, name in zip(mol.irrep_id, mol.irrep_name)}


def aufbau_moves(mf, tol_Eh: float = 1e-4) -> list[tuple[int, str, str, float, float]]:
    """Per spin channel whose occupation is not aufbau: (channel, irrep of the highest occupied
    orbital, irrep of the lowest empty one, their energies). Empty when the state is aufbau."""
    mol = mf.mol
    name = dict(zip(mol.irrep_id, mol.irrep_name))
    es, occs = aufbau_channels(mf)
    syms = _orbsym_channels(mf)
    moves = []
    for ch, (e, o, sym) in enumerate(zip(es, occs, syms)):
        e, o = np.asarray(e), np.asarray(o) > 0
        if o.all() or not o.any():
            continue
        i = int(np.flatnonzero(o)[np.argmax(e[o])])
        a = int(np.flatnonzero(~o)[np.argmin(e[~o])])
        if e[i] > e[a] + tol_Eh:
            moves.append((ch, name[sym[i]], name[sym[a]], float(e[i]), float(e[a])))
    return moves


def irrep_search(mol, wd: Path, log, xc: str, roks: bool, level_shift: float, coarse_level: int,
                 guess_chk: Path | None, info: dict, max_steps: int = 12, grid_level: int = GRID_LEVEL,
                 start: dict | None = None):
    """Open-shell SCF by an aufbau search over D2h irrep occupations (the flake is D2h; PySCF
    ``irrep_nelec``). The near-degenerate Fe 3d / flake pi levels lie in different irreps, so
    holding the number of alpha and beta electrons per irrep fixed stops the charge sloshing
    (electrons swapping between those levels every cycle) that made plain, smeared and
    level-shifted SCFs diverge or lock an excited configuration; within each irrep the
    occupation is aufbau (PySCF's final unshifted check diagonalization). After each converged
    SCF the cross-irrep aufbau condition is checked per spin channel; where the highest occupied
    orbital lies above the lowest empty one, one electron of that spin is moved from the
    first's irrep to the second's and the SCF is rerun from the current density. It stops at an
    aufbau state (then: same on the production grid, from that density) or when a configuration
    would repeat (no integer aufbau state on this path: error). Step 0 holds nothing: a
    level-shifted SCF from the minao guess (or ``guess_chk``) picks the first configuration.
    Level shift ``level_shift`` Eh throughout (held configuration; removed in the final check).
    Resumable: ``search.json`` (every step: configuration, energy, cycles, moves) and the
    chkfile of the SCF in progress."""
    from solvmd.io import write_json_atomic

    state_path = wd / "search.json"
    state = json_load(state_path) or {"steps": []}
    dm, last_mf = None, None
    production = grid_level
    for grid_level in (coarse_level, production):
        visited = {json_dumps(s["configuration"]) for s in state["steps"] if s["grid_level"] == grid_level}
        while True:
            steps = [s for s in state["steps"] if s["grid_level"] == grid_level]
            if steps and steps[-1].get("aufbau"):
                cfg = steps[-1]["configuration"]
                if grid_level == production:
                    break
                if dm is None:  # resumed: the production grid starts from the coarse result
                    dm = np.load(wd / f"search_{len(state['steps']) - 1}.npz")["dm"]
                break
            if len(state["steps"]) >= max_steps:
                raise qm_esp.ChargeFitError(f"{wd}: no aufbau configuration in {max_steps} irrep-search steps")
            k = len(state["steps"])
            cfg = state.get("next") or (start if k == 0 else None)
            mf = make_scf(mol, xc, grid_level, roks)
            mf.conv_tol = 1e-6 if grid_level != production else 1e-8
            mf.max_cycle, mf.level_shift, mf.chkfile = STEP_CYCLES, level_shift, str(wd / f"search_{k}.chk")
            if (wd / f"search_{k}.chk").exists():
                dm0 = mf.from_chk(str(wd / f"search_{k}.chk"))
                log(f"step {k}: restart from {wd / f'search_{k}.chk'}")
            elif dm is not None:
                dm0 = dm
            elif k > 0:
                dm0 = np.load(wd / f"search_{k - 1}.npz")["dm"]
            elif guess_chk:
                dm0 = mf.from_chk(str(guess_chk))
            else:
                dm0 = mf.get_init_guess(key="minao")
            if not cfg:  # step 0: the aufbau configuration of the start density's Fock matrix, held
                cfg = start_config(mf, dm0)
                log(f"step {k}: start configuration from the Fock matrix of the start density")
            mf.irrep_nelec = {ir: tuple(n) for ir, n in cfg.items()}
            state["next"] = cfg  # a restart of this step holds the same configuration
            write_json_atomic(state_path, state)
            t = time.time()
            last_mf = None
            log(f"step {k}: grid {grid_level}, configuration {cfg}")
            mf.kernel(dm0)
            dm = mf.make_rdm1()
            qm_esp.save_npz_atomic(wd / f"search_{k}.npz", dm=dm)
            now = irrep_config(mf)
            moves = aufbau_moves(mf) if mf.converged else []
            rec = {"step": k, "grid_level": grid_level, "configuration": now, "held": bool(cfg),
                   "energy_Eh": float(mf.e_tot), "converged": bool(mf.converged), "cycles": getattr(mf, "cycles", None),
                   "wall_s": round(time.time() - t), "aufbau": bool(mf.converged and not moves),
                   "moves": [list(m) for m in moves]}
            if mol.spin:
                rec["S2"] = float(mf.spin_square()[0])
            log(f"step {k}: E = {mf.e_tot:.8f} Eh, converged {mf.converged} in {rec['cycles']} cycles, "
                f"{rec['wall_s']} s; configuration {now}; not aufbau in {moves or 'none'}")
            state["steps"].append(rec)
            last_mf = mf
            if not moves:
                state["next"] = now  # aufbau, or unconverged without a clear crossing: hold, rerun from its density
            else:
                nxt = {ir: list(n) for ir, n in now.items()}
                for ch, src, dst, _, _ in moves:
                    nxt[src][ch] -= 1
                    nxt[dst][ch] += 1
                key = json_dumps(nxt)
                if key in visited:
                    write_json_atomic(state_path, state)
                    raise qm_esp.ChargeFitError(
                        f"{wd}: irrep search returns to configuration {nxt}: no integer aufbau state on this path")
                visited.add(json_dumps(now))
                state["next"] = nxt
            write_json_atomic(state_path, state)
        if grid_level == coarse_level == production:
            break
    last = state["steps"][-1]
    if last_mf is not None and last["grid_level"] == production:
        mf = last_mf
    else:  # resumed after the search ended: the final SCF again from its density (a few cycles)
        mf = make_scf(mol, xc, production, roks)
        mf.conv_tol, mf.max_cycle, mf.level_shift = 1e-8, 80, level_shift
        mf.irrep_nelec = {ir: tuple(n) for ir, n in last["configuration"].items()}
        mf.chkfile = str(wd / "scf.chk")
        mf.kernel(np.load(wd / f"search_{last['step']}.npz")["dm"])
    if not mf.converged:
        raise qm_esp.ChargeFitError(f"SCF not converged in {wd}")
    info.update(level_shift_Eh=level_shift, coarse_grid_level=coarse_level, grid_level=production, search=state["steps"],
                cycles=last["cycles"], search_wall_s=sum(s["wall_s"] for s in state["steps"]))
    log(f"irrep search done: E = {mf.e_tot:.8f} Eh")
    return mf, info


def start_config(mf, dm0) -> dict[str, list[int]]:
    """Irrep occupations (aufbau) of one diagonalization of the Fock matrix built from ``dm0``.
    Holding them from the first cycle keeps electrons from swapping between irreps while the
    density is far from converged: the free level-shifted SCF from the minao guess diverged
    (E -2385 -> -1425 Eh in 5 cycles, Fe tetraaza[14]annulene flake, 2S = 2)."""
    h1e, s1e = mf.get_hcore(), mf.get_ovlp()
    if dm0.ndim == 2 and np.ndim(mf.mo_occ if mf.mo_occ is not None else np.zeros((2, 1))) == 2:
        dm0 = np.array([dm0 / 2, dm0 / 2])
    fock = mf.get_fock(h1e, s1e, mf.get_veff(mf.mol, dm0), dm0)
    mf.mo_energy, mf.mo_coeff = mf.eig(fock, s1e)
    mf.mo_occ = mf.get_occ(mf.mo_energy, mf.mo_coeff)
    return irrep_config(mf)


def config_label(cfg: dict) -> str:
    """Short stable folder tag of a start configuration."""
    import hashlib

    return "cfg" + hashlib.sha1(json_dumps(cfg).encode()).hexdigest()[:8]


def json_dumps(cfg: dict) -> str:
    return json.dumps({k: list(v) for k, v in sorted(cfg.items())})


def converge(mf, dm0, wd: Path, log):
    """Unsmeared SCF with aufbau occupations from ``dm0``; second-order (Newton) if DIIS stalls.
    With a level shift PySCF assigns occupations from the shifted orbital energies, so the SCF
    holds the start's configuration; its final unshifted check diagonalization re-occupies by
    aufbau, so a configuration that flips there leaves the SCF unconverged. Returns the
    converged SCF object; error if none."""
    mf.kernel(dm0)
    if not mf.converged:
        log("first-order SCF not converged; second-order (Newton) from the last density")
        dm = mf.make_rdm1()
        mf = mf.newton()
        mf.kernel(dm)
    if not mf.converged:
        raise qm_esp.ChargeFitError(f"SCF not converged in {wd}")
    log(f"unsmeared SCF: E = {mf.e_tot:.8f} Eh")
    return mf


def check_aufbau(mo_energy, mo_occ, wd: Path, tol_Eh: float = 1e-4) -> None:
    """Refuse a converged SCF whose occupation is not aufbau in each spin channel (an occupied
    orbital above an empty one of the same spin): an excited configuration, not the ground state
    of that spin. Level shifts and MOM can converge to such states (the Fe flake did: alpha HOMO
    -0.022 Eh above its LUMO -0.094 Eh), so the charges would describe the wrong state.
    ``mo_energy``/``mo_occ``: one array (closed shell), a (2, n) array or a list per channel."""
    if np.ndim(mo_energy) == 1 and not isinstance(mo_energy, list):
        channels = [(mo_energy, mo_occ)]
    else:
        channels = list(zip(mo_energy, mo_occ))
    for name, (e, o) in zip(("alpha", "beta") if len(channels) == 2 else ("closed shell",), channels):
        e, o = np.asarray(e), np.asarray(o)
        if not (o > 0).any() or not (o == 0).any():
            continue
        homo, lumo = e[o > 0].max(), e[o == 0].min()
        if homo > lumo + tol_Eh:
            raise qm_esp.ChargeFitError(
                f"{wd}: the converged {name} occupation is not aufbau (HOMO {homo:.4f} Eh above LUMO {lumo:.4f} Eh): "
                "an excited configuration; try another start (smearing, other guess) before fitting charges")


def anneal(mf, wd: Path, log, guess_chk: Path | None = None) -> np.ndarray:
    """Start density for an open-shell flake: UKS with Fermi-Dirac smearing at fixed 2S (separate
    alpha/beta Fermi levels, PySCF ``scf.addons.smearing(..., method="fermi", fix_spin=True)``),
    sigma annealed ``ANNEAL_SIGMA_EH`` (Eh) towards zero, each step from the previous density,
    on the coarse grid (level 0), to 1e-6 Eh. Smearing lets the near-degenerate Fe d levels fill
    by aufbau with fractional occupations instead of locking a configuration in (the earlier
    coarse guess + MOM kept an excited one). First step from ``coarse_start``, or from
    ``guess_chk`` (an earlier SCF of the same flake, any 2S); cached in ``anneal.npz``."""
    from pyscf import scf

    cache = wd / "anneal.npz"
    if cache.exists():
        log(f"annealed density from {cache}")
        return np.load(cache)["dm"]
    pre = mf.copy()
    pre.grids = type(mf.grids)(mf.mol)
    pre.grids.level, pre.conv_tol, pre.max_cycle, pre.chkfile = 0, 1e-6, 100, None
    pre.init_guess, pre.level_shift, pre.damp, pre.diis_start_cycle = "atom", 0.0, 0.5, 4
    dm = mf.from_chk(str(guess_chk)) if guess_chk else coarse_start(pre, log)
    sm = scf.addons.smearing(pre, sigma=ANNEAL_SIGMA_EH[0], method="fermi", fix_spin=True)
    for sigma in ANNEAL_SIGMA_EH:
        sm.sigma = sigma
        sm.kernel(dm)
        dm = sm.make_rdm1()
        frac = [int(((o > 0.01) & (o < 0.99)).sum()) for o in sm.mo_occ]
        log(f"smearing sigma {sigma} Eh: E = {sm.e_tot:.6f} Eh, converged {sm.converged}, "
            f"fractional orbitals alpha/beta {frac}")
    qm_esp.save_npz_atomic(cache, dm=dm)
    return dm


def coarse_start(pre, log) -> np.ndarray:
    """Density to start the smearing from: the unsmeared UKS on the coarse grid from the atomic
    densities, level shift 0.3 Eh and damping 0.5 (DIIS from cycle 4), to 1e-5 Eh. Smearing
    straight from the atomic guess diverged for the Fe flake (E up by 1600 Eh in 4 cycles at
    sigma 0.02 Eh); the level shift holds the path, its occupation is then freed by the smearing."""
    shifted = pre.copy()
    shifted.level_shift, shifted.conv_tol, shifted.max_cycle, shifted.conv_check = 0.3, 1e-5, 80, False
    shifted.kernel()
    log(f"coarse level-shifted start: E = {shifted.e_tot:.6f} Eh, converged {shifted.converged}")
    return shifted.make_rdm1()


def stable_restart(mf, wd: Path, log, rounds: int = 2):
    """UKS internal stability analysis (``mf.stability()``); if a lower state exists, restart the
    unsmeared SCF from the rotated orbitals (at most ``rounds`` times). Returns (SCF, "stable")."""
    for _ in range(rounds):
        mo, _, stable, _ = mf.stability(internal=True, external=False, return_status=True)
        log(f"internal stability: {'stable' if stable else 'unstable'} at E = {mf.e_tot:.8f} Eh")
        if stable:
            return mf, "stable"
        mf = converge(mf, mf.make_rdm1(mo, mf.mo_occ), wd, log)
    raise qm_esp.ChargeFitError(f"{wd}: UKS still internally unstable after {rounds} restarts")


def fit(el, xyz, roles, classes, points, esp, wd: Path) -> tuple[np.ndarray, float | None]:
    """One-stage RESP with D2h equivalences and a neutral M + N4 + alpha-C group."""
    z = [{"H": 1, "C": 6, "N": 7}.get(e) or _z(e) for e in el]
    first: dict[int, int] = {}
    ivary = []
    for i, c in enumerate(classes):
        ivary.append(first[c] + 1 if c in first else 0)
        first.setdefault(c, i)
    group = [i + 1 for i, r in enumerate(roles) if r in ("metal", "N_site", "C_alpha")]
    if len(group) != 13:
        raise qm_esp.ChargeFitError(f"defect group has {len(group)} atoms, expected 13 (M, 4 N, 8 alpha C)")
    espot = wd / "flake.esp"
    qm_esp.write_espot(espot, xyz, points, esp)
    inp = qm_esp.resp_input("M-N4 flake RESP", [qm_esp.RespMolecule(z, ivary)], 0, 0.0005, False,
                            groups=[(0.0, group)])
    qout, out = qm_esp.run_resp(wd, inp, espot, "resp1")
    q = qm_esp.finalize(qm_esp.read_qout(qout, len(el)), classes, 0.0)
    core = sum(q[i - 1] for i in group)
    if abs(core) > 1e-4:
        raise qm_esp.ChargeFitError(f"defect group constraint not applied: M + N4 + 8 C_alpha = {core:+.5f}")
    return q, qm_esp.resp_rrms(out)


def _z(symbol: str) -> int:
    from pyscf.data.elements import charge

    return int(charge(symbol))


def run(metal: str, spin2: int, workdir: Path, xc: str = FUNCTIONAL, basis: str = BASIS,
        radius_a: float = RADIUS_A, guess_chk: Path | None = None, stability: bool = False,
        route: str = "irrep", roks: bool = False, level_shift: float = 0.2, grid_level: int = GRID_LEVEL,
        start: dict | None = None) -> dict:
    """SCF + ESP + RESP for one metal and spin (2S = ``spin2``); returns the record, also kept as
    ``<wd>/record.json``. ``xc``/``basis``/``radius_a`` other than the defaults are for tests only;
    ``guess_chk``/``stability``: see ``anneal``/``stable_restart``; ``route``/``roks``/``level_shift``:
    see ``run_scf`` (each open-shell route and method has its own working folder)."""
    tag = "" if not spin2 else f"_{route}" + ("_roks" if roks else "") + (f"_ls{level_shift:g}" if level_shift != 0.2 else "")
    tag += f"_grid{grid_level}" if grid_level != GRID_LEVEL else ""
    tag += f"_{config_label(start)}" if start else ""
    wd = workdir / f"{metal}_S{spin2}_{xc}_{basis}_{radius_a:g}{tag}"
    wd.mkdir(parents=True, exist_ok=True)
    logf = open(wd / "progress.log", "a")

    def log(msg: str) -> None:
        logf.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
        logf.flush()

    el, xyz, roles = build_flake(metal, radius_a)
    classes = symmetry_classes(el, xyz)
    mol = make_mol(el, xyz, spin2, basis, symmetry=bool(spin2) and route == "irrep")
    mol.output = str(wd / "pyscf.log")
    mol.build()
    log(f"{metal} 2S={spin2}: {len(el)} atoms, {mol.nao} basis functions, {mol.nelectron} electrons")
    t0 = time.time()
    dm, energy, s2, stable, info = run_scf(mol, wd, log, xc, metal != "Zn", guess_chk, stability, route, roks,
                                           level_shift, grid_level=grid_level, start=start)
    log(f"SCF wall time this call: {time.time() - t0:.0f} s")
    log(f"SCF done E = {energy:.8f} Eh <S^2> = {s2:.4f}")
    if (wd / "esp.npz").exists():
        z = np.load(wd / "esp.npz")
        points, esp = z["points"], z["esp"]
    else:
        points = qm_esp.mk_points(el, xyz)
        esp = qm_esp.esp_at(mol, dm, points)
        qm_esp.save_npz_atomic(wd / "esp.npz", points=points, esp=esp)
    log(f"ESP on {len(points)} MK points")
    q, rrms = fit(el, xyz, roles, classes, points, esp, wd)
    # MD sheet: one q(M), one q(N); the 8 alpha C (two D2h classes of 4) get their mean,
    # -(q(M) + 4 q(N)) / 8, which the group constraint makes exact
    pick = {r: float(np.mean([x for x, rr in zip(q, roles) if rr == r])) for r in ("metal", "N_site", "C_alpha")}
    alpha_classes = sorted({round(float(x), 6) for x, rr in zip(q, roles) if rr == "C_alpha"})
    log(f"fit: q(M) {pick['metal']:+.4f} q(N) {pick['N_site']:+.4f} q(Ca) {pick['C_alpha']:+.4f} RRMS {rrms}")
    rec = {"metal": metal, "two_S": spin2, "functional": xc, "basis": basis, "auxbasis": AUXBASIS,
           "method": info.get("method", "UKS" if spin2 else "RKS"),
           "scf_start": ("Fermi smearing " + "->".join(map(str, ANNEAL_SIGMA_EH)) + " Eh, then unsmeared aufbau"
                         if route == "smearing" else "D2h irrep-occupation aufbau search (irrep_search)")
           if spin2 else "default guess", "aufbau": True, "internal_stability": stable,
           "scf": info,
           "grid_level": grid_level, "energy_Eh": energy, "S2": s2, "n_esp_points": int(len(points)), "resp_rrms": rrms,
            "q_metal": pick["metal"], "q_N_site": pick["N_site"], "q_C_alpha": pick["C_alpha"],
            "q_C_alpha_classes": alpha_classes,
            "radius_A": radius_a, "elements": el, "roles": roles, "xyz_A": np.round(xyz, 5).tolist(),
            "charges": np.round(q, 6).tolist(), "pyscf": __import__("pyscf").__version__}
    from solvmd.io import write_json_atomic

    write_json_atomic(wd / "record.json", rec)
    return rec


def cmd_run(metal: str, workdir: Path, spins: list[int] | None = None, guess_chk: Path | None = None,
            stability: bool = False, route: str = "irrep", roks: bool = False, level_shift: float = 0.2,
            radius_a: float = RADIUS_A, grid_level: int = GRID_LEVEL, start: dict | None = None) -> None:
    """Run the spin states (2S values; default all of SPIN[metal]); once every state of
    SPIN[metal] is done (finished ones are cached), write the lowest-energy one, all listed."""
    from solvmd.io import write_json_atomic

    recs = [run(metal, s, workdir, radius_a=radius_a, guess_chk=guess_chk, stability=stability, route=route,
                roks=roks, level_shift=level_shift, grid_level=grid_level, start=start) for s in (spins or SPIN[metal])]
    for r in recs:
        print(f"{metal} 2S = {r['two_S']}, radius {radius_a:g} A, grid {grid_level}: E {r['energy_Eh']:.8f} Eh, "
              f"q(M) {r['q_metal']:+.4f}, q(N) {r['q_N_site']:+.4f}, q(C alpha) {r['q_C_alpha']:+.4f}")
    if radius_a != RADIUS_A:
        print(f"radius {radius_a:g} A is not the production flake ({RADIUS_A:g} A): records only, "
              f"{RESULTS / f'mn4_{metal}.json'} not written")
        return
    if {r["two_S"] for r in recs} != set(SPIN[metal]):
        print(f"ran 2S = {[r['two_S'] for r in recs]}; {RESULTS / f'mn4_{metal}.json'} is written only by a run "
              f"over all of {SPIN[metal]} (cached states are not recomputed)")
        return
    best = min(recs, key=lambda r: r["energy_Eh"])
    best = dict(best, spin_states_run=[{k: r[k] for k in ("two_S", "energy_Eh", "S2", "internal_stability",
                                                          "q_metal", "q_N_site", "q_C_alpha")} for r in recs])
    write_json_atomic(RESULTS / f"mn4_{metal}.json", best)
    print(f"wrote {RESULTS / f'mn4_{metal}.json'}: q(M) {best['q_metal']:+.4f}, q(N) {best['q_N_site']:+.4f}")


def cmd_update(path: Path = ROOT / "forcefields" / "surfaces.yaml") -> list[str]:
    """Write q(M), q(N) of every ``forcefields/qm/mn4_<M>.json`` into ``charges.MN4.<M>`` of
    surfaces.yaml (that one line per metal, comments kept; atomic). Returns the metals updated."""
    import json

    from solvmd.io import write_text_atomic

    text = path.read_text()
    done = []
    for rec_path in sorted(RESULTS.glob("mn4_*.json")):
        rec = json.loads(rec_path.read_text())
        m = rec["metal"]
        core = rec["q_metal"] + 4 * rec["q_N_site"] + 8 * rec["q_C_alpha"]
        if abs(core) > 1e-6:
            raise qm_esp.ChargeFitError(f"{rec_path}: M + 4 N + 8 C_alpha = {core:+.2e}, not neutral")
        src = (f"[ESP26] {rec['functional'].upper()}/{rec['basis']} ESP (RESP fit) on the capped flake, "
               f"2S = {rec['two_S']}; forcefields/qm/{rec_path.name}")
        line = f'    {m}: {{metal: {rec["q_metal"]:.4f}, N_site: {rec["q_N_site"]:.4f}, source: "{src}"}}'
        text, n = re.subn(rf"^    {m}: \{{metal: .*$", line, text, count=1, flags=re.M)
        if n != 1:
            raise qm_esp.ChargeFitError(f"{path}: no charges.MN4.{m} line to update")
        done.append(m)
    write_text_atomic(path, text)
    return done


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("metal", choices=sorted(SPIN))
    r.add_argument("--workdir", type=Path, default=ROOT / "build" / "qm")
    r.add_argument("--spins", type=int, nargs="+", help="2S values to run (default: all in SPIN)")
    r.add_argument("--guess-chk", type=Path, help="PySCF chkfile of an earlier SCF of the same flake to start from")
    r.add_argument("--stability", action="store_true", help="UKS internal stability check + restart")
    r.add_argument("--route", choices=("irrep", "smearing"), default="irrep",
                   help="open-shell SCF route: D2h irrep-occupation aufbau search (default) or Fermi-smearing anneal")
    r.add_argument("--roks", action="store_true", help="restricted open-shell KS (irrep route) instead of UKS")
    r.add_argument("--level-shift", type=float, default=0.2, help="SCF level shift (Eh), removed in the final check")
    r.add_argument("--config", type=json.loads,
                   help='start configuration held by the irrep search, occupied orbitals per D2h irrep as JSON '
                        '{"Ag": [n_alpha, n_beta], ...} (default: aufbau from the Fock matrix of the minao guess)')
    r.add_argument("--grid-level", type=int, default=GRID_LEVEL,
                   help=f"PySCF DFT grid level of the final SCF (default {GRID_LEVEL})")
    r.add_argument("--radius", type=float, default=RADIUS_A,
                   help=f"flake radius (A; default {RADIUS_A:g}: C26H14N4M; 4.0: the M-tetraaza[14]annulene C10H10N4M)")
    sub.add_parser("update")
    a = ap.parse_args()
    if a.cmd == "run":
        cmd_run(a.metal, a.workdir, a.spins, a.guess_chk, a.stability, a.route, a.roks, a.level_shift, a.radius, a.grid_level, a.config)
    else:
        print(f"surfaces.yaml updated for {cmd_update()}")
