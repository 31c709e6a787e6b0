"""Recipe -> molecule counts, estimated density and cubic box length.

Molarity mode: per litre of solution the salts take sum(c_i * V_i) of volume (V_i =
sum of the ions' partial molar volume estimates); the rest is the solvent mixture,
split by volume fraction of the pure liquids (ideal mixing). Molar-ratio mode: counts
follow the ratios directly. The density estimate is mass / estimated volume; NPT then
relaxes it, and both values are recorded.

Pre-assembled complexes (:mod:`solvmd.complexes`) are packing units: their volume and
mass are those of their members (bound solvent keeps its liquid molar volume), and
``Composition.units`` lists them, while ``Composition.counts`` gives the species counts
with every complex expanded into its members (what the force field and analysis see).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvmd import complexes
from solvmd import species as species_registry
from solvmd.errors import SolvmdError
from solvmd.recipe import Recipe
from solvmd.units import AVOGADRO



@dataclass(frozen=True)
class Composition:
    """Resolved composition.

    Attributes:
        units: packing unit (species or complex) -> number (insertion order: salts' ions, then solvents).
        density_g_cm3: estimated solution density.
        box_nm: cubic box edge length in nm for that density.
        concentrations_M: salt label -> molarity of the resolved box at the estimated density.
    """

    units: dict[str, int]
    density_g_cm3: float
    box_nm: float
    concentrations_M: dict[str, float]

    @property
    def counts(self) -> dict[str, int]:
        """Species name -> number of molecules/ions, complexes expanded into their members."""
        return complexes.expand(self.units)

    @property
    def n_atoms(self) -> int:
        return sum(species_registry.get(n).n_atoms * k for n, k in self.counts.items())

    @property
    def net_charge(self) -> int:
        return sum(species_registry.get(n).charge * k for n, k in self.counts.items())


def _per_unit_amounts(recipe: Recipe) -> tuple[dict[str, float], dict[str, float], float]:
    """Relative amounts (mol) of every species and of every salt, and the volume (cm^3)
    they occupy, for one 'unit' of composition (1 L of solution in molarity mode)."""
    salts = {s.label: (s.molarity_M if s.molarity_M is not None else s.molar_ratio) for s in recipe.salts}
    amounts: dict[str, float] = {}
    salt_volume = 0.0
    for salt in recipe.salts:
        n_salt = salts[salt.label]
        for ion, k in salt.ions().items():
            amounts[ion] = amounts.get(ion, 0.0) + n_salt * k
            salt_volume += n_salt * k * complexes.unit_molar_volume(ion)

    solvents = [(species_registry.get(s.species), s) for s in recipe.solvents]
    if recipe.solvents[0].volume_fraction is not None:
        total_fraction = sum(s.volume_fraction for _, s in solvents)
        solvent_volume = 1000.0 - salt_volume if recipe.salts else 1000.0
        if solvent_volume <= 0:
            raise SolvmdError(
                f"salts: the salts alone take {salt_volume:.0f} cm^3 per litre; lower molarity_M "
                "or give the composition as molar_ratio"
            )
        for sp, s in solvents:
            amounts[sp.name] = solvent_volume * s.volume_fraction / total_fraction * sp.density_g_cm3 / sp.molar_mass_g_mol
    else:
        for sp, s in solvents:
            amounts[sp.name] = s.molar_ratio
    volume = sum(n * complexes.unit_molar_volume(name) for name, n in amounts.items())
    return amounts, salts, volume


def resolve(recipe: Recipe) -> Composition:
    """Counts, density estimate and box for a recipe; raises SolvmdError on bad sizes."""
    amounts, salts, volume_cm3 = _per_unit_amounts(recipe)
    if recipe.size.salt_units is not None:
        scale = recipe.size.salt_units / sum(salts.values())
    else:
        atoms_per_unit = sum(n * complexes.unit_n_atoms(name) for name, n in amounts.items())
        scale = recipe.size.target_atoms / atoms_per_unit

    # Salts first, rounded as whole formula units so the box stays neutral.
    counts: dict[str, int] = {}
    units_by_salt: dict[str, int] = {}
    for salt in recipe.salts:
        units = units_by_salt[salt.label] = int(round(salts[salt.label] * scale))
        if units < 1:
            raise SolvmdError(
                f"size: salt {salt.label} gets {salts[salt.label] * scale:.2f} formula units; "
                "increase size.salt_units or size.target_atoms"
            )
        for ion, k in salt.ions().items():
            counts[ion] = counts.get(ion, 0) + units * k
    for s in recipe.solvents:
        n = int(round(amounts[s.species] * scale))
        if n < 1:
            raise SolvmdError(f"size: solvent {s.species} rounds to 0 molecules; increase the system size")
        counts[s.species] = n

    mass_g = sum(complexes.unit_molar_mass(name) * k for name, k in counts.items()) / AVOGADRO
    volume_est_cm3 = sum(complexes.unit_molar_volume(name) * k for name, k in counts.items()) / AVOGADRO
    density = mass_g / volume_est_cm3
    box_nm = float(np.cbrt(volume_est_cm3 * 1e21))
    conc = {label: units / AVOGADRO / (volume_est_cm3 * 1e-3) for label, units in units_by_salt.items()}
    comp = Composition(units=counts, density_g_cm3=density, box_nm=box_nm, concentrations_M=conc)
    if comp.net_charge != 0:  # cannot happen with neutral salts; guard against registry edits
        raise SolvmdError(f"resolved composition {comp.counts} has net charge {comp.net_charge:+d} e")
    return comp
