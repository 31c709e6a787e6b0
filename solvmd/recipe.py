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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from solvmd import complexes
from solvmd import species as species_registry
from solvmd.errors import SolvmdError, check_empty_blocks, validation_message
from solvmd.forcefield_settings import DEFAULT_CHARGE_SCALE, ForceFieldSettings  # noqa: F401 (re-exported)
from solvmd.io import read_yaml
from solvmd.pmf_spec import PMFSpec, load_specs


def _units_with_role(role: str) -> list[str]:
    return [n for n in complexes.known_units() if complexes.unit_role(n) == role]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _exactly_one(model: BaseModel, a: str, b: str) -> BaseModel:
    """Validator helper: exactly one of the fields ``a`` and ``b`` is set."""
    if (getattr(model, a) is None) == (getattr(model, b) is None):
        raise ValueError(f"give exactly one of {a} or {b}")
    return model


class Salt(_Strict):
    """One salt. Either ``cation`` + ``anion`` (stoichiometry from the formal charges)
    or an explicit ``formula`` (species -> count per formula unit), and exactly one of
    ``molarity_M`` (mol formula units per litre of solution) or ``molar_ratio``."""

    cation: str | None = Field(default=None, description="cation species or complex (`solvmd species`); with anion")
    anion: str | None = Field(default=None, description="anion species; with cation (stoichiometry from the charges)")
    formula: dict[str, int] | None = Field(
        default=None, description="or an explicit neutral formula unit: species -> count, e.g. {Mg: 1, Cl: 2}")
    molarity_M: float | None = Field(default=None, gt=0, description="formula units per litre of solution")
    molar_ratio: float | None = Field(default=None, gt=0, description="or moles relative to the other components")

    @field_validator("cation", "anion")
    @classmethod
    def _ion_role(cls, v: str | None, info) -> str | None:
        """A salt's cation/anion must be a charged species or complex of that sign."""
        if v is None:
            return v
        want = info.field_name
        if v not in complexes.known_units():
            raise ValueError(f"unknown species {v!r}; allowed {want}s: {', '.join(_units_with_role(want))}")
        role, q = complexes.unit_role(v), complexes.unit_charge(v)
        if role != want:
            kind = "a neutral solvent species (e.g. a diluent)" if role == "solvent" else f"a{'n' if role == 'anion' else ''} {role}"
            sign = "positive" if want == "cation" else "negative"
            where = "list it under solvents" if role == "solvent" else f"use it as the salt's {role}"
            raise ValueError(f"{v} is {kind} with charge {q:+d}, not a{'n' if want == 'anion' else ''} {want}: "
                             f"a{'n' if want == 'anion' else ''} {want} must be {sign}; {where}. "
                             f"Allowed {want}s: {', '.join(_units_with_role(want))}")
        return v

    @field_validator("formula")
    @classmethod
    def _formula_ions(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is None:
            return v
        for name, n in v.items():
            if name not in complexes.known_units():
                raise ValueError(f"{name}: unknown species; known: {', '.join(complexes.known_units())}")
            if complexes.unit_role(name) == "solvent":
                raise ValueError(f"{name}: a solvent (neutral, charge 0) in a salt formula; salts may only contain "
                                 "ions and charged complexes - list it under solvents")
            if n <= 0:
                raise ValueError(f"{name}: count must be > 0, got {n}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "Salt":
        _exactly_one(self, "molarity_M", "molar_ratio")
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
        """Species or complex -> count per formula unit; the formula unit is checked to be neutral."""
        if self.formula is not None:
            ions = dict(self.formula)
        else:
            qc, qa = complexes.unit_charge(self.cation), complexes.unit_charge(self.anion)
            lcm = qc * -qa // gcd(qc, -qa)
            ions = {self.cation: lcm // qc, self.anion: lcm // -qa}
        net = sum(complexes.unit_charge(n) * k for n, k in ions.items())
        if net != 0:
            raise SolvmdError(f"salt {ions} has net charge {net:+d} e per formula unit; a salt must be neutral")
        return ions

    @property
    def label(self) -> str:
        return "".join(f"{n}{k if k > 1 else ''}" for n, k in self.ions().items())


class Solvent(_Strict):
    """One solvent component: exactly one of ``volume_fraction`` or ``molar_ratio``."""

    species: str = Field(description="solvent species (`solvmd species`, role solvent)")
    volume_fraction: float | None = Field(
        default=None, gt=0, description="share of the pure liquids' volume (the fractions sum to 1)")
    molar_ratio: float | None = Field(default=None, gt=0, description="or moles relative to the other components")

    @model_validator(mode="after")
    def _check(self) -> "Solvent":
        return _exactly_one(self, "volume_fraction", "molar_ratio")


class Size(_Strict):
    """System size: ``salt_units`` (total salt formula units) or ``target_atoms``."""

    salt_units: int | None = Field(default=None, gt=0, le=1_000_000, description="total salt formula units")
    target_atoms: int | None = Field(default=None, gt=0, le=10_000_000,  # beyond any classical MD box solvmd packs
                                     description="or the approximate number of atoms")

    @model_validator(mode="after")
    def _check(self) -> "Size":
        return _exactly_one(self, "salt_units", "target_atoms")


class Packing(_Strict):
    """packmol settings: seed, minimum distance between molecules (angstrom), loop budget."""

    seed: int = Field(default=20240601, description="packmol random seed (recorded in manifest.json)")
    tolerance_A: float = Field(default=2.0, gt=0, description="minimum distance between atoms of different molecules")
    nloop: int = Field(default=200, gt=0, description="packmol loop budget per species")


class Recipe(_Strict):
    """A bulk electrolyte recipe (see ``systems/*.yaml``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="system name: results/<name>/")
    description: str = Field(default="", description="free text")
    salts: list[Salt] = Field(default_factory=list, description="salts (none: a pure solvent or mixture)")
    solvents: list[Solvent] = Field(min_length=1, description="solvent components")
    normalize: bool = Field(default=False, description="rescale solvent volume fractions that do not sum to 1")
    size: Size = Field(description="how big the box is")
    temperature_K: float = Field(default=298.15, gt=0, le=1000,  # liquid electrolytes; a typo guard
                                 description="temperature of the MD and of the PMF windows")
    pressure_bar: float = Field(default=1.01325, gt=0, le=10000, description="barostat pressure")
    charge_scale: float = Field(default=DEFAULT_CHARGE_SCALE, gt=0, le=1.0,
                                description="ionic charges x this (docs/science.md §4); undone for conductivity")
    packing: Packing = Field(default=Packing(), description="packmol settings")
    forcefield: ForceFieldSettings = Field(default=ForceFieldSettings(), description="nonbonded settings")
    pmf: list[PMFSpec] | None = Field(  # umbrella-sampling specs (one mapping or a list in the YAML)
        default=None, description="umbrella-sampling PMFs of this system: one mapping or a list")

    @field_validator("pmf", mode="before")
    @classmethod
    def _valid_pmf(cls, v):
        if v is None:
            return v
        try:
            return load_specs(v)
        except SolvmdError as err:
            raise ValueError(str(err)) from None

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
        for k, name in enumerate(names):
            if name in names[:k]:
                raise ValueError(f"solvents.{k}: solvent {name} listed twice (also solvents.{names.index(name)}); "
                                 "give it once")
        return v

    @model_validator(mode="after")
    def _compatible_templates(self) -> "Recipe":
        """All species (complex members included) must load into one ForceField and topology."""
        where: dict[str, str] = {}
        for k, salt in enumerate(self.salts):
            for unit in salt.ions():
                field = f"salts.{k}.formula.{unit}" if salt.formula else (
                    f"salts.{k}.cation" if unit == salt.cation else f"salts.{k}.anion")
                for m in complexes.unit_members(unit):
                    where.setdefault(m, field if m == unit else f"{field} (member of complex {unit})")
        for k, s in enumerate(self.solvents):
            where.setdefault(s.species, f"solvents.{k}.species")
        problems = species_registry.template_conflicts(list(where))
        if problems:
            raise ValueError("; ".join(f"{where[b]}: species {b} clashes with {a} ({where[a]}): {why}"
                                       for a, b, why in problems))
        return self

    @field_validator("salts")
    @classmethod
    def _distinct_salts(cls, v: list[Salt]) -> list[Salt]:
        """A salt listed twice would be counted once in the manifest but twice in the counts."""
        seen: dict[str, int] = {}
        for k, salt in enumerate(v):
            key = salt.label
            if key in seen:
                raise ValueError(f"salts.{k}: salt {key} is listed twice (also salts.{seen[key]}); "
                                 "give it once with the total molarity_M / molar_ratio")
            seen[key] = k
        return v

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "Recipe":
        fractions = [s.volume_fraction for s in self.solvents if s.volume_fraction is not None]
        if fractions and not self.normalize and abs(sum(fractions) - 1.0) > 1e-3:
            raise ValueError(f"solvents: volume_fraction values sum to {sum(fractions):.4g}, not 1; fix them, "
                             "or add `normalize: true` to rescale them to 1")
        return self

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


def parse_recipe(data: dict, source: str = "recipe") -> Recipe:
    """Validate a recipe dictionary; raises SolvmdError naming each bad field."""
    if not isinstance(data, dict):
        raise SolvmdError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    check_empty_blocks(data, Recipe, source, "recipe")
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise SolvmdError(validation_message(err, source, "recipe")) from None


def load_recipe(path: str | Path) -> Recipe:
    """Load and validate ``systems/<name>.yaml``."""
    path = Path(path)
    data = read_yaml(path, "recipe")
    return parse_recipe(data, str(path))


# --------------------------------------------------------------------------- interfaces
#
# An interface recipe (``systems/iface_*.yaml``) names a bulk electrolyte recipe and a
# surface; ``solvmd build`` dispatches on the presence of a ``surface:`` block
# (:func:`load_any_recipe`). Building is :func:`solvmd.assembly.interface.build_interface`.


class Slab(_Strict):
    """Liquid slab above the sheet: its thickness at the bulk density (nm), and the
    thickness of the layer the sheet takes out of the periodic box (nm), i.e.
    box z = liquid_thickness_nm + excluded_nm. ``excluded_nm`` only matters for NVT
    (barostat: none); with barostat: z the box height relaxes."""

    liquid_thickness_nm: float = Field(gt=0, description="liquid thickness at the bulk density")
    excluded_nm: float = Field(default=0.34, ge=0, description="layer the sheet takes out of the box (NVT only)")


class BulkDensity(_Strict):
    """Where the liquid density comes from: ``md`` (``md.json`` of a bulk NPT run of the
    same electrolyte: production mean), ``build`` (``manifest.json`` estimate of a bulk
    build), ``value`` (``g_cm3``) or ``estimate`` (ideal-mixing estimate of the recipe)."""

    source: Literal["estimate", "md", "build", "value"] = Field(
        default="estimate", description="md: a bulk run's production mean; build: its estimate; value; estimate")
    path: str | None = Field(default=None, description="the bulk run's md or build folder (source md / build)")
    g_cm3: float | None = Field(default=None, gt=0, description="the density (source value)")

    @model_validator(mode="after")
    def _check(self) -> "BulkDensity":
        if self.source in ("md", "build") and not self.path:
            raise ValueError(f"source {self.source} needs path (the bulk run's {self.source} folder)")
        if self.source == "value" and self.g_cm3 is None:
            raise ValueError("source value needs g_cm3")
        if self.source != "value" and self.g_cm3 is not None:
            raise ValueError("g_cm3 is only used with source: value")
        return self


class LJOverrideSpec(_Strict):
    """Explicit LJ pair between sheet atoms ``a`` and electrolyte atoms ``b``.

    ``a``: ``metal``, a sheet element (``Zn``, ``N``, ``C``) or a sheet role (``N_site``,
    ``N_graphitic``, ``N_pyridinic``, ``C_alpha``). ``b``: a species (``Li``: all its
    atoms), ``species:element`` (``DME:O``) or ``*:element`` (every electrolyte O)."""

    a: str = Field(description="sheet atoms: metal, an element (Zn, N, C) or a role (N_site, C_alpha, ...)")
    b: str = Field(description="electrolyte atoms: a species (Li), species:element (DME:O) or *:element")
    sigma_nm: float = Field(gt=0, description="Lennard-Jones sigma of the pair")
    epsilon_kJ_mol: float = Field(ge=0, description="Lennard-Jones epsilon of the pair")
    note: str = Field(default="", description="where the numbers come from")


class InterfaceRecipe(_Strict):
    """Electrolyte above a sheet (see ``systems/iface_*.yaml``).

    ``electrolyte``: the name of a bulk recipe (``systems/<name>.yaml``, looked up next
    to this file) or an inline recipe mapping; temperature, pressure, charge scaling,
    force-field settings and packing come from it (``packing`` here overrides).
    ``barostat``: ``z`` (NPT with only the box height scaled; default) or ``none`` (NVT
    at the bulk density with box z = slab thickness + excluded_nm).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="system name: results/<name>/")
    description: str = Field(default="", description="free text")
    electrolyte: Recipe | str = Field(description="a bulk recipe name (systems/<name>.yaml) or an inline recipe")
    electrolyte_source: str | None = Field(default=None, description="set by the loader: the recipe file used")
    surface: "SurfaceSpec" = Field(description="the sheet")
    slab: Slab = Field(description="the liquid slab above the sheet")
    density: BulkDensity = Field(default=BulkDensity(), description="where the liquid density comes from")
    barostat: Literal["z", "none"] = Field(default="z", description="z: NPT scaling only the box height; none: NVT")
    lj_overrides: list[LJOverrideSpec] = Field(default_factory=list, description="explicit sheet-electrolyte LJ pairs")
    packing: Packing | None = Field(default=None, description="packmol settings (default: the electrolyte's)")
    pmf: list[PMFSpec] | None = Field(  # umbrella-sampling specs (e.g. height, site_distance CVs)
        default=None, description="umbrella-sampling PMFs (height, site_distance, distance with hold)")

    _valid_pmf = field_validator("pmf", mode="before")(Recipe._valid_pmf.__func__)

    @property
    def bulk(self) -> Recipe:
        if not isinstance(self.electrolyte, Recipe):
            raise SolvmdError(f"interface recipe {self.name}: electrolyte {self.electrolyte!r} is not resolved; "
                              "load it with load_interface_recipe")
        return self.electrolyte


from solvmd.surface_recipe import SurfaceSpec  # noqa: E402

InterfaceRecipe.model_rebuild()


def is_interface_data(data) -> bool:
    return isinstance(data, dict) and "surface" in data


def _resolve_path(p: str, base: Path | None) -> Path:
    path = Path(p).expanduser()
    if path.is_absolute() or path.exists() or base is None:
        return path
    alt = base / path
    return alt if alt.exists() else path


def parse_interface_recipe(data: dict, source: str = "recipe", base_dir: str | Path | None = None) -> InterfaceRecipe:
    """Validate an interface recipe and resolve its electrolyte; errors name the field."""
    if not isinstance(data, dict):
        raise SolvmdError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    base = Path(base_dir) if base_dir is not None else None
    check_empty_blocks(data, InterfaceRecipe, source, "interface recipe")
    try:
        rec = InterfaceRecipe.model_validate(data)
    except ValidationError as err:
        raise SolvmdError(validation_message(err, source, "interface recipe")) from None
    update: dict = {}
    if isinstance(rec.electrolyte, str):
        name = rec.electrolyte
        candidates = [Path(name)] if name.endswith((".yaml", ".yml")) else [Path(f"{name}.yaml"), Path(name)]
        found = None
        for c in candidates:
            for p in ([base / c] if base is not None else []) + [c, Path("systems") / c]:
                if p.is_file():
                    found = p
                    break
            if found:
                break
        if found is None:
            where = f" next to {source}" if base is not None else ""
            raise SolvmdError(f"{source}: electrolyte: no recipe file {candidates[0]}{where} or in systems/; "
                              "give the name of a bulk recipe or an inline recipe mapping")
        bulk = load_recipe(found)
        if is_interface_data(read_yaml(found, "recipe")):
            raise SolvmdError(f"{source}: electrolyte: {found} is itself an interface recipe")
        update["electrolyte"] = bulk
        update["electrolyte_source"] = str(found)
    if rec.density.path is not None:
        update["density"] = rec.density.model_copy(update={"path": str(_resolve_path(rec.density.path, base))})
    if update:
        rec = rec.model_copy(update=update)
    from solvmd.surface_recipe import check_sheet_size, check_site_charges

    check_sheet_size(rec.surface, rec.bulk.forcefield.cutoff_nm)
    check_site_charges(rec.surface)
    return rec


def load_interface_recipe(path: str | Path) -> InterfaceRecipe:
    """Load ``systems/iface_<name>.yaml`` (electrolyte resolved next to it)."""
    path = Path(path)
    data = read_yaml(path, "recipe")
    return parse_interface_recipe(data, str(path), base_dir=path.parent)


def load_any_recipe(path: str | Path) -> "Recipe | InterfaceRecipe":
    """A bulk :class:`Recipe`, or an :class:`InterfaceRecipe` when the file has a ``surface:`` block."""
    path = Path(path)
    data = read_yaml(path, "recipe")
    if is_interface_data(data):
        return parse_interface_recipe(data, str(path), base_dir=path.parent)
    return parse_recipe(data, str(path))


def with_repeat(recipe: "Recipe | InterfaceRecipe", repeat: int) -> "Recipe | InterfaceRecipe":
    """The recipe of independent repeat ``repeat`` (1-based): packmol seed + repeat - 1, all else equal.

    Repeat 1 is the recipe itself; repeats of a PMF (``repeats:`` in its spec) differ only in
    their packing (and, through ``solvmd md --repeat``, their velocities)."""
    if repeat < 1:
        raise SolvmdError(f"--repeat: repeat numbers start at 1, got {repeat}")
    if repeat == 1:
        return recipe
    packing = recipe.packing if isinstance(recipe, Recipe) else (recipe.packing or recipe.bulk.packing)
    moved = packing.model_copy(update={"seed": packing.seed + repeat - 1})
    return recipe.model_copy(update={"packing": moved})
