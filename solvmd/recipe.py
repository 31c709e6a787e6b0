"""Typed recipe models (pydantic): what to build, loaded from ``systems/*.yaml``.

A recipe names salts (by molarity in mol/L of solution, or by molar ratio), solvents
(by volume fraction of the pure solvents, or by molar ratio), the system size, the
thermodynamic state and the ionic charge scaling. Every mistake stops here with one
message naming the field and what is allowed.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from solvmd import species as species_registry
from solvmd.errors import SolvmdError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Salt(_Strict):
    """One salt. Either ``cation`` + ``anion`` (stoichiometry from the formal charges)
    or an explicit ``formula`` (species -> count per formula unit), and exactly one of
    ``molarity_M`` (mol formula units per litre of solution) or ``molar_ratio``."""

    cation: str | None = None
    anion: str | None = None
    formula: dict[str, int] | None = None
    molarity_M: float | None = Field(default=None, gt=0)
    molar_ratio: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "Salt":
        if (self.molarity_M is None) == (self.molar_ratio is None):
            raise ValueError("give exactly one of molarity_M or molar_ratio")
        if self.formula is None and (self.cation is None or self.anion is None):
            raise ValueError("give cation and anion, or an explicit formula")
        if self.formula is not None and (self.cation or self.anion):
            raise ValueError("give cation/anion or formula, not both")
        try:
            self.ions()
        except SolvmdError as err:
            raise ValueError(str(err)) from None
        return self

    def ions(self) -> dict[str, int]:
        """Species -> count per formula unit; the formula unit is checked to be neutral."""
        if self.formula is not None:
            ions = dict(self.formula)
            for name, n in ions.items():
                sp = species_registry.get(name)
                if sp.role == "solvent":
                    raise SolvmdError(f"salt formula lists {name}, a solvent; salts may only contain ions")
                if n <= 0:
                    raise SolvmdError(f"salt formula: count of {name} must be > 0, got {n}")
        else:
            cat, an = species_registry.get(self.cation), species_registry.get(self.anion)
            if cat.charge <= 0:
                raise SolvmdError(f"salt cation {cat.name} has charge {cat.charge}; a cation must be positive")
            if an.charge >= 0:
                raise SolvmdError(f"salt anion {an.name} has charge {an.charge}; an anion must be negative")
            lcm = cat.charge * -an.charge // gcd(cat.charge, -an.charge)
            ions = {cat.name: lcm // cat.charge, an.name: lcm // -an.charge}
        net = sum(species_registry.get(n).charge * k for n, k in ions.items())
        if net != 0:
            raise SolvmdError(f"salt {ions} has net charge {net:+d} e per formula unit; a salt must be neutral")
        return ions

    @property
    def label(self) -> str:
        return "".join(f"{n}{k if k > 1 else ''}" for n, k in self.ions().items())


class Solvent(_Strict):
    """One solvent component: exactly one of ``volume_fraction`` or ``molar_ratio``."""

    species: str
    volume_fraction: float | None = Field(default=None, gt=0)
    molar_ratio: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "Solvent":
        if (self.volume_fraction is None) == (self.molar_ratio is None):
            raise ValueError("give exactly one of volume_fraction or molar_ratio")
        return self


class Size(_Strict):
    """System size: ``salt_units`` (total salt formula units) or ``target_atoms``."""

    salt_units: int | None = Field(default=None, gt=0)
    target_atoms: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "Size":
        if (self.salt_units is None) == (self.target_atoms is None):
            raise ValueError("give exactly one of salt_units or target_atoms")
        return self


class Packing(_Strict):
    """packmol settings: seed, minimum distance between molecules (angstrom), loop budget."""

    seed: int = 20240601
    tolerance_A: float = Field(default=2.0, gt=0)
    nloop: int = Field(default=200, gt=0)


class ForceFieldSettings(_Strict):
    """Nonbonded settings: cutoff (nm), PME tolerance, long-range dispersion correction."""

    cutoff_nm: float = Field(default=1.0, gt=0)
    ewald_error_tolerance: float = Field(default=5e-4, gt=0)
    dispersion_correction: bool = True
    combining_rule: Literal["geometric", "lorentz-berthelot"] = "geometric"


class Recipe(_Strict):
    """A bulk electrolyte recipe (see ``systems/*.yaml``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    salts: list[Salt] = Field(default_factory=list)
    solvents: list[Solvent] = Field(min_length=1)
    size: Size
    temperature_K: float = Field(default=298.15, gt=0)
    pressure_bar: float = Field(default=1.01325, gt=0)
    charge_scale: float = Field(default=0.8, gt=0, le=1.0)
    packing: Packing = Packing()
    forcefield: ForceFieldSettings = ForceFieldSettings()
    pmf: list[dict] | dict | None = None  # umbrella-sampling specs, validated by solvmd.pmf.load_specs

    @field_validator("pmf")
    @classmethod
    def _valid_pmf(cls, v):
        if v is not None:
            from solvmd.pmf.spec import load_specs

            try:
                load_specs(v)
            except SolvmdError as err:
                raise ValueError(str(err)) from None
        return v

    @field_validator("solvents")
    @classmethod
    def _solvents_are_solvents(cls, v: list[Solvent]) -> list[Solvent]:
        for s in v:
            try:
                sp = species_registry.get(s.species)
            except SolvmdError as err:
                raise ValueError(str(err)) from None
            if sp.role != "solvent":
                raise ValueError(f"{s.species} is a {sp.role}, not a solvent; put ions in salts")
        names = [s.species for s in v]
        if len(set(names)) != len(names):
            raise ValueError(f"solvent listed twice: {names}")
        return v

    @model_validator(mode="after")
    def _consistent_modes(self) -> "Recipe":
        salt_modes = {"molarity" if s.molarity_M is not None else "ratio" for s in self.salts}
        solv_modes = {"volume" if s.volume_fraction is not None else "ratio" for s in self.solvents}
        if len(salt_modes) > 1:
            raise ValueError("salts: use molarity_M for all salts or molar_ratio for all, not a mix")
        if len(solv_modes) > 1:
            raise ValueError("solvents: use volume_fraction for all solvents or molar_ratio for all, not a mix")
        if salt_modes == {"ratio"} and solv_modes == {"volume"}:
            raise ValueError("salts given as molar_ratio need solvents given as molar_ratio too")
        if not self.salts and self.size.salt_units is not None:
            raise ValueError("size.salt_units needs at least one salt; use size.target_atoms for a pure solvent")
        return self


def _format_validation_error(path: str, err: ValidationError) -> str:
    lines = [f"{path}: invalid recipe"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (misspelled?)"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_recipe(data: dict, source: str = "recipe") -> Recipe:
    """Validate a recipe dictionary; raises SolvmdError naming each bad field."""
    if not isinstance(data, dict):
        raise SolvmdError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise SolvmdError(_format_validation_error(source, err)) from None


def load_recipe(path: str | Path) -> Recipe:
    """Load and validate ``systems/<name>.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise SolvmdError(f"recipe file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SolvmdError(f"{path}: malformed YAML: {err}") from None
    return parse_recipe(data, str(path))
