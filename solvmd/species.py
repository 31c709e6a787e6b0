"""Species registry: name -> SMILES, formal charge, residue name, role, force-field file.

The registry lives in ``forcefields/species.yaml``; each species also needs a residue
template in the OpenMM XML file it names. 3D coordinates come from RDKit (ETKDG
embedding, then MMFF94 relaxation, UFF where MMFF has no parameters).

Atom naming contract (shared with the XML templates): atoms are numbered in RDKit
order of ``Chem.AddHs(Chem.MolFromSmiles(smiles))`` and named element symbol +
running index per element, e.g. DME ``COCCOC`` -> C1 O1 C2 C3 O2 C4 H1 ... H10.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import yaml
from rdkit import Chem
from rdkit.Chem import AllChem

from solvmd.errors import SolvmdError

FORCEFIELD_DIR = Path(__file__).resolve().parent.parent / "forcefields"
if not FORCEFIELD_DIR.is_dir():  # installed non-editable: data shipped inside the package
    FORCEFIELD_DIR = Path(__file__).resolve().parent / "forcefields"

ROLES = ("cation", "anion", "solvent")

#: colon-separated list of user species folders (docs/species.md); searched after forcefields/
SPECIES_PATH_ENV = "SOLVMD_SPECIES_PATH"
DEFAULT_USER_SPECIES_DIR = Path("~/.local/share/solvmd/species")


def species_path() -> list[Path]:
    """The user species folders, in search order: the entries of ``$SOLVMD_SPECIES_PATH``
    (``os.pathsep``-separated), else ``~/.local/share/solvmd/species``. Each holds one
    sub-folder per species (``NAME/species.yaml``, its XML, charges and SOURCES.md), as
    ``solvmd species add`` writes it. The shipped ``forcefields/`` is never part of it."""
    raw = os.environ.get(SPECIES_PATH_ENV)
    if raw:
        return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    return [DEFAULT_USER_SPECIES_DIR.expanduser()]


@dataclass(frozen=True)
class Species:
    """One molecule or ion type.

    Attributes:
        name: registry key, e.g. ``"DME"``.
        smiles: SMILES string.
        charge: formal charge in units of e.
        residue: residue name (<= 3 characters) used in topology and XML template.
        role: ``cation``, ``anion`` or ``solvent``.
        xml: force-field XML file name inside ``forcefields/``.
        density_g_cm3: pure-liquid density at 298 K (solvents), g/cm^3.
        molar_volume_cm3_mol: partial molar volume estimate (ions), cm^3/mol.
        donors: element symbols that can coordinate a cation.
    """

    name: str
    smiles: str
    charge: int
    residue: str
    role: str
    xml: str
    density_g_cm3: float | None = None
    molar_volume_cm3_mol: float | None = None
    donors: tuple[str, ...] = field(default_factory=tuple)
    folder: Path | None = None  # user species folder holding ``xml``; None = the shipped forcefields/

    @property
    def xml_path(self) -> Path:
        return (self.folder or FORCEFIELD_DIR) / self.xml

    @property
    def user(self) -> bool:
        """True for a species added with ``solvmd species add`` (found on :func:`species_path`)."""
        return self.folder is not None

    @property
    def mol(self) -> Chem.Mol:
        """RDKit molecule with explicit hydrogens (no conformer)."""
        return _mol_with_hs(self.smiles)

    @property
    def molar_mass_g_mol(self) -> float:
        return float(sum(a.GetMass() for a in self.mol.GetAtoms()))

    @property
    def n_atoms(self) -> int:
        return self.mol.GetNumAtoms()

    @property
    def atom_names(self) -> list[str]:
        return atom_names(self.mol)

    @property
    def molar_volume(self) -> float:
        """Molar volume estimate in cm^3/mol (M/rho for liquids)."""
        if self.molar_volume_cm3_mol is not None:
            return self.molar_volume_cm3_mol
        if self.density_g_cm3 is None:
            raise SolvmdError(f"species {self.name}: needs density_g_cm3 or molar_volume_cm3_mol in species.yaml")
        return self.molar_mass_g_mol / self.density_g_cm3

    def coordinates(self, seed: int = 42) -> np.ndarray:
        """One relaxed 3D conformer, in angstrom, shape (n_atoms, 3).

        RDKit ETKDG + MMFF94 (UFF fallback), then a vacuum minimization with the
        species' own force field when its XML exists: RDKit has no parameters for some
        ions (e.g. hexacoordinate PF6-), and packing the force-field minimum avoids
        strained starting geometries.
        """
        return _refined_conformer(self.name, seed).copy()


def atom_names(mol: Chem.Mol) -> list[str]:
    """Element + running index per element, in RDKit atom order."""
    counts: dict[str, int] = {}
    names = []
    for atom in mol.GetAtoms():
        sym = atom.GetSymbol()
        counts[sym] = counts.get(sym, 0) + 1
        names.append(f"{sym}{counts[sym]}")
    return names


@lru_cache(maxsize=None)
def _mol_with_hs(smiles: str) -> Chem.Mol:
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise SolvmdError(f"RDKit cannot parse SMILES {smiles!r}")
    return Chem.AddHs(mol)


@lru_cache(maxsize=None)
def _conformer(smiles: str, seed: int) -> np.ndarray:
    mol = Chem.Mol(_mol_with_hs(smiles))
    if mol.GetNumAtoms() == 1:
        return np.zeros((1, 3))
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise SolvmdError(f"RDKit ETKDG failed to embed {smiles!r}")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    elif AllChem.UFFHasAllMoleculeParams(mol):
        AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
    return mol.GetConformer().GetPositions()


@lru_cache(maxsize=None)
def _refined_conformer(name: str, seed: int) -> np.ndarray:
    sp = get(name)
    xyz = _conformer(sp.smiles, seed)
    if sp.n_atoms == 1 or not sp.xml_path.exists():
        return xyz
    import openmm
    from openmm import app, unit

    topology, _ = molecule_topology_from_xyz(sp, xyz)
    try:
        system = app.ForceField(str(sp.xml_path)).createSystem(topology, nonbondedMethod=app.NoCutoff)
    except ValueError as err:
        raise SolvmdError(f"species {name}: {template_mismatch(str(err))}") from None
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(xyz / 10.0 * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(context, 1e-3, 5000)
    return context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)


TEMPLATE_FIX = ("its force-field XML template no longer matches the SMILES in forcefields/species.yaml: "
                "regenerate the XMLs with `python forcefields/tools/make_xml.py` (and re-run the charge fit "
                "in forcefields/tools/ for a species with QM charges)")


def template_mismatch(openmm_message: str) -> str:
    """OpenMM's template error as one line; a missing template gets :data:`TEMPLATE_FIX` appended."""
    msg = " ".join(openmm_message.split())
    return f"{msg} -> {TEMPLATE_FIX}" if "No template found" in msg else msg


def _load_entries(path: Path, folder: Path | None) -> dict[str, Species]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SolvmdError(f"species registry {path} cannot be read: {err}") from None
    if not isinstance(raw, dict):
        raise SolvmdError(f"species registry {path}: expected a mapping NAME: {{smiles: ..., ...}}")
    out = {}
    for name, entry in raw.items():
        entry = dict(entry)
        entry["donors"] = tuple(entry.get("donors", ()))
        try:
            sp = Species(name=name, folder=folder, **entry)
        except TypeError as err:
            raise SolvmdError(f"{path}: species {name}: {err}") from None
        if sp.role not in ROLES:
            raise SolvmdError(f"{path}: species {name}: role {sp.role!r} not one of {ROLES}")
        out[name] = sp
    return out


def shipped_registry() -> dict[str, Species]:
    """The species of ``forcefields/species.yaml`` only."""
    return _load_entries(FORCEFIELD_DIR / "species.yaml", None)


def user_species_folders() -> list[Path]:
    """Every ``NAME/`` folder with a ``species.yaml`` on :func:`species_path`, in search order
    (hidden folders, e.g. a ``species add`` still being written, are skipped)."""
    out = []
    for root in species_path():
        if root.is_dir():
            out += [d for d in sorted(root.iterdir())
                    if d.is_dir() and not d.name.startswith(".") and (d / "species.yaml").is_file()]
    return out


@lru_cache(maxsize=1)
def registry() -> dict[str, Species]:
    """All species keyed by name: ``forcefields/species.yaml``, then the user species folders
    on :func:`species_path`. A user species may not reuse a shipped (or an earlier user)
    species' name or residue name."""
    out = shipped_registry()
    for folder in user_species_folders():
        for name, sp in _load_entries(folder / "species.yaml", folder).items():
            if name in out:
                where = "forcefields/species.yaml" if out[name].folder is None else str(out[name].folder)
                raise SolvmdError(f"user species {name} in {folder} clashes with species {name} of {where}; "
                                  "rename or remove one of them")
            clash = [o for o in out.values() if o.residue.upper() == sp.residue.upper()]
            if clash:
                raise SolvmdError(f"user species {name} in {folder}: residue name {sp.residue!r} is already used "
                                  f"by species {clash[0].name}; residue names must be unique")
            out[name] = sp
    return out


def reload_registry() -> None:
    """Forget the cached registry (after ``species add`` or a change of ``$SOLVMD_SPECIES_PATH``)."""
    registry.cache_clear()
    _refined_conformer.cache_clear()
    _xml_names.cache_clear()


def get(name: str) -> Species:
    """Look up a species by name; unknown names raise an error listing the known ones."""
    reg = registry()
    if name not in reg:
        raise SolvmdError(f"unknown species {name!r}; known species: {', '.join(sorted(reg))}")
    return reg[name]


def add_molecule(topology, chain, sp: Species):
    """Append one molecule of ``sp`` as a residue to an OpenMM ``Topology`` (atoms and bonds).

    Returns the new residue. Atom names follow the registry naming contract.
    """
    from openmm.app import Element

    mol = sp.mol
    residue = topology.addResidue(sp.residue, chain)
    atoms = [
        topology.addAtom(name, Element.getByAtomicNumber(a.GetAtomicNum()), residue)
        for name, a in zip(atom_names(mol), mol.GetAtoms())
    ]
    for bond in mol.GetBonds():
        topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()])
    return residue


def molecule_topology_from_xyz(sp: Species, xyz_A: np.ndarray):
    """A single molecule of ``sp`` at ``xyz_A`` (angstrom): (OpenMM Topology, positions in nm)."""
    from openmm import unit
    from openmm.app import Topology

    top = Topology()
    add_molecule(top, top.addChain(), sp)
    return top, unit.Quantity(np.asarray(xyz_A) / 10.0, unit.nanometer)


def molecule_topology(sp: Species, seed: int = 42):
    """A single molecule of ``sp``: (OpenMM Topology, positions as openmm Quantity in nm)."""
    return molecule_topology_from_xyz(sp, sp.coordinates(seed))


@lru_cache(maxsize=None)
def _xml_names(path: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Atom type names, class names and residue template names defined in one force-field XML."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as err:
        raise SolvmdError(f"force-field file {path} cannot be read: {err}") from None
    types = frozenset(t.get("name") for t in root.iter("Type") if t.get("name"))
    classes = frozenset(t.get("class") for t in root.iter("Type") if t.get("class"))
    residues = frozenset(r.get("name") for r in root.iter("Residue") if r.get("name"))
    return types, classes, residues


def template_conflicts(names: list[str]) -> list[tuple[str, str, str]]:
    """Why the given species cannot share one OpenMM ForceField / topology, as (a, b, reason).

    Two species clash when they use the same residue name (topology residues map to
    templates and to charge scaling by name), or when their XML files are different and
    define the same atom type or class name (OpenMM refuses duplicate types; a shared class
    would silently mix bonded parameters between the files). An empty list means compatible.
    """
    sps = [get(n) for n in dict.fromkeys(names)]
    out: list[tuple[str, str, str]] = []
    for i, a in enumerate(sps):
        for b in sps[i + 1:]:
            if a.residue == b.residue:
                out.append((a.name, b.name, f"both use residue name {a.residue!r}; residue names must be unique"))
            if a.xml_path == b.xml_path or not (a.xml_path.exists() and b.xml_path.exists()):
                continue
            ta, ca, _ = _xml_names(str(a.xml_path))
            tb, cb, _ = _xml_names(str(b.xml_path))
            for what, x, y in (("atom type", ta, tb), ("atom class", ca, cb)):
                common = sorted(x & y)
                if common:
                    out.append((a.name, b.name, f"{a.xml} and {b.xml} both define {what} name(s) {common[:4]}; "
                                                "prefix type and class names with the residue name (docs/recipes.md: Adding a species)"))
    return out
