"""Pre-assembled metal complexes: packing units made of several registry species.

A complex such as MgCl(THF)5+ or [Mg2(mu-Cl)3(THF)6]+ is not a new molecule: it is a
group of ordinary species (Mg, Cl, THF: each its own residue with its own force-field
template) placed in an ideal coordination geometry (:mod:`solvmd.assembly.complex_geometry`)
and packed by packmol as ONE rigid unit. Nothing bonds the members: in the MD they stay
together only through the nonbonded force field, which is what the validation tests.

Complexes are defined in ``forcefields/complexes.yaml``. A recipe uses a complex by its
name wherever a salt takes an ion, e.g. ``{cation: MgCl_THF5, anion: Cl, molarity_M: 0.2}``.
Every definition is checked on loading: known member species, metals that are cations,
monodentate ligands, a geometry with the right number of sites, a distance for every
metal-donor pair, and a declared ``charge`` equal to the sum of the members' formal charges.

"Unit" helpers (:func:`unit_charge`, :func:`unit_members`, ...) answer for a plain species
or a complex alike, so composition, packing and topology code treat both the same way.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import lru_cache
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from solvmd import species as species_registry
from solvmd.errors import SolvmdError

GEOMETRY_SITES = {"octahedral": (1, 0, 6), "face_sharing_bioctahedron": (2, 3, 6)}  # metals, bridging, terminal
DECLARED_TOL_A = 0.02  # declared start distances vs the bonded model's equilibrium geometry


class BondedRef(BaseModel):
    """Where a bonded complex's Mg-Cl terms live: ``file`` (relative to forcefields/) and ``entry``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    entry: str


@lru_cache(maxsize=None)
def _bonded_file(file: str) -> dict:
    path = species_registry.FORCEFIELD_DIR / file
    if not path.is_file():
        raise SolvmdError(f"bonded.file: {path} not found (written by forcefields/tools/mg_complex_seminario.py)")
    return json.loads(path.read_text()).get("complexes", {})


def bonded_charge_scale(file: str) -> float | None:
    """The ionic ``charge_scale`` a bonded-parameter file's effective r0 / theta0 were fitted at (None: not recorded)."""
    path = species_registry.FORCEFIELD_DIR / file
    if not path.is_file():
        raise SolvmdError(f"bonded.file: {path} not found (written by forcefields/tools/mg_complex_seminario.py)")
    return json.loads(path.read_text()).get("charge_scale")


def bonded_parameters(file: str, entry: str) -> dict:
    """``{"bonds": {kind: {r0_A, k_kJ_mol_A2}}, "angles": {kind: {theta0_deg, k_kJ_mol_rad2}}}``."""
    data = _bonded_file(file)
    if entry not in data:
        raise SolvmdError(f"bonded.entry: {entry!r} is not in {file} (entries: {', '.join(sorted(data))})")
    return data[entry]


class ComplexDef(BaseModel):
    """One pre-assembled complex.

    Attributes:
        label: display name, e.g. ``[Mg2(mu-Cl)3(THF)6]+``.
        geometry: ``octahedral`` (1 metal; 6 ``ligands`` on the sites +z, -z, +x, +y, -x, -y,
            so the first two are trans) or ``face_sharing_bioctahedron`` (2 metals on the z
            axis, 3 ``bridging`` ligands in the plane between them, 3 terminal ``ligands``
            per metal, each trans to a bridging ligand: ligands 1-3 on metal 1, 4-6 on metal 2).
        metals: metal species (registry names, role cation).
        ligands: terminal ligand species (monodentate: ions or molecules with exactly one donor atom).
        bridging: bridging ligand species (monoatomic ions, e.g. Cl).
        charge: declared net charge, e; must equal the sum of the members' formal charges.
        distances_A: start-geometry distances in angstrom: metal-donor per donor element
            (``O``, ``Cl`` ...) for terminal ligands, ``bridging`` (metal-bridging ligand) and
            ``metal_metal`` (two-metal geometries).
        source: where the geometry comes from (SOURCES.md has the references).
        bonded: optional ``{file, entry}`` of bonded Mg-Cl terms (forcefields/<file>); then
            :mod:`solvmd.assembly.bonded_complexes` bonds the Mg-Cl core in the System and
            ``distances_A`` must be that model's reference geometry (checked, 0.02 A).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    geometry: Literal["octahedral", "face_sharing_bioctahedron"]
    metals: list[str] = Field(min_length=1)
    ligands: list[str]
    bridging: list[str] = Field(default_factory=list)
    charge: int
    distances_A: dict[str, float]
    source: str = ""
    bonded: BondedRef | None = None  # bonded Mg-Cl terms (solvmd.assembly.bonded_complexes)

    @model_validator(mode="after")
    def _check(self) -> "ComplexDef":
        n_m, n_b, n_t = GEOMETRY_SITES[self.geometry]
        for field, names, n in (("metals", self.metals, n_m), ("bridging", self.bridging, n_b),
                                ("ligands", self.ligands, n_t)):
            if len(names) != n:
                raise ValueError(f"{field}: geometry {self.geometry} takes {n} {field}, got {len(names)}")
            for name in names:
                try:
                    species_registry.get(name)
                except SolvmdError as err:
                    raise ValueError(f"{field}: {err}") from None
        for name in self.metals:
            sp = species_registry.get(name)
            if sp.role != "cation":
                raise ValueError(f"metals: {name} is a {sp.role} (charge {sp.charge:+d}); a metal must be a cation")
        for name in self.bridging:
            if species_registry.get(name).n_atoms != 1:
                raise ValueError(f"bridging: {name} is not a monoatomic ion; only monoatomic bridges (e.g. Cl) are supported")
        for name in set(self.ligands):
            sp = species_registry.get(name)
            if sp.role == "cation":
                raise ValueError(f"ligands: {name} is a cation; ligands are anions or solvent molecules")
            donor_element(name)  # raises for non-monodentate ligands
        needed = {donor_element(n) for n in self.ligands}
        needed |= {"bridging"} if self.bridging else set()
        needed |= {"metal_metal"} if n_m == 2 else set()
        missing = sorted(needed - set(self.distances_A))
        if missing:
            raise ValueError(f"distances_A: missing {missing} (metal-donor distance per donor element, "
                             "'bridging' and 'metal_metal' where the geometry has them)")
        for key, d in self.distances_A.items():
            if not 1.5 <= d <= 4.0:
                raise ValueError(f"distances_A.{key}: {d} A is outside 1.5-4.0 A")
        if n_m == 2:
            half = self.distances_A["metal_metal"] / 2.0
            if self.distances_A["bridging"] <= half:
                raise ValueError(f"distances_A: bridging ({self.distances_A['bridging']} A) must exceed half of "
                                 f"metal_metal ({half} A)")
        if self.bonded is not None:
            self._check_bonded()
        total = sum(species_registry.get(n).charge for n in self.members)
        if total != self.charge:
            parts = ", ".join(f"{k} x {n} ({species_registry.get(n).charge:+d})" for n, k in Counter(self.members).items())
            raise ValueError(f"charge: declared {self.charge:+d} but the members sum to {total:+d} ({parts}); "
                             "fix the members or the declared charge")
        return self

    def _check_bonded(self) -> None:
        """The bonded model must cover the geometry, and its equilibrium geometry must be the
        declared one (``distances_A``), else the packed complex would start strained."""
        try:
            p = bonded_parameters(self.bonded.file, self.bonded.entry)
        except SolvmdError as err:
            raise ValueError(f"bonded: {err}") from None
        if set(self.metals) != {"Mg"}:
            raise ValueError(f"bonded: only Mg chloro complexes have a bonded model (metals {self.metals})")
        checks = []
        if "Cl" in self.ligands:
            checks.append(("Cl", p.get("bonds", {}).get("Mg-Cl_terminal", {}).get("r_qm_A")))
        if self.bridging:
            b = p.get("bonds", {}).get("Mg-Cl_bridging", {}).get("r_qm_A")
            ang = p.get("angles", {}).get("Mg-Cl-Mg", {}).get("theta_qm_deg")
            if p.get("angles", {}).get("Cl-Mg-Cl") is None or b is None or ang is None:
                raise ValueError(f"bonded: {self.bonded.entry} lacks Mg-Cl_bridging / Cl-Mg-Cl / Mg-Cl-Mg terms")
            checks += [("bridging", b), ("metal_metal", 2.0 * b * math.sin(math.radians(ang) / 2.0))]
        for key, want in checks:
            if want is None:
                raise ValueError(f"bonded: {self.bonded.entry} has no term for the {key} Mg-Cl contact")
            if abs(self.distances_A[key] - want) > DECLARED_TOL_A:
                raise ValueError(f"distances_A: {key} = {self.distances_A[key]} A but the bonded model "
                                 f"{self.bonded.entry} has {want:.3f} A: the declared geometry must be the "
                                 "bonded model's reference (QM) equilibrium geometry")

    @property
    def members(self) -> list[str]:
        """Member species in residue order: metals, bridging ligands, terminal ligands."""
        return [*self.metals, *self.bridging, *self.ligands]

    @property
    def role(self) -> str:
        return "cation" if self.charge > 0 else ("anion" if self.charge < 0 else "solvent")


def donor_element(name: str) -> str:
    """The element through which a monodentate ligand binds (its single donor atom)."""
    sp = species_registry.get(name)
    if sp.n_atoms == 1:
        return sp.mol.GetAtomWithIdx(0).GetSymbol()
    donors = [a.GetSymbol() for a in sp.mol.GetAtoms() if a.GetSymbol() in sp.donors]
    if len(donors) != 1:
        raise ValueError(f"ligands: {name} has {len(donors)} donor atoms ({', '.join(donors) or 'none'}); "
                         "only monodentate ligands (exactly one donor atom) are supported")
    return donors[0]


def parse_complexes(data: dict, source: str = "complexes") -> dict[str, ComplexDef]:
    """Validate a mapping name -> definition; errors name the complex and the field."""
    if not isinstance(data, dict):
        raise SolvmdError(f"{source}: expected a mapping name -> complex definition, got {type(data).__name__}")
    out: dict[str, ComplexDef] = {}
    for name, entry in data.items():
        if name in species_registry.registry():
            raise SolvmdError(f"{source}: {name}: the name is already a species in species.yaml; pick another")
        try:
            out[name] = ComplexDef.model_validate(entry)
        except ValidationError as err:
            raise SolvmdError(_complex_error(err, source, name)) from None
    return out


def _complex_error(err: ValidationError, source: str, name: str) -> str:
    """One line per bad field, ``<complex>.<field>: what is wrong`` (cross-field checks name their field)."""
    lines = [f"{source}: invalid complex {name}"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown field (misspelled?); allowed: {', '.join(ComplexDef.model_fields)}"
        m = re.match(r"^(\w+): (.*)$", msg, flags=re.S)
        if not loc and m and m.group(1) in ComplexDef.model_fields:
            loc, msg = m.group(1), m.group(2)
        lines.append(f"  {name}.{loc or '(top level)'}: {msg}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def registry() -> dict[str, ComplexDef]:
    """All complexes of ``forcefields/complexes.yaml`` keyed by name."""
    path = species_registry.FORCEFIELD_DIR / "complexes.yaml"
    if not path.exists():
        return {}
    return parse_complexes(yaml.safe_load(path.read_text()) or {}, str(path))


def is_complex(name: str) -> bool:
    return name in registry()


def get(name: str) -> ComplexDef:
    reg = registry()
    if name not in reg:
        raise SolvmdError(f"unknown complex {name!r}; known complexes: {', '.join(sorted(reg)) or 'none'}")
    return reg[name]


# ------------------------------------------------------------------ species-or-complex "units"


def unit_members(name: str) -> list[str]:
    """Species making up a packing unit, in residue order (a plain species is its own unit)."""
    return get(name).members if is_complex(name) else [species_registry.get(name).name]


def unit_charge(name: str) -> int:
    """Formal charge of a species or complex, e."""
    return get(name).charge if is_complex(name) else species_registry.get(name).charge


def unit_role(name: str) -> str:
    return get(name).role if is_complex(name) else species_registry.get(name).role


def unit_n_atoms(name: str) -> int:
    return sum(species_registry.get(m).n_atoms for m in unit_members(name))


def unit_molar_mass(name: str) -> float:
    """g/mol."""
    return sum(species_registry.get(m).molar_mass_g_mol for m in unit_members(name))


def unit_molar_volume(name: str) -> float:
    """cm^3/mol: sum of the members' molar volume estimates (bound solvent keeps its liquid volume)."""
    return sum(species_registry.get(m).molar_volume for m in unit_members(name))


def expand(units: dict[str, int]) -> dict[str, int]:
    """Packing-unit counts -> species counts (complexes replaced by their members), first-seen order."""
    out: dict[str, int] = {}
    for name, n in units.items():
        for m in unit_members(name):
            out[m] = out.get(m, 0) + n
    return out


def known_units() -> list[str]:
    return sorted(set(species_registry.registry()) | set(registry()))
