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


def make_mol(el: list[str], xyz: np.ndarray, spin2: int, basis: str = BASIS):
    from pyscf import gto

    return gto.M(atom=[(e, tuple(p)) for e, p in zip(el, xyz)], basis=basis, charge=0, spin=spin2,
                 unit="Angstrom", verbose=4, max_memory=6000)


def run_scf(mol, wd: Path, log, xc: str = FUNCTIONAL, stabilize: bool = False,
            guess_chk: Path | None = None, stability: bool = False) -> tuple[np.ndarray, float, float, str]:
    """Converged aufbau density matrix (alpha+beta), energy (Eh), <S^2>, stability status;
    resumable via chkfile. Open shells start from ``anneal`` (Fermi smearing to zero), then an
    unsmeared aufbau SCF; ``stabilize``: level shift 0.2 Eh (open d shells; plain DIIS from the
    minao guess diverged for the Ni flake). The path changes, not the state's definition:
    the result must pass ``check_aufbau`` (and, with ``stability``, UKS internal stability)."""
    from pyscf import dft, lib

    done = wd / "scf.npz"
    if done.exists():
        z = np.load(done)
        return z["dm"], float(z["energy"]), float(z["s2"]), str(z["stability"]) if "stability" in z else "not run"
    mf = (dft.UKS(mol) if mol.spin else dft.RKS(mol)).density_fit(auxbasis=AUXBASIS)
    mf.xc, mf.grids.level, mf.conv_tol, mf.max_cycle = xc, GRID_LEVEL, 1e-8, 150
    mf.chkfile = str(wd / "scf.chk")
    mf.level_shift = 0.2 if (mol.spin or stabilize) else 0.0
    dm0 = None
    if (wd / "scf.chk").exists():
        dm0 = mf.from_chk(str(wd / "scf.chk"))
        log(f"restart from {wd / 'scf.chk'}")
    elif mol.spin:
        dm0 = anneal(mf, wd, log, guess_chk)
    mf = converge(mf, dm0, wd, log)
    check_aufbau(mf.mo_energy, mf.mo_occ, wd)
    status = "not run"
    if stability and mol.spin:
        mf, status = stable_restart(mf, wd, log)
        check_aufbau(mf.mo_energy, mf.mo_occ, wd)
    e = mf.e_tot
    dm = mf.make_rdm1()
    dm = dm[0] + dm[1] if dm.ndim == 3 else dm
    s2 = float(mf.spin_square()[0]) if mol.spin else 0.0
    lib.chkfile.save(str(wd / "scf.chk"), "solvmd_done", {"e": e})
    qm_esp.save_npz_atomic(done, dm=dm, energy=e, s2=s2, stability=status)
    return dm, float(e), s2, status


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
    -0.022 Eh above its LUMO -0.094 Eh), so the charges would describe the wrong state."""
    channels = [(mo_energy, mo_occ)] if np.ndim(mo_energy) == 1 else list(zip(mo_energy, mo_occ))
    for name, (e, o) in zip(("alpha", "beta") if len(channels) == 2 else ("closed shell",), channels):
        e, o = np.asarray(e), np.asarray(o)
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
        radius_a: float = RADIUS_A, guess_chk: Path | None = None, stability: bool = False) -> dict:
    """SCF + ESP + RESP for one metal and spin (2S = ``spin2``); returns the record, also kept as
    ``<wd>/record.json``. ``xc``/``basis``/``radius_a`` other than the defaults are for tests only;
    ``guess_chk``/``stability``: see ``anneal``/``stable_restart``."""
    wd = workdir / f"{metal}_S{spin2}_{xc}_{basis}_{radius_a:g}"
    wd.mkdir(parents=True, exist_ok=True)
    logf = open(wd / "progress.log", "a")

    def log(msg: str) -> None:
        logf.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
        logf.flush()

    el, xyz, roles = build_flake(metal, radius_a)
    classes = symmetry_classes(el, xyz)
    mol = make_mol(el, xyz, spin2, basis)
    mol.output = str(wd / "pyscf.log")
    mol.build()
    log(f"{metal} 2S={spin2}: {len(el)} atoms, {mol.nao} basis functions, {mol.nelectron} electrons")
    t0 = time.time()
    dm, energy, s2, stable = run_scf(mol, wd, log, xc, metal != "Zn", guess_chk, stability)
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
           "scf_start": "Fermi smearing " + "->".join(map(str, ANNEAL_SIGMA_EH)) + " Eh, then unsmeared aufbau"
           if spin2 else "default guess", "aufbau": True, "internal_stability": stable,
           "energy_Eh": energy, "S2": s2, "n_esp_points": int(len(points)), "resp_rrms": rrms,
            "q_metal": pick["metal"], "q_N_site": pick["N_site"], "q_C_alpha": pick["C_alpha"],
            "q_C_alpha_classes": alpha_classes,
            "radius_A": radius_a, "elements": el, "roles": roles, "xyz_A": np.round(xyz, 5).tolist(),
            "charges": np.round(q, 6).tolist(), "pyscf": __import__("pyscf").__version__}
    from solvmd.io import write_json_atomic

    write_json_atomic(wd / "record.json", rec)
    return rec


def cmd_run(metal: str, workdir: Path, spins: list[int] | None = None, guess_chk: Path | None = None,
            stability: bool = False) -> None:
    """Run the spin states (2S values; default all of SPIN[metal]); once every state of
    SPIN[metal] is done (finished ones are cached), write the lowest-energy one, all listed."""
    from solvmd.io import write_json_atomic

    recs = [run(metal, s, workdir, guess_chk=guess_chk, stability=stability) for s in (spins or SPIN[metal])]
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
    sub.add_parser("update")
    a = ap.parse_args()
    if a.cmd == "run":
        cmd_run(a.metal, a.workdir, a.spins, a.guess_chk, a.stability)
    else:
        print(f"surfaces.yaml updated for {cmd_update()}")
