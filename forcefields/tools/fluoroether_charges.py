#!/usr/bin/env python
"""RESP charges for the fluorinated ethers TTE and BTFE (HF/6-31G*, multi-conformation).

Usage (repository root; needs ``pip install 'solvmd[charges]'``)::

    python forcefields/tools/fluoroether_charges.py TTE BTFE [--workdir build/qm]
    python forcefields/tools/make_xml.py      # the XMLs read forcefields/qm/resp_<NAME>.json

Route (AMBER RESP convention: Bayly, Cieplak, Cornell, Kollman, JPC 1993, 97, 10269,
doi:10.1021/j100142a004; multi-conformation fit: Cieplak et al., JCC 1995, 16, 1357,
doi:10.1002/jcc.540161106):

1. Conformers: RDKit ETKDGv3 (``N_EMBED`` embeddings, seed 20260), each MMFF94-minimized;
   sorted by MMFF94 energy; heavy-atom RMSD pruning at 0.5 A (a conformer's mirror image counts
   as the same conformer: its ESP fit is identical); the ``N_CONF`` lowest kept.
   Geometries are the MMFF94 minima (no QM re-optimization; see SOURCES.md).
2. PySCF RHF/6-31G* (Cartesian d, as Gaussian's 6-31G*), ESP on Merz-Kollman points
   (4 shells 1.4-2.0 x r_vdW, 1 point/A^2).
3. AmberTools: ``antechamber`` (topology, .ac), ``respgen`` (stage-1 and stage-2 inputs with
   its topological equivalences, one block per conformer, all conformers equal), ``resp``
   (stage 1 qwt 0.0005, stage 2 qwt 0.001 for CH2/CH groups).
4. Checks, then the JSON is written atomically: symmetry-equal atoms (RDKit canonical
   ranks) equal, total charge 0 within 1e-6 e; else ``ChargeFitError`` and nothing written.

Cross-check (recorded, not used): AM1-BCC (``antechamber -c bcc``, sqm) on the lowest conformer.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qm_esp  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "forcefields" / "qm"
N_EMBED, N_CONF, SEED, RMSD_A = 60, 4, 20260, 0.5
METHOD, BASIS = "RHF", "6-31G*"


def conformers(mol: Chem.Mol, n_conf: int = N_CONF) -> list[tuple[np.ndarray, float]]:
    """Lowest distinct MMFF94 conformers: [(xyz in A, E_MMFF kcal/mol)]."""
    m = Chem.Mol(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = SEED
    ids = list(AllChem.EmbedMultipleConfs(m, N_EMBED, params))
    res = AllChem.MMFFOptimizeMoleculeConfs(m, maxIters=5000)
    order = sorted((e for e in zip(ids, res) if e[1][0] == 0), key=lambda t: t[1][1])
    heavy = Chem.RemoveHs(m)
    mirror = Chem.Mol(heavy)  # mirror images give the same ESP fit: count them once
    for c in mirror.GetConformers():
        for i in range(mirror.GetNumAtoms()):
            p = c.GetAtomPosition(i)
            c.SetAtomPosition(i, (-p.x, p.y, p.z))
    kept: list[int] = []
    out = []
    for cid, (_, e) in order:
        if all(min(rdMolAlign.GetBestRMS(heavy, heavy, k, cid), rdMolAlign.GetBestRMS(mirror, heavy, k, cid)) > RMSD_A
               for k in kept):
            kept.append(cid)
            out.append((m.GetConformer(cid).GetPositions(), float(e)))
        if len(out) == n_conf:
            break
    if not out:
        raise qm_esp.ChargeFitError("no MMFF94-converged conformer")
    return out


def hf_esp(elements: list[str], xyz: np.ndarray, log, charge: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """(MK points A, ESP hartree/e, E_HF) for one conformer at RHF/6-31G*."""
    from pyscf import gto, scf

    mol = gto.M(atom=[(e, tuple(p)) for e, p in zip(elements, xyz)], basis=BASIS, cart=True,
                unit="Angstrom", verbose=0, max_memory=3000, charge=charge)
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-9
    e = mf.kernel()
    if not mf.converged:
        raise qm_esp.ChargeFitError("RHF/6-31G* not converged")
    pts = qm_esp.mk_points(elements, xyz)
    esp = qm_esp.esp_at(mol, mf.make_rdm1(), pts)
    log(f"  RHF E = {e:.8f} Eh, {len(pts)} ESP points")
    return pts, esp, float(e)


def _respgen(ac: Path, n: int, stage: int, wd: Path) -> str:
    out = wd / f"stage{stage}.respgen"
    subprocess.run(["respgen", "-i", ac.name, "-o", out.name, "-f", f"resp{stage}", "-n", str(n)],
                   cwd=wd, check=True, capture_output=True)
    return out.read_text()


def am1bcc(molfile: Path, wd: Path, charge: int = 0) -> np.ndarray | None:
    """AM1-BCC charges (antechamber/sqm) of the molecule in ``molfile``; None if it fails."""
    res = subprocess.run(["antechamber", "-i", molfile.name, "-fi", "mdl", "-o", "bcc.ac", "-fo", "ac",
                          "-c", "bcc", "-nc", str(charge), "-pf", "y"], cwd=wd, capture_output=True, text=True)
    if res.returncode != 0 or not (wd / "bcc.ac").exists():
        return None
    q = [float(line.split()[-2]) for line in (wd / "bcc.ac").read_text().splitlines() if line.startswith("ATOM")]
    return np.array(q)


def fit_species(name: str, workdir: Path) -> dict:
    """Run the whole route for one registry species; return the record."""
    from solvmd import species

    sp = species.get(name)
    rec = fit_molecule(name, sp.mol, sp.charge, workdir)
    rec.pop("charges_list")
    return {"species": name, "smiles": sp.smiles, **rec}


def fit_molecule(name: str, mol: Chem.Mol, charge: int, workdir: Path) -> dict:
    """The whole route for one molecule (explicit hydrogens, registry atom order); the record
    (``charges`` by atom name, ``charges_list`` in atom order). Also used by ``solvmd species add``."""
    from solvmd.species import atom_names

    qm_esp.require_tools("antechamber", "respgen", "resp")
    wd = workdir / f"resp_{name}"
    wd.mkdir(parents=True, exist_ok=True)
    logf = open(wd / "progress.log", "a")

    def log(msg: str) -> None:
        logf.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
        logf.flush()

    el = [a.GetSymbol() for a in mol.GetAtoms()]
    confs = conformers(mol)
    log(f"{name}: {len(confs)} conformers, MMFF94 E = {[round(e, 2) for _, e in confs]}")
    esp_lines, energies = [], []
    for k, (xyz, _) in enumerate(confs):
        cache = wd / f"conf_{hashlib.sha1(np.round(xyz, 4).tobytes()).hexdigest()[:12]}.npz"
        if cache.exists():
            z = np.load(cache)
            pts, esp, e = z["points"], z["esp"], float(z["energy"])
        else:
            pts, esp, e = hf_esp(el, xyz, log, charge)
            qm_esp.save_npz_atomic(cache, points=pts, esp=esp, energy=e, xyz=xyz)
        energies.append(e)
        qm_esp.write_espot(wd / f"conf{k}.esp", xyz, pts, esp)
        esp_lines.append((wd / f"conf{k}.esp").read_text())
    (wd / "all.esp").write_text("".join(esp_lines))
    m0 = Chem.Mol(mol)
    m0.RemoveAllConformers()
    conf = Chem.Conformer(mol.GetNumAtoms())
    for i, p in enumerate(confs[0][0]):
        conf.SetAtomPosition(i, p.tolist())
    m0.AddConformer(conf)
    Chem.MolToMolFile(m0, str(wd / "mol.mol"))
    subprocess.run(["antechamber", "-i", "mol.mol", "-fi", "mdl", "-o", "mol.ac", "-fo", "ac", "-nc", str(charge), "-pf", "y"],
                   cwd=wd, check=True, capture_output=True)
    n = len(confs)
    q1, out1 = qm_esp.run_resp(wd, _respgen(wd / "mol.ac", n, 1, wd), wd / "all.esp", "resp1")
    q2, out2 = qm_esp.run_resp(wd, _respgen(wd / "mol.ac", n, 2, wd), wd / "all.esp", "resp2", qin=q1)
    raw_all = qm_esp.read_qout(q2, n * len(el)).reshape(n, len(el))
    if np.ptp(raw_all, axis=0).max() > 1e-5:
        raise qm_esp.ChargeFitError(f"{name}: conformer copies got different charges (multi-conformer equivalence)")
    classes = list(Chem.CanonicalRankAtoms(mol, breakTies=False))
    q = qm_esp.finalize(raw_all[0], classes, float(charge))
    bcc = am1bcc(wd / "mol.mol", wd, charge)
    names = atom_names(mol)
    if "O" in el:
        o = el.index("O")
        log(f"{name}: RESP q(O) = {q[o]:+.4f}; AM1-BCC q(O) = {'n/a' if bcc is None else round(bcc[o], 4)}")
    return {"method": f"{METHOD}/{BASIS} ESP (PySCF), MK points, "
            "two-stage multi-conformation RESP (AmberTools resp/respgen)", "n_conformers": n,
            "conformer_mmff94_kcal_mol": [e for _, e in confs], "conformer_hf_Eh": energies,
            "resp_rrms_stage2": qm_esp.resp_rrms(out2), "atom_names": names,
            "charges": {a: float(x) for a, x in zip(names, q)}, "charges_list": [float(x) for x in q],
            "am1bcc_check": None if bcc is None else {a: round(float(x), 4) for a, x in zip(names, bcc)},
            "pyscf": __import__("pyscf").__version__}


def main(argv=None) -> int:
    from solvmd.io import write_json_atomic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("species", nargs="+", choices=["TTE", "BTFE"])
    ap.add_argument("--workdir", type=Path, default=ROOT / "build" / "qm")
    args = ap.parse_args(argv)
    for name in args.species:
        rec = fit_species(name, args.workdir)
        write_json_atomic(RESULTS / f"resp_{name}.json", rec)
        print(f"wrote {RESULTS / f'resp_{name}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
