"""One home for the force-field defaults.

:class:`ForceFieldSettings` is the ``forcefield:`` block of a recipe, and its defaults are the
defaults of every other way into the force field: :func:`solvmd.forcefield.create_system`,
:func:`solvmd.mixing.apply_geometric_mixing`, the interface builder, the tools under
``forcefields/tools/`` and the benchmarks all read :data:`DEFAULTS` and
:data:`DEFAULT_CHARGE_SCALE` instead of spelling numbers of their own. A library caller and a
recipe that say nothing therefore get the same System (``tests/test_defaults.py``):

* ``mixing: split``: the exact OPLS geometric Lennard-Jones energy in two OpenMM
  ``NonbondedForce`` passes (:mod:`solvmd.mixing`);
* ``hydrogen_mass_amu: 3.0``: hydrogen mass repartitioning, for the 4 fs default timestep;
* ``correction_cutoff_nm: 0.5``: used by the ``fast`` form only;
* ``cutoff_nm: 1.0``, PME tolerance 5e-4, long-range dispersion correction on;
* ionic charges x 0.8 (``charge_scale``, a recipe field: docs/science.md §4).

No OpenMM import here: recipes load without it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_CHARGE_SCALE = 0.8  # ionic charges x 0.8 (docs/science.md §4); recorded, undone for conductivity


class ForceFieldSettings(BaseModel):
    """Nonbonded settings of a build (the recipe's ``forcefield:`` block).

    Cutoff (nm), PME tolerance, long-range dispersion correction; the combining rule and the
    form of geometric mixing (``split``: exact, repulsion and dispersion in two OpenMM
    NonbondedForces; ``exact``: the reference CustomNonbondedForce; ``fast``: Lorentz-Berthelot
    plus a geometric - LB correction inside ``correction_cutoff_nm``; :mod:`solvmd.mixing`) and
    hydrogen mass repartitioning (amu; ``null`` = natural masses)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cutoff_nm: float = Field(default=1.0, gt=0, description="real-space Coulomb and Lennard-Jones cutoff (nm)")
    ewald_error_tolerance: float = Field(default=5e-4, gt=0, description="PME accuracy (OpenMM ewaldErrorTolerance)")
    dispersion_correction: bool = Field(default=True, description="analytic long-range Lennard-Jones correction")
    combining_rule: Literal["geometric", "lorentz-berthelot"] = Field(
        default="geometric", description="geometric (OPLS) or lorentz-berthelot (stock OpenMM, for baselines)")
    mixing: Literal["split", "exact", "fast"] = Field(
        default="split", description="how the geometric energy is computed (solvmd/mixing.py)")
    correction_cutoff_nm: float = Field(
        default=0.5, gt=0, description="cutoff of the fast form's geometric - LB correction (nm); <= cutoff_nm")
    hydrogen_mass_amu: float | None = Field(
        default=3.0, ge=1.0, le=3.1, description="hydrogen mass after repartitioning (amu); null = natural masses")

    @model_validator(mode="after")
    def _correction_inside_cutoff(self):
        if self.correction_cutoff_nm > self.cutoff_nm:
            raise ValueError(f"correction_cutoff_nm = {self.correction_cutoff_nm} nm must not exceed "
                             f"cutoff_nm = {self.cutoff_nm} nm")
        return self


DEFAULTS = ForceFieldSettings()
