"""The barostat a build asks for (manifest key ``barostat``)."""

from __future__ import annotations

import openmm
from openmm import unit

from solvmd.errors import SolvmdError

BAROSTATS = ("isotropic", "z", "none")


def make_barostat(kind: str | None, pressure_bar: float, temperature_K: float, interval_steps: int,
                  seed: int = 0) -> openmm.Force | None:
    """Barostat for manifest ``barostat`` = ``kind`` (absent = isotropic); pressure in bar, T in K.

    ``z``: MonteCarloAnisotropicBarostat scaling only the box height (frozen-sheet
    interfaces); ``none``: no barostat (NVT); ``isotropic``: MonteCarloBarostat.
    """
    kind = kind or "isotropic"
    if kind not in BAROSTATS:
        raise SolvmdError(f"manifest barostat {kind!r}: allowed {', '.join(BAROSTATS)}")
    if kind == "none":
        return None
    if kind == "z":
        p = pressure_bar
        baro = openmm.MonteCarloAnisotropicBarostat(openmm.Vec3(p, p, p) * unit.bar, temperature_K * unit.kelvin,
                                                    False, False, True, interval_steps)
    else:
        baro = openmm.MonteCarloBarostat(pressure_bar * unit.bar, temperature_K * unit.kelvin, interval_steps)
    baro.setRandomNumberSeed(seed)
    return baro
