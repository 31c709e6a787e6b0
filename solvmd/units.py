"""Physical constants, taken from ``scipy.constants`` (CODATA 2018), never retyped.

Ground floor: imports nothing from solvmd. Library internals use OpenMM units; these
serve the file boundary (g/cm^3, A^3, mol) and the analysis (SI).
"""

from scipy import constants as _c

AVOGADRO = _c.N_A  # 1/mol
BOLTZMANN_J_K = _c.k  # J/K
ELEMENTARY_CHARGE_C = _c.e  # C
KJ_PER_KCAL = _c.calorie  # J/cal = kJ/kcal: the thermochemical calorie, 4.184
CM3_PER_A3 = 1e-24
G_CM3_PER_AMU_A3 = 1.0 / AVOGADRO / CM3_PER_A3  # (amu / A^3) -> (g / cm^3), amu = g/mol / N_A
MOLAR_GAS_CONSTANT_KJ_MOL_K = _c.R * 1e-3  # k_B N_A, kJ/(mol K): kT per mole
