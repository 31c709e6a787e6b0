"""PMF blocks checked against their recipe before any job runs (Snakefile parse time).

A height or site coordinate on a bulk recipe, a site coordinate on a sheet without that metal,
an ion or partner species that the electrolyte does not contain: one :class:`PMFSpecError`
naming the recipe file, the pmf entry and the field.
"""

from __future__ import annotations

from pathlib import Path

from solvmd.errors import SolvmdError
from solvmd.pmf_spec import PMFSpec, PMFSpecError, load_specs


def _residues(bulk) -> set[str]:
    """Residue names of every species in a bulk recipe (salts, formulas, solvents)."""
    from solvmd import species

    reg = species.registry()
    names = {s.species for s in bulk.solvents}
    for salt in bulk.salts:
        names |= {n for n in (salt.cation, salt.anion) if n} | set(salt.formula or {})
    return {(reg[n].residue if n in reg else n).upper() for n in names}


def _check(spec: PMFSpec, surface, residues: set[str], where: str) -> None:
    cv = spec.cv
    if cv.kind in ("height", "site_distance") and surface is None:
        raise PMFSpecError(f"{where}: cv.kind {cv.kind} needs a sheet, but this is a bulk recipe (no surface:); "
                           "use a distance CV here")
    if cv.kind == "site_distance" and cv.site_element is not None and getattr(surface, "metal", None) != cv.site_element:
        raise PMFSpecError(f"{where}: cv.site_element {cv.site_element!r} is not the sheet's metal "
                           f"(surface kind {surface.kind}, metal {surface.metal}); a site_distance CV needs an M-N4 "
                           "sheet with that metal")
    for field in ("cation", "partner"):
        name = getattr(cv, field, None)
        if name is not None and name.upper() not in residues:
            raise PMFSpecError(f"{where}: cv.{field} {name!r} is not in the electrolyte (residues: "
                               f"{', '.join(sorted(residues))})")
    hold = getattr(cv, "hold", None)
    if hold is not None and surface is None:
        raise PMFSpecError(f"{where}: cv.hold holds the ion above a sheet, but this is a bulk recipe")


def check_recipe_pmfs(path) -> list[PMFSpec]:
    """The recipe's PMF specs, each checked against the recipe's electrolyte and surface."""
    from solvmd.recipe import InterfaceRecipe, load_any_recipe

    path = Path(path)
    try:
        recipe = load_any_recipe(path)
    except SolvmdError as err:
        raise PMFSpecError(str(err)) from None
    if not recipe.pmf:
        return []
    iface = isinstance(recipe, InterfaceRecipe)
    surface, bulk = (recipe.surface, recipe.bulk) if iface else (None, recipe)
    specs = load_specs(recipe.pmf)
    residues = _residues(bulk)
    for i, spec in enumerate(specs):
        _check(spec, surface, residues, f"{path}: pmf entry {i} ({spec.name})")
    return specs
