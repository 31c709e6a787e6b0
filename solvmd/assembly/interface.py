"""``solvmd build`` for interfaces: electrolyte slab above a frozen sheet, periodic in x, y, z.

The sheet lies in the plane z = 0 of an orthorhombic box (Lx, Ly from whole graphene
cells, Lz = liquid thickness + excluded layer). The liquid fills the rest of the box,
so it sits between the sheet and its periodic image one box height up; both faces of
the sheet are wetted.

Choices (see ``forcefields/SOURCES.md``, section Surfaces):

* **Frozen sheet.** Sheet particles have mass 0: OpenMM integrators never move them
  and the minimizer keeps them fixed, so no bonded terms are needed; only charges and
  LJ act on the liquid. Sheet-sheet pairs within the cutoff are excluded (their energy
  is a constant, but huge at bonded distances; excluding it keeps the total energy
  meaningful). A zero-energy HarmonicBondForce over the sheet bonds (k = 0) makes the
  sheet ONE molecule for OpenMM, so a Monte Carlo barostat counts it once (the ideal-gas
  term of the acceptance uses the number of molecules) and moves it as a whole.
  A restrained, massive sheet would add phonons nobody asked for and a 2 fs step limit
  on C-C bonds; it buys nothing for desolvation at a rigid catalyst site.
* **Pressure along z only** (``barostat: z``, default): a
  ``MonteCarloAnisotropicBarostat`` scaling only the box height. It scales molecule
  centres about z = 0; the sheet's centre is at z = 0, so the sheet does not move, and
  x, y (fixed by the lattice) never change. The isotropic barostat must NOT be used: it
  would scale x and y and break the sheet's periodic bonds. ``barostat: none`` runs NVT
  at the bulk density with the box height set from ``slab.excluded_nm``.

The electrolyte is packed at the bulk density of its own recipe: from a bulk NPT run
(``density: {source: md, path: results/<bulk>/md}``), a bulk build manifest, a value, or
the recipe's ideal-mixing estimate; the manifest records which.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

from solvmd import records
from solvmd import species as species_registry
from solvmd.assembly.bonded_complexes import add_complex_bonds
from solvmd.assembly.composition import Composition, resolve
from solvmd.assembly.packing import pack
from solvmd.assembly.surfaces import SHEET_RESIDUE, Sheet, build_sheet, surface_parameters
from solvmd.assembly.system import (build_topology, check_built_system, nonbonded_record, species_table, versions,
                                 write_build)
from solvmd.errors import SolvmdError
from solvmd.forcefield import finish_nonbonded, forcefield_files, nonbonded_force, parameterize
from solvmd.forcefield_settings import DEFAULTS
from solvmd.geometry import self_pairs_within
from solvmd.io import read_json
from solvmd.mixing import MixingMode, PairOverride
from solvmd.recipe import InterfaceRecipe, LJOverrideSpec, Recipe, Size
from solvmd.log import get_logger, log_to
from solvmd.units import AVOGADRO

LOG = get_logger("build")

DONOR_ELEMENTS = ("O", "N", "F", "Cl", "S")


# --------------------------------------------------------------------------- density, counts


def bulk_density(rec: InterfaceRecipe) -> tuple[float, str]:
    """(density g/cm^3, where it came from) for the liquid slab."""
    d = rec.density
    if d.source == "value":
        return float(d.g_cm3), "recipe density.g_cm3"
    if d.source == "estimate":
        return float(resolve(rec.bulk).density_g_cm3), f"ideal-mixing estimate of recipe {rec.bulk.name}"
    path = Path(d.path)
    if d.source == "md":
        f = path / records.MD_JSON if path.is_dir() else path
        if not f.is_file():
            raise SolvmdError(f"density.path: {f} not found; run `solvmd md` on the bulk electrolyte first, or use "
                              "density: {source: estimate}")
        info = records.validate_present(read_json(f, "MD record"), records.MDRecord, str(f), "MD record")
        rho = info.get("density_production_mean_g_cm3")
        if not rho:
            raise SolvmdError(f"density.path: {f} has no density_production_mean_g_cm3 (an NVT run?)")
        std = info.get("density_production_std_g_cm3")
        return float(rho), f"bulk NPT production mean {f}" + (f" (std {std:.4f})" if std else "")
    f = path / records.MANIFEST if path.is_dir() else path
    if not f.is_file():
        raise SolvmdError(f"density.path: {f} not found; run `solvmd build` on the bulk electrolyte first")
    man = records.validate_present(read_json(f, "build manifest"), records.Manifest, str(f), "build manifest")
    if not isinstance(man.get("density_estimate_g_cm3"), (int, float)) or man["density_estimate_g_cm3"] <= 0:
        raise SolvmdError(f"density.path: {f} has no density_estimate_g_cm3")
    return float(man["density_estimate_g_cm3"]), f"bulk build manifest {f} (estimate)"


def _mass_g(counts: dict[str, int]) -> float:
    return sum(species_registry.get(n).molar_mass_g_mol * k for n, k in counts.items()) / AVOGADRO


def slab_composition(bulk: Recipe, volume_nm3: float, density_g_cm3: float) -> Composition:
    """The bulk recipe's composition scaled to fill ``volume_nm3`` at ``density_g_cm3``."""
    ref = resolve(bulk)
    scale = density_g_cm3 * volume_nm3 * 1e-21 / _mass_g(ref.counts)
    size = Size(target_atoms=max(1, int(round(ref.n_atoms * scale))))
    try:
        return resolve(bulk.model_copy(update={"size": size}))
    except SolvmdError as err:
        raise SolvmdError(f"slab.liquid_thickness_nm: the slab is too thin for this electrolyte: {err}") from None


# --------------------------------------------------------------------------- OpenMM system


def add_sheet_to_topology(topology: app.Topology, sheet: Sheet) -> list[app.topology.Atom]:
    """Append the sheet as one residue ``GRA`` (chain S) with its bonds (incl. periodic ones)."""
    chain = topology.addChain("S")
    res = topology.addResidue(SHEET_RESIDUE, chain)
    atoms = [topology.addAtom(name, app.Element.getBySymbol(el), res)
             for name, el in zip(sheet.atom_names, sheet.elements)]
    for i, j in sheet.bonds:
        topology.addBond(atoms[i], atoms[j])
    return atoms


def sheet_exclusions(sheet: Sheet, cutoff_nm: float) -> list[tuple[int, int]]:
    """Sheet-local pairs closer than the cutoff (minimum image in x, y)."""
    flat = np.column_stack([sheet.xyz_nm[:, :2], np.zeros(sheet.n_atoms)])
    dims = [*sheet.box_xy_nm, 1e3, 90.0, 90.0, 90.0]
    return [(int(i), int(j)) for i, j in self_pairs_within(flat, cutoff_nm * 1.05, dims)]


def add_frozen_sheet(system: openmm.System, sheet: Sheet, cutoff_nm: float) -> int:
    """Append the sheet's particles (mass 0) to ``system`` BEFORE LJ mixing; returns the first index.

    Charges and LJ go into the NonbondedForce (the later geometric-mixing step treats them
    like any other atom); sheet-sheet pairs within the cutoff are excluded; a k = 0
    HarmonicBondForce over the sheet bonds makes the sheet one molecule.
    """
    nb = nonbonded_force(system)
    start = system.getNumParticles()
    for q, s, e in zip(sheet.charges, sheet.sigma_nm, sheet.epsilon_kJ_mol):
        system.addParticle(0.0)
        nb.addParticle(float(q), float(s), float(e))
    for i, j in sheet_exclusions(sheet, cutoff_nm):
        nb.addException(start + i, start + j, 0.0, 0.1, 0.0)
    bonds = openmm.HarmonicBondForce()
    bonds.setName("FrozenSheetConnectivity")
    bonds.setUsesPeriodicBoundaryConditions(True)
    for i, j in sheet.bonds:
        bonds.addBond(start + i, start + j, 0.142, 0.0)
    system.addForce(bonds)
    return start


def finish_interface_nonbonded(system: openmm.System, sheet_range: tuple[int, int],
                               overrides: list[PairOverride] | tuple = (), mixing: MixingMode = DEFAULTS.mixing,
                               correction_cutoff_nm: float = DEFAULTS.correction_cutoff_nm) -> openmm.System:
    """OPLS geometric mixing (+ overrides) with exact sheet-liquid LJ and no sheet correction.

    The analytic long-range (dispersion) correction assumes a homogeneous fluid; with the
    sheet atoms in it, it adds a spurious uniform attraction (~ -90 bar for the demo
    interface) that compresses the liquid. So only liquid-liquid pairs keep the correction
    (the wall tail beyond the cutoff is neglected). In the ``split`` form the sheet sits in
    the two split NonbondedForces (sheet-liquid pairs in OpenMM's SIMD kernel, 3x faster per
    step than an interaction-group force on the CPU) and ``SheetLongRangeCorrectionRemoval``
    cancels its share of their correction; in the ``exact`` and ``fast`` forms sheet-liquid LJ
    goes to ``LennardJonesSheet`` (interaction group sheet x liquid, no correction).
    Sheet-sheet pairs within the cutoff are excluded (frozen).
    """
    s0, s1 = sheet_range
    liquid = [i for i in range(system.getNumParticles()) if not s0 <= i < s1]
    return finish_nonbonded(system, "geometric", overrides, mixing, correction_cutoff_nm, fluid_atoms=liquid)


def _sheet_selection(sel: str, sheet: Sheet, start: int, field_name: str) -> list[int]:
    if sel == "metal":
        idx = sheet.site_atoms
        if not idx:
            raise SolvmdError(f"{field_name}: 'metal' but the sheet ({sheet.spec.label}) has no metal site")
    elif sel in set(sheet.roles):
        idx = [k for k, r in enumerate(sheet.roles) if r == sel]
    elif sel in set(sheet.elements):
        idx = [k for k, e in enumerate(sheet.elements) if e == sel]
    else:
        raise SolvmdError(f"{field_name}: {sel!r} matches no sheet atom; use 'metal', an element of the sheet "
                          f"({', '.join(sorted(set(sheet.elements)))}) or a role ({', '.join(sorted(set(sheet.roles)))})")
    return [start + k for k in idx]


def _liquid_selection(sel: str, topology: app.Topology, names: dict[str, str], field_name: str) -> list[int]:
    """``Li`` | ``DME:O`` | ``*:O`` over the electrolyte residues (``names``: residue -> species)."""
    spec_name, _, element = sel.partition(":")
    if spec_name != "*" and spec_name not in names.values():
        raise SolvmdError(f"{field_name}: species {spec_name!r} is not in the electrolyte "
                          f"({', '.join(sorted(set(names.values())))}); use species, species:element or *:element")
    out = [a.index for a in topology.atoms()
           if a.residue.name in names
           and (spec_name == "*" or names[a.residue.name] == spec_name)
           and (not element or (a.element is not None and a.element.symbol == element))]
    if not out:
        raise SolvmdError(f"{field_name}: {sel!r} matches no electrolyte atom")
    return out


def pair_overrides(specs: list[LJOverrideSpec], sheet: Sheet, start: int, topology: app.Topology,
                   counts: dict[str, int]) -> tuple[list[PairOverride], list[dict]]:
    names = {species_registry.get(n).residue: n for n in counts}
    out, rows = [], []
    for k, ov in enumerate(specs):
        a = _sheet_selection(ov.a, sheet, start, f"lj_overrides[{k}].a")
        b = _liquid_selection(ov.b, topology, names, f"lj_overrides[{k}].b")
        out.append(PairOverride(tuple(a), tuple(b), ov.sigma_nm, ov.epsilon_kJ_mol))
        rows.append({"a": ov.a, "b": ov.b, "sigma_nm": ov.sigma_nm, "epsilon_kJ_mol": ov.epsilon_kJ_mol,
                     "n_a": len(a), "n_b": len(b), "note": ov.note, "source": "recipe lj_overrides"})
    return out, rows


def cross_terms(system: openmm.System, sheet: Sheet, start: int, topology: app.Topology, counts: dict[str, int],
                override_rows: list[dict]) -> list[dict]:
    """Explicit table of metal-ion and metal-donor LJ pairs (geometric mixing unless overridden).

    Read from the NonbondedForce before mixing; every (metal, species, element) pair of a
    cation or a donor element is listed with the rule that produced it.
    """
    if not sheet.site_atoms:
        return []
    nb = nonbonded_force(system)
    m = start + sheet.site_atoms[0]
    _, sm, em = nb.getParticleParameters(m)
    sm, em = sm.value_in_unit(unit.nanometer), em.value_in_unit(unit.kilojoule_per_mole)
    names = {species_registry.get(n).residue: n for n in counts}
    seen: dict[tuple[str, str, float, float], int] = {}
    for atom in topology.atoms():
        if atom.residue.name not in names or atom.element is None:
            continue
        sp = species_registry.get(names[atom.residue.name])
        el = atom.element.symbol
        if sp.role != "cation" and el not in DONOR_ELEMENTS:
            continue
        _, s, e = nb.getParticleParameters(atom.index)
        key = (sp.name, el, round(s.value_in_unit(unit.nanometer), 6), round(e.value_in_unit(unit.kilojoule_per_mole), 6))
        seen.setdefault(key, atom.index)
    metal = sheet.spec.metal
    rows = []
    for (sp, el, s, e) in seen:
        row = {"a": metal, "b": f"{sp}:{el}", "sigma_nm": float(np.sqrt(sm * s)), "epsilon_kJ_mol": float(np.sqrt(em * e)),
               "source": f"geometric mixing: UFF {metal} x {sp} {el} ({species_registry.get(sp).xml})"}
        for ov in override_rows:
            a_hit = ov["a"] in ("metal", metal)
            b_sp, _, b_el = ov["b"].partition(":")
            b_hit = (b_sp in ("*", sp)) and (not b_el or b_el == el)
            if a_hit and b_hit:
                row.update(sigma_nm=ov["sigma_nm"], epsilon_kJ_mol=ov["epsilon_kJ_mol"], source="recipe lj_overrides")
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- build


@dataclass
class _Slab:
    """The liquid slab above the sheet: composition, density, heights (nm)."""

    comp: Composition
    rho: float  # g/cm^3
    rho_source: str
    mass_g: float
    thickness: float  # liquid thickness, exact for the rounded counts
    delta: float  # empty gap kept free of packed atoms (half below the sheet image, half above the sheet)
    Lz: float

    @property
    def packed_z(self) -> tuple[float, float]:
        return self.delta / 2.0, self.Lz - self.delta / 2.0


def _slab(rec: InterfaceRecipe, area_nm2: float) -> _Slab:
    """Scale the bulk composition to the slab at the bulk density; the box height must hold two cutoffs."""
    rho, rho_source = bulk_density(rec)
    comp = slab_composition(rec.bulk, area_nm2 * rec.slab.liquid_thickness_nm, rho)
    mass_g = _mass_g(comp.counts)
    thickness = mass_g / rho * 1e21 / area_nm2
    Lz = thickness + rec.slab.excluded_nm
    cutoff = rec.bulk.forcefield.cutoff_nm
    if Lz < 2.0 * cutoff:
        raise SolvmdError(f"slab.liquid_thickness_nm: box height {Lz:.2f} nm is smaller than twice the cutoff "
                          f"({2 * cutoff:.2f} nm); make the slab thicker")
    return _Slab(comp, rho, rho_source, mass_g, thickness, rec.slab.excluded_nm, Lz)


def build_interface(rec: InterfaceRecipe, out_dir: str | Path, log=sys.stderr) -> dict:
    """Sheet + electrolyte slab: write system.pdb, system.xml, manifest.json to ``out_dir``.

    Returns the manifest. The sheet atoms come last (``manifest["surface"]["atom_range"]``).
    Progress goes to the build-step logger (``get_logger("build")``) and to ``log``, a text
    stream, if given.
    """
    with log_to(log):
        return _build_interface(rec, Path(out_dir))


def _build_interface(rec: InterfaceRecipe, out_dir: Path) -> dict:
    ffs = rec.bulk.forcefield
    if ffs.combining_rule != "geometric":
        raise SolvmdError("electrolyte forcefield.combining_rule must be geometric for interfaces "
                          "(surface parameters and pair overrides assume OPLS geometric mixing)")
    sheet = build_sheet(rec.surface, cutoff_nm=ffs.cutoff_nm)
    Lx, Ly = sheet.box_xy_nm
    slab = _slab(rec, Lx * Ly)
    comp = slab.comp
    LOG.info(f"{rec.name}: {sheet.spec.label} sheet {Lx:.3f} x {Ly:.3f} nm ({sheet.n_atoms} atoms, frozen) + "
             f"{comp.counts} ({comp.n_atoms} atoms) at {slab.rho:.4f} g/cm^3 [{slab.rho_source}]; box z "
             f"{slab.Lz:.3f} nm, barostat {rec.barostat}")
    # parameterize first (bad overrides fail before packing), then pack
    topology = build_topology(comp.units, (Lx, Ly, slab.Lz))
    system = parameterize(topology, list(comp.counts), cutoff_nm=ffs.cutoff_nm, charge_scale=rec.bulk.charge_scale,
                          ewald_error_tolerance=ffs.ewald_error_tolerance,
                          dispersion_correction=ffs.dispersion_correction, hydrogen_mass_amu=ffs.hydrogen_mass_amu)
    start = add_frozen_sheet(system, sheet, ffs.cutoff_nm)
    add_sheet_to_topology(topology, sheet)
    overrides, override_rows = pair_overrides(list(rec.lj_overrides), sheet, start, topology, comp.counts)
    xterms = cross_terms(system, sheet, start, topology, comp.counts, override_rows)
    finish_interface_nonbonded(system, (start, start + sheet.n_atoms), overrides, ffs.mixing,
                               ffs.correction_cutoff_nm)
    packing = rec.packing or rec.bulk.packing
    zlo, zhi = slab.packed_z
    xyz_A = pack(comp.units, (Lx * 10.0, Ly * 10.0, slab.Lz * 10.0), seed=packing.seed,
                 tolerance_A=packing.tolerance_A, nloop=packing.nloop, region_z_A=(zlo * 10.0, zhi * 10.0))
    xyz_nm = np.vstack([xyz_A / 10.0, sheet.xyz_nm])
    bonded = add_complex_bonds(system, comp.units, [a.element.symbol for a in topology.atoms()], xyz_nm,
                               charge_scale=rec.bulk.charge_scale)
    assert system.getNumParticles() == comp.n_atoms + sheet.n_atoms == topology.getNumAtoms()
    check_built_system(system, topology, xyz_nm, bonded)
    manifest = _manifest(rec, sheet, slab, start, packing.seed, {"cross_terms": xterms, "lj_overrides": override_rows})
    manifest["bonded_complexes"] = bonded
    if abs(manifest["net_charge_e"]) > 1e-6:
        raise SolvmdError(f"interface {rec.name}: net charge {manifest['net_charge_e']:+.3g} e; must be neutral")
    write_build(out_dir, topology, xyz_nm, system, manifest)
    LOG.info(f"wrote {out_dir}/system.pdb, system.xml, manifest.json")
    return manifest


def _manifest(rec: InterfaceRecipe, sheet: Sheet, slab: _Slab, start: int, packmol_seed: int, pairs: dict) -> dict:
    """The build record of an interface system; ``pairs``: its cross terms and LJ overrides."""
    bulk, ffs, comp = rec.bulk, rec.bulk.forcefield, slab.comp
    Lx, Ly = sheet.box_xy_nm
    n_atoms = comp.n_atoms + sheet.n_atoms
    q_liq = sum(species_registry.get(n).charge * k for n, k in comp.counts.items())
    return {
        "name": rec.name, "description": rec.description, "kind": "interface",
        "recipe": rec.model_dump(mode="json"),
        "electrolyte": {"name": bulk.name, "source": rec.electrolyte_source},
        "species": species_table(comp.counts),
        "n_atoms": n_atoms, "box_nm": [Lx, Ly, slab.Lz],
        "density_g_cm3": slab.rho, "density_source": slab.rho_source, "density_estimate_g_cm3": slab.rho,
        "concentrations_M": comp.concentrations_M, "charge_scale": bulk.charge_scale,
        "temperature_K": bulk.temperature_K, "pressure_bar": bulk.pressure_bar,
        "cutoff_nm": ffs.cutoff_nm, "combining_rule": ffs.combining_rule, **nonbonded_record(ffs),
        "barostat": rec.barostat,
        "barostat_note": ("MonteCarloAnisotropicBarostat scaling z only (sheet at z = 0 stays fixed); never the "
                          "isotropic barostat" if rec.barostat == "z" else "NVT at the bulk density"),
        "frozen_atoms": [start, n_atoms],
        "net_charge_e": float(q_liq + sheet.net_charge),
        "surface": _surface_record(rec, sheet, start, n_atoms),
        "slab": {"liquid_thickness_nm": slab.thickness, "requested_thickness_nm": rec.slab.liquid_thickness_nm,
                 "excluded_nm": slab.delta, "packed_z_nm": list(slab.packed_z), "area_nm2": Lx * Ly,
                 "liquid_mass_g": slab.mass_g},
        **pairs,
        "forcefield_files": [Path(f).name for f in forcefield_files(list(comp.counts))] + ["surfaces.yaml"],
        "forcefield_sources": "forcefields/SOURCES.md",
        "seeds": {"packmol": packmol_seed, "conformer": 42, "surface": rec.surface.seed},
        "versions": versions(),
    }


def _surface_record(rec: InterfaceRecipe, sheet: Sheet, start: int, n_atoms: int) -> dict:
    """The ``surface`` entry of the manifest: what the sheet is, where its atoms and sites are, its parameters."""
    Lx, Ly = sheet.box_xy_nm
    return {
        "kind": rec.surface.kind, "label": rec.surface.label, "metal": rec.surface.metal,
        "residue": SHEET_RESIDUE, "atom_range": [start, n_atoms], "n_atoms": sheet.n_atoms,
        "n_cells": list(sheet.n_cells), "size_nm": [Lx, Ly], "plane_z_nm": 0.0,
        "site_atoms": [start + k for k in sheet.site_atoms],
        "site_positions_nm": [[x, y, 0.0] for x, y in sheet.site_positions_nm],
        "defects": sheet.defects, "charges_e": sheet.charge_sources, "net_charge_e": sheet.net_charge,
        "lj": {e: {"sigma_nm": float(sheet.sigma_nm[sheet.elements.index(e)]),
                   "epsilon_kJ_mol": float(sheet.epsilon_kJ_mol[sheet.elements.index(e)]),
                   "source": sheet.lj_sources[e]} for e in sorted(set(sheet.elements))},
        "geometry_nm": sheet.geometry(),
        "lattice_cc_bond_nm": surface_parameters()["lattice"]["cc_bond_A"] / 10.0,
        "treatment": ("frozen (mass 0, sheet-sheet pairs within the cutoff excluded, one molecule); sheet-liquid LJ "
                      "exact geometric without long-range correction (split form: in the split NonbondedForces, "
                      "SheetLongRangeCorrectionRemoval cancels the sheet's correction share; exact/fast forms: "
                      "LennardJonesSheet)"),
    }


def is_interface_manifest(manifest: dict) -> bool:
    return manifest.get("kind") == "interface" and "surface" in manifest


def is_interface_build(build_dir: str | Path) -> bool:
    f = Path(build_dir) / records.MANIFEST
    return f.is_file() and is_interface_manifest(read_json(f, "build manifest"))


def build_inputs(recipe_path: str | Path) -> list[str]:
    """Files an interface build reads besides its recipe (for Snakemake inputs): the electrolyte
    recipe and, for ``density: {source: md | build}``, the bulk run's md.json / manifest.json."""
    from solvmd.recipe import load_interface_recipe

    rec = load_interface_recipe(recipe_path)
    out = [rec.electrolyte_source] if rec.electrolyte_source else []
    if rec.density.source in ("md", "build"):
        p = Path(rec.density.path)
        out.append(str(p / (records.MD_JSON if rec.density.source == "md" else records.MANIFEST)) if p.suffix != ".json" else str(p))
    return out
