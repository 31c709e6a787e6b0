"""``solvmd build``: recipe -> packed, parameterized system.

Writes to ``out_dir``: ``system.pdb`` (CONECT records and CRYST1 box), ``system.xml``
(serialized OpenMM System) and ``manifest.json`` (resolved counts, box, density
estimate, concentrations, charge scaling, force-field files, seeds, versions). The
manifest is written last, so a directory without it is not a finished build.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import openmm
from openmm import app, unit

from solvmd import __version__, records
from solvmd import complexes
from solvmd import species as species_registry
from solvmd.assembly.bonded_complexes import add_complex_bonds
from solvmd.assembly.complex_geometry import complex_instances
from solvmd.assembly.composition import Composition, resolve
from solvmd.assembly.guards import MIN_CATION_SEPARATION_A, check_cation_separation, check_exclusions
from solvmd.assembly.packing import pack
from solvmd.errors import SolvmdError
from solvmd.forcefield import forcefield_files, system_from_settings
from solvmd.io import atomic_path, write_json_atomic, write_text_atomic
from solvmd.log import get_logger, log_to
from solvmd.recipe import Recipe

LOG = get_logger("build")


def build_topology(counts: dict[str, int], box_nm: tuple[float, float, float]) -> app.Topology:
    """Topology with ``counts`` units per species or complex, in order (one residue per
    molecule; a complex adds its members' residues in its own order)."""
    top = app.Topology()
    chain = top.addChain("A")
    for name, n in counts.items():
        members = [species_registry.get(m) for m in complexes.unit_members(name)]
        for _ in range(n):
            for sp in members:
                species_registry.add_molecule(top, chain, sp)
    top.setPeriodicBoxVectors(
        [openmm.Vec3(box_nm[0], 0, 0), openmm.Vec3(0, box_nm[1], 0), openmm.Vec3(0, 0, box_nm[2])] * unit.nanometer
    )
    return top


def _installed_version(distribution: str) -> str:
    """A package's version from its metadata (no import), or ``not installed``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Versions of the tools that shaped a result (recorded in every manifest and md.json).

    Read from package metadata: recording them imports nothing (MDAnalysis took ~1 s), and a
    package absent where only MD runs (the GPU check's minimal install) is ``not installed``."""
    import rdkit

    return {
        "solvmd": __version__,
        "python": platform.python_version(),
        "openmm": openmm.__version__,
        "rdkit": rdkit.__version__,
        "packmol": _installed_version("packmol"),
        "MDAnalysis": _installed_version("MDAnalysis"),
    }


def species_table(counts: dict[str, int]) -> list[dict]:
    """Per-species rows for the manifest (the analysis reads these)."""
    rows = []
    for name, n in counts.items():
        sp = species_registry.get(name)
        rows.append(
            {"name": name, "residue": sp.residue, "role": sp.role, "count": n, "charge": sp.charge,
             "donors": list(sp.donors), "n_atoms": sp.n_atoms, "smiles": sp.smiles, "xml": sp.xml}
        )
    return rows


def nonbonded_record(ffs) -> dict:
    """Manifest keys for the mixing form and hydrogen mass of a build (``ForceFieldSettings``)."""
    return {"mixing": ffs.mixing if ffs.combining_rule == "geometric" else None,
            "correction_cutoff_nm": ffs.correction_cutoff_nm if ffs.mixing == "fast" else None,
            "hydrogen_mass_amu": ffs.hydrogen_mass_amu, "constraints": "HBonds"}


def check_box(box_nm: float, cutoff_nm: float, what: str = "box") -> None:
    if box_nm < 2.0 * cutoff_nm:
        raise SolvmdError(
            f"{what} edge {box_nm:.2f} nm is smaller than twice the cutoff ({2 * cutoff_nm:.2f} nm); "
            "increase size.salt_units / size.target_atoms or lower forcefield.cutoff_nm"
        )


def build_system(recipe: Recipe, out_dir: str | Path, log=sys.stderr) -> dict:
    """Resolve, pack and parameterize ``recipe``; write the build files to ``out_dir``.

    Returns the manifest dictionary. Progress goes to the build-step logger
    (``get_logger("build")``) and to ``log``, a text stream, if given.
    """
    with log_to(log):
        return _build_system(recipe, Path(out_dir))


def _build_system(recipe: Recipe, out_dir: Path) -> dict:
    comp: Composition = resolve(recipe)
    ffs = recipe.forcefield
    check_box(comp.box_nm, ffs.cutoff_nm)
    LOG.info(f"{recipe.name}: {comp.units} -> {comp.n_atoms} atoms, estimated density "
             f"{comp.density_g_cm3:.3f} g/cm^3, box {comp.box_nm:.3f} nm, packmol seed {recipe.packing.seed}")
    box_A = comp.box_nm * 10.0
    xyz_A = pack(comp.units, box_A, seed=recipe.packing.seed, tolerance_A=recipe.packing.tolerance_A,
                 nloop=recipe.packing.nloop)
    topology = build_topology(comp.units, (comp.box_nm,) * 3)
    system = system_from_settings(topology, list(comp.counts), ffs, charge_scale=recipe.charge_scale)
    bonded = add_complex_bonds(system, comp.units, [a.element.symbol for a in topology.atoms()], xyz_A / 10.0,
                               charge_scale=recipe.charge_scale)
    check_built_system(system, topology, xyz_A / 10.0, bonded)
    manifest = {
        "name": recipe.name,
        "description": recipe.description,
        "recipe": recipe.model_dump(mode="json"),
        "species": species_table(comp.counts),
        "units": dict(comp.units),
        "complexes": complex_instances(comp.units),
        "bonded_complexes": bonded,
        "n_atoms": comp.n_atoms,
        "box_nm": [comp.box_nm] * 3,
        "density_estimate_g_cm3": comp.density_g_cm3,
        "concentrations_M": comp.concentrations_M,
        "charge_scale": recipe.charge_scale,
        "temperature_K": recipe.temperature_K,
        "pressure_bar": recipe.pressure_bar,
        "cutoff_nm": ffs.cutoff_nm,
        "combining_rule": ffs.combining_rule,
        **nonbonded_record(ffs),
        "forcefield_files": [Path(f).name for f in forcefield_files(list(comp.counts))],
        "forcefield_sources": "forcefields/SOURCES.md",
        "seeds": {"packmol": recipe.packing.seed, "conformer": 42},
        "versions": versions(),
    }
    write_build(out_dir, topology, xyz_A / 10.0, system, manifest)
    LOG.info(f"wrote {out_dir}/system.pdb, system.xml, manifest.json")
    return manifest


def check_built_system(system: openmm.System, topology: app.Topology, xyz_nm, bonded: list[dict]) -> None:
    """Refuse (SolvmdError, before anything is written) a System that fails the exclusion
    audit, or whose bonded complexes let two cations collapse on minimization
    (:mod:`solvmd.assembly.guards`; the minimization runs only for builds with bonded complexes)."""
    check_exclusions(system, topology)
    if bonded:
        r = check_cation_separation(system, topology, xyz_nm)
        LOG.info(f"guard: closest cation-cation distance after minimization {r:.2f} A "
                 f"(minimum {MIN_CATION_SEPARATION_A} A)")


def write_build(out_dir: Path, topology: app.Topology, xyz_nm, system: openmm.System, manifest: dict) -> None:
    """Write system.pdb, system.xml and (last) manifest.json atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = out_dir / records.MANIFEST
    if stale.exists():
        stale.unlink()  # the build is being redone: it is unfinished until the new manifest lands
    with atomic_path(out_dir / "system.pdb") as tmp:
        with open(tmp, "w") as fh:
            app.PDBFile.writeFile(topology, unit.Quantity(xyz_nm, unit.nanometer), fh, keepIds=False)
    write_text_atomic(out_dir / "system.xml", openmm.XmlSerializer.serialize(system))
    write_json_atomic(out_dir / records.MANIFEST, manifest)


def read_manifest(build_dir: str | Path) -> dict:
    """``build_dir/manifest.json`` as a dict, validated by :func:`solvmd.records.read_manifest`;
    a missing or unreadable one is a SolvmdError saying what to run."""
    from solvmd.io import read_json

    build_dir = Path(build_dir)
    manifest_path = build_dir / records.MANIFEST
    if not manifest_path.is_file():
        raise SolvmdError(f"{build_dir} is not a finished solvmd build (no manifest.json); run `solvmd build` first")
    records.read_manifest(build_dir)
    return read_json(manifest_path, "build manifest")


def load_build(build_dir: str | Path) -> tuple[app.PDBFile, openmm.System, dict]:
    """Read a finished build (PDB, System, manifest); a folder that is not ours is an error."""
    from solvmd import records

    build_dir = Path(build_dir)
    manifest = read_manifest(build_dir)
    records.check_build(build_dir)  # manifest fields, system.xml and system.pdb atom counts
    pdb = app.PDBFile(str(build_dir / "system.pdb"))
    system = openmm.XmlSerializer.deserialize((build_dir / "system.xml").read_text())
    if system.getNumParticles() != manifest["n_atoms"] or pdb.topology.getNumAtoms() != manifest["n_atoms"]:
        raise SolvmdError(
            f"{build_dir}: system.xml has {system.getNumParticles()} particles, system.pdb "
            f"{pdb.topology.getNumAtoms()} atoms, manifest {manifest['n_atoms']}; the files do not belong together"
        )
    return pdb, system, manifest
