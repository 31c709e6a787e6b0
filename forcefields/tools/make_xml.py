#!/usr/bin/env python
"""Generate the solvmd species force-field XML files (OpenMM ForceField format).

Usage (from the repository root)::

    python forcefields/tools/make_xml.py            # write forcefields/*.xml
    python forcefields/tools/make_xml.py --check    # fail if the committed XMLs differ

What it does, per species of ``forcefields/species.yaml``:

1. assigns an atom type to every atom of ``Chem.AddHs(Chem.MolFromSmiles(smiles))``
   with an ordered list of SMARTS patterns (the first pattern whose first atom matches
   wins; an untyped atom is an error);
2. enumerates every bond, angle and proper dihedral of the RDKit graph and looks each
   up by its tuple of *generic* classes in the tables below (forward or reversed);
   a missing entry is an error (no silent gaps);
3. writes one XML per file named in species.yaml with species-prefixed type names
   (``DME-CM``) and class names (``DME_CT``), so any subset of files loads together.

Numbers are copied from the published parameter sets named in ``SOURCES.md``; every
table entry carries a short source tag, and entries that are *transferred* from a
chemically close published term (no published term exists for the exact class
combination) carry ``approx:`` tags; SOURCES.md lists them all.

Units of the tables (converted to OpenMM nm / kJ/mol / rad on output):

* bonds:  r0 (nm) and kb (kJ/mol/nm^2) for GROMACS-style entries ``bg``; r0 (A) and
  kb (kJ/mol/A^2) for CL&P ``il.ff``-style entries ``bc``. Both sources already use
  E = 1/2 kb (r - r0)^2 (i.e. 2 x the OPLS kcal/mol/A^2 value x 4.184), which is
  OpenMM's HarmonicBondForce convention.
* angles: theta0 (deg) and ka (kJ/mol/rad^2), E = 1/2 ka (theta - theta0)^2.
* torsions: OPLS Fourier V1..V4 in kJ/mol,
  E = V1/2 (1 + cos phi) + V2/2 (1 - cos 2 phi) + V3/2 (1 + cos 3 phi) + V4/2 (1 - cos 4 phi),
  written as PeriodicTorsionForce terms k_n = V_n / 2 with phase 0 (n odd) or pi (n even).
  GROMACS ``ffbonded.itp`` stores OPLS torsions as Ryckaert-Bellemans C0..C5; ``rb``
  converts them back (exactly) and checks that they are OPLS-representable.
* nonbonded: sigma (A), epsilon (kJ/mol) per type; charges in e (full, unscaled).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from rdkit import Chem

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from solvmd import species as species_registry  # noqa: E402
from solvmd.io import write_text_atomic  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import opls_types  # noqa: E402
from opls_types import AType, TypingError  # noqa: E402,F401

KCAL = 4.184
OCTA_ENERGY = "0.5*k*cos(theta)^2*(1+cos(theta))^2"
MASS = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998, "S": 32.066,
        "P": 30.974, "Li": 6.941, "Na": 22.990, "Mg": 24.305, "Cl": 35.453}


# ----------------------------------------------------------------------------------
# parameter constructors (keep the numbers exactly as printed in the source)
# ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bond:
    r0_nm: float
    k: float  # kJ/mol/nm^2, E = 1/2 k (r - r0)^2
    src: str


@dataclass(frozen=True)
class Angle:
    theta0_deg: float
    k: float  # kJ/mol/rad^2, E = 1/2 k (theta - theta0)^2
    src: str
    octahedral: bool = False  # X-M-X at an octahedral centre (cis 90 deg / trans 180 deg), see OCTA_ENERGY


@dataclass(frozen=True)
class Torsion:
    v: tuple[float, float, float, float]  # OPLS Fourier V1..V4, kJ/mol
    src: str


def bg(b0_nm, kb_kj_nm2, src):
    """Bond as printed in GROMACS oplsaa.ff/ffbonded.itp (nm, kJ/mol/nm^2)."""
    return Bond(b0_nm, kb_kj_nm2, src)


def bc(r0_a, kb_kj_a2, src):
    """Bond as printed in CL&P il.ff (A, kJ/mol/A^2, k/2 convention)."""
    return Bond(r0_a / 10.0, kb_kj_a2 * 100.0, src)


def an(theta0_deg, ka, src, octahedral=False):
    return Angle(theta0_deg, ka, src, octahedral)


def fk(v1, v2, v3, v4, src):
    """OPLS Fourier torsion with V in kJ/mol (CL&P il.ff 'opls' entries)."""
    return Torsion((v1, v2, v3, v4), src)


def rb(c0, c1, c2, c3, c4=0.0, c5=0.0, src=""):
    """GROMACS Ryckaert-Bellemans (func 3, kJ/mol) -> OPLS Fourier V1..V4 (kJ/mol).

    GROMACS: C0 = V2 + (V1+V3)/2, C1 = (-V1 + 3 V3)/2, C2 = -V2 + 4 V4, C3 = -2 V3,
    C4 = -4 V4, C5 = 0.
    """
    v4 = -c4 / 4.0
    v3 = -c3 / 2.0
    v2 = 4.0 * v4 - c2
    v1 = 3.0 * v3 - 2.0 * c1
    if abs(c5) > 1e-9 or abs(c0 - (v2 + 0.5 * (v1 + v3))) > 2e-4:
        raise ValueError(f"RB {c0, c1, c2, c3, c4, c5} is not an OPLS Fourier series ({src})")
    # GROMACS prints RB to 5 decimals: snap the resulting round-off (|V| < 5e-4 kJ/mol) to 0
    v = tuple(0.0 if abs(x) < 5e-4 else round(x, 5) for x in (v1, v2, v3, v4))
    return Torsion(v, src)


def approx(term, why):
    """A published term transferred to a class combination that has no published term."""
    return type(term)(**{**term.__dict__, "src": f"approx: {why} [{term.src}]"})


# ----------------------------------------------------------------------------------
# source tags (full references and DOIs in forcefields/SOURCES.md)
# ----------------------------------------------------------------------------------
OPLS = "OPLS-AA (Jorgensen 1996; GROMACS oplsaa.ff)"
OPLS_ACETAL = "OPLS-AA acetal/carbohydrate (Damm 1997; GROMACS oplsaa.ff)"
OPLS_TFE = "OPLS-AA trifluoroethanol (GROMACS oplsaa.ff)"
OPLS_ESTER = "OPLS-AA esters (GROMACS oplsaa.ff)"
OPLS_NITRILE = "OPLS-AA nitriles (GROMACS oplsaa.ff)"
OPLS_SULF = "OPLS-AA sulfones (GROMACS oplsaa.ff; S class SY/SY2)"
WJ = "OPLS-AA perfluoroalkanes (Watkins & Jorgensen 2001)"
PADUA = "semifluorinated alkanes (Padua 2002, via CL&P il.ff)"
CLP_NTF2 = "CL&P NTf2 (Canongia Lopes & Padua 2004, JPCB 108, 16893)"
CLP_FSI = "CL&P FSI (Shimizu et al. 2010, JPCB 114, 3592)"
CLP_PF6 = "CL&P PF6 (Canongia Lopes et al. 2004, JPCB 108, 2038)"
CLP_NO3 = "CL&P nitrate (Canongia Lopes et al. 2004, JPCB 108, 2038; old.il.ff)"
ACEVEDO = "OPLS-2009IL nitrate improper (Sambasivarao & Acevedo 2009)"

# ----------------------------------------------------------------------------------
# bonded tables, keyed by generic class tuples
# ----------------------------------------------------------------------------------
BONDS = {
    # OPLS-AA ethers / alkanes (GROMACS ffbonded.itp)
    ("CT", "CT"): bg(0.1529, 224262.4, OPLS),
    ("CT", "HC"): bg(0.1090, 284512.0, OPLS),
    ("CT", "OS"): bg(0.1410, 267776.0, OPLS),
    ("CO", "OS"): bg(0.1380, 267776.0, OPLS_ACETAL),
    ("CO", "HC"): bg(0.1090, 284512.0, OPLS_ACETAL),
    # fluoroalkyl (Watkins & Jorgensen 2001 / CL&P il.ff 'fluoroalkyl')
    ("CF", "F"): bc(1.332, 3071.1, WJ),
    ("CF", "CF"): bc(1.529, 2242.6, WJ),
    ("CF", "CT"): bc(1.529, 2242.6, PADUA),
    ("CF", "HC"): approx(bg(0.1090, 284512.0, OPLS), "C-H on a fluorinated carbon = CT-HC"),
    ("CF", "OS"): approx(bg(0.1410, 267776.0, OPLS), "fluorinated C-O(ether) = CT-OS"),
    # carbonates (class C/O: opls_771/772) and esters (class C_2/O_2: opls_465/466)
    ("C", "O"): bg(0.1229, 476976.0, OPLS),
    ("C", "OS"): bg(0.1327, 179075.2, OPLS + " (JCC 1990, 11, 1181)"),
    ("C_2", "O_2"): bg(0.1229, 476976.0, OPLS),
    ("C_2", "OS"): bg(0.1327, 179075.2, OPLS + " (JCC 1990, 11, 1181)"),
    ("C_2", "CT"): bg(0.1522, 265265.6, OPLS),
    # nitriles, sulfones
    ("CT", "CZ"): bg(0.1470, 326352.0, OPLS_NITRILE),
    ("CZ", "NZ"): bg(0.1157, 543920.0, OPLS_NITRILE),
    ("SY", "OY"): bg(0.1440, 585760.0, OPLS_SULF),
    ("SY", "CT"): bg(0.1770, 284512.0, OPLS_SULF),
    # CL&P anions (il.ff 2017/12/06; nitrate from old.il.ff 2013/10/08)
    ("FB", "CF"): bc(1.323, 3698.0, CLP_NTF2),
    ("CF", "SB"): bc(1.818, 1950.0, CLP_NTF2),
    ("SB", "OB"): bc(1.437, 5331.0, CLP_NTF2),
    ("NB", "SB"): bc(1.570, 3137.0, CLP_NTF2),
    ("FB", "SB"): bc(1.575, 1879.0, CLP_FSI),
    ("P", "FP"): bc(1.606, 3100.0, CLP_PF6),
    ("NN", "ON"): bc(1.226, 5307.0, CLP_NO3),
}

ANGLES = {
    # OPLS-AA ethers / alkanes
    ("HC", "CT", "HC"): an(107.8, 276.144, OPLS),
    ("CT", "CT", "HC"): an(110.7, 313.800, OPLS),
    ("CT", "CT", "CT"): an(112.7, 488.273, OPLS),
    ("CT", "OS", "CT"): an(109.5, 502.080, OPLS),
    ("CT", "CT", "OS"): an(109.5, 418.400, OPLS),
    ("HC", "CT", "OS"): an(109.5, 292.880, OPLS),
    # OPLS-AA acetal (DOL O-CH2-O)
    ("OS", "CO", "OS"): an(111.55, 774.876, OPLS_ACETAL),
    ("CO", "OS", "CT"): an(109.5, 502.080, OPLS_ACETAL),
    ("OS", "CO", "HC"): an(109.5, 292.880, OPLS_ACETAL),
    ("HC", "CO", "HC"): an(109.5, 276.144, OPLS_ACETAL),
    # fluoroalkyl
    ("F", "CF", "F"): an(109.1, 644.336, WJ),
    ("F", "CF", "CF"): an(109.5, 418.4, WJ),
    ("CF", "CF", "CT"): an(112.7, 488.3, PADUA),
    ("F", "CF", "CT"): an(109.5, 418.4, PADUA),
    ("HC", "CT", "CF"): an(110.7, 313.8, PADUA),
    ("F", "CF", "HC"): an(107.0, 334.72, "OPLS-AA HC-CT-F (GROMACS oplsaa.ff)"),
    ("HC", "CF", "CF"): approx(an(110.7, 313.8, OPLS), "H-C(F2)-C(F2) = HC-CT-CT"),
    ("F", "CF", "OS"): approx(an(109.5, 418.4, WJ), "F-C-O(ether) = F-CF-CT"),
    ("CF", "CF", "OS"): approx(an(109.5, 418.4, OPLS), "C(F)-C(F)-O = CT-CT-OS"),
    ("CF", "OS", "CT"): approx(an(109.5, 502.080, OPLS), "C(F)-O-C = CT-OS-CT"),
    ("CF", "CT", "OS"): approx(an(109.5, 418.4, OPLS), "C(F)-CH2-O = CT-CT-OS"),
    # carbonates and esters
    ("O", "C", "OS"): an(123.4, 694.544, OPLS),
    ("OS", "C", "OS"): approx(an(111.4, 677.808, OPLS_ESTER), "carbonate O-C(=O)-O = ester OS-C-CT"),
    ("C", "OS", "CT"): an(116.9, 694.544, OPLS),
    ("O_2", "C_2", "OS"): an(123.4, 694.544, OPLS_ESTER),
    ("C_2", "OS", "CT"): an(116.9, 694.544, OPLS_ESTER),
    ("OS", "C_2", "CT"): an(111.4, 677.808, OPLS_ESTER),
    ("CT", "C_2", "O_2"): an(120.4, 669.44, OPLS),
    ("C_2", "CT", "HC"): an(109.5, 292.88, OPLS),
    ("C_2", "CT", "CT"): an(111.1, 527.184, OPLS),
    # nitriles
    ("HC", "CT", "CZ"): an(108.5, 292.88, OPLS_NITRILE),
    ("CT", "CT", "CZ"): an(112.7, 488.273, OPLS_NITRILE),
    ("CT", "CZ", "NZ"): an(180.0, 1255.2, OPLS_NITRILE),
    # sulfones
    ("OY", "SY", "OY"): an(119.0, 870.272, OPLS_SULF),
    ("OY", "SY", "CT"): an(108.9, 619.232, OPLS_SULF),
    ("CT", "SY", "CT"): an(102.0, 518.816, OPLS_SULF),
    ("SY", "CT", "HC"): an(109.5, 292.88, OPLS_SULF),
    ("CT", "CT", "SY"): an(108.6, 418.4, OPLS_SULF),
    # CL&P anions
    ("FB", "CF", "FB"): an(107.1, 781.0, CLP_NTF2),
    ("FB", "CF", "SB"): an(111.7, 694.0, CLP_NTF2),
    ("OB", "SB", "OB"): an(118.5, 969.0, CLP_NTF2),
    ("CF", "SB", "OB"): an(102.6, 870.0, CLP_NTF2),
    ("NB", "SB", "OB"): an(113.6, 789.0, CLP_NTF2),
    ("NB", "SB", "CF"): an(103.5, 764.0, CLP_NTF2),
    ("SB", "NB", "SB"): an(125.6, 671.0, CLP_NTF2),
    ("FB", "SB", "OB"): an(104.1, 1077.0, CLP_FSI),
    ("FB", "SB", "NB"): an(103.0, 902.0, CLP_FSI),
    ("FP", "P", "FP"): an(90.0, 1165.0, CLP_PF6, octahedral=True),
    ("ON", "NN", "ON"): an(120.0, 1011.0, CLP_NO3),
}

# improper torsions: (central class, outer class x3) -> Torsion (only V2 used)
IMPROPERS = {
    ("NN", "ON", "ON", "ON"): fk(0.0, 8.368, 0.0, 0.0, ACEVEDO),
}

TFE_FCCO = rb(1.12968, 3.38904, 0.0, -4.51872, src=OPLS_TFE + " F-CT-CT-OH")
TORSIONS = {
    # OPLS-AA alkanes / ethers (GROMACS ffbonded.itp RB -> Fourier)
    ("HC", "CT", "CT", "HC"): rb(0.62760, 1.88280, 0.0, -2.51040, src=OPLS),
    ("CT", "CT", "CT", "HC"): rb(0.62760, 1.88280, 0.0, -2.51040, src=OPLS),
    ("CT", "CT", "CT", "CT"): rb(2.92880, -1.46440, 0.20920, -1.67360, src=OPLS),
    ("CT", "CT", "CT", "OS"): rb(2.87441, 0.58158, 2.09200, -5.54799, src=OPLS),
    ("HC", "CT", "CT", "OS"): rb(0.97905, 2.93716, 0.0, -3.91622, src=OPLS),
    ("OS", "CT", "CT", "OS"): rb(-1.15060, 1.15060, 0.0, 0.0, src=OPLS + " polyethers"),
    ("CT", "CT", "OS", "CT"): rb(1.71544, 2.84512, 1.04600, -5.60656, src=OPLS),
    ("HC", "CT", "OS", "CT"): rb(1.58992, 4.76976, 0.0, -6.35968, src=OPLS),
    # OPLS-AA acetal (class CO = O-C-O carbon)
    ("CT", "OS", "CO", "OS"): rb(-6.45801, 0.80961, 5.68187, -0.03347, src=OPLS_ACETAL),
    ("CT", "OS", "CO", "HC"): rb(1.58992, 4.76976, 0.0, -6.35968, src=OPLS_ACETAL),
    ("CO", "OS", "CT", "CT"): rb(1.71544, 2.84512, 1.04600, -5.60656, src=OPLS_ACETAL),
    ("CO", "OS", "CT", "HC"): rb(1.58992, 4.76976, 0.0, -6.35968, src=OPLS_ACETAL),
    # fluoroalkyl (CL&P il.ff 'fluoroalkyl' = Watkins & Jorgensen 2001 + Padua 2002)
    ("F", "CF", "CF", "F"): fk(-10.4600, 0.0, 1.0460, 0.0, WJ),
    ("F", "CF", "CF", "CT"): fk(0.0, 0.0, 2.7656, 0.0, PADUA),
    ("F", "CF", "CT", "HC"): fk(0.0, 0.0, 1.2134, 0.0, PADUA),
    ("HC", "CT", "CF", "CF"): fk(0.0, 0.0, 0.7573, 0.0, PADUA),
    # fluoroethers: transferred terms (no published term for these class tuples)
    ("F", "CF", "CT", "OS"): approx(TFE_FCCO, "F-C-CH2-O(ether) = F-C-C-O of trifluoroethanol"),
    ("F", "CF", "CF", "OS"): approx(TFE_FCCO, "F-C-CF2-O(ether) = F-C-C-O of trifluoroethanol"),
    ("CF", "CT", "OS", "CT"): approx(rb(1.71544, 2.84512, 1.04600, -5.60656, src=OPLS), "= CT-CT-OS-CT"),
    ("CF", "OS", "CT", "CF"): approx(rb(1.71544, 2.84512, 1.04600, -5.60656, src=OPLS), "= CT-OS-CT-CT"),
    ("CF", "CF", "OS", "CT"): approx(rb(1.71544, 2.84512, 1.04600, -5.60656, src=OPLS), "= CT-CT-OS-CT"),
    ("CF", "OS", "CT", "HC"): approx(rb(1.58992, 4.76976, 0.0, -6.35968, src=OPLS), "= CT-OS-CT-HC"),
    ("F", "CF", "OS", "CT"): approx(rb(1.58992, 4.76976, 0.0, -6.35968, src=OPLS), "F on C-O-C = HC-CT-OS-CT"),
    ("CF", "CF", "CT", "OS"): approx(rb(2.87441, 0.58158, 2.09200, -5.54799, src=OPLS), "= CT-CT-CT-OS"),
    ("HC", "CF", "CF", "OS"): approx(rb(0.97905, 2.93716, 0.0, -3.91622, src=OPLS), "= HC-CT-CT-OS"),
    ("HC", "CF", "CF", "F"): approx(fk(0.0, 0.0, 1.2134, 0.0, PADUA), "H-CF2-CF2-F = HC-CT-CF-F"),
    ("HC", "CF", "CF", "CT"): approx(rb(0.62760, 1.88280, 0.0, -2.51040, src=OPLS), "= HC-CT-CT-CT"),
    # carbonates (class C/O)
    ("O", "C", "OS", "CT"): rb(20.92, 0.0, -20.92, 0.0, src=OPLS + " CT-OS-C-O (acids & esters)"),
    ("OS", "C", "OS", "CT"): approx(rb(31.20637, -9.76754, -21.43881, 0.0, src=OPLS_ESTER),
                                    "carbonate O-C(O)-O-C = ester C-C(O)-O-C"),
    ("C", "OS", "CT", "HC"): rb(0.41421, 1.24265, 0.0, -1.65686, src=OPLS_ESTER),
    ("C", "OS", "CT", "CT"): rb(-2.19660, 5.20071, 0.52719, -3.53130, src=OPLS_ESTER),
    # esters (class C_2/O_2)
    ("O_2", "C_2", "OS", "CT"): rb(21.43881, 0.0, -21.43881, 0.0, src=OPLS_ESTER),
    ("CT", "C_2", "OS", "CT"): rb(31.20637, -9.76754, -21.43881, 0.0, src=OPLS_ESTER),
    ("C_2", "OS", "CT", "HC"): rb(0.41421, 1.24265, 0.0, -1.65686, src=OPLS_ESTER),
    ("C_2", "OS", "CT", "CT"): rb(-2.19660, 5.20071, 0.52719, -3.53130, src=OPLS_ESTER),
    ("HC", "CT", "C_2", "OS"): rb(0.27615, 0.82844, 0.0, -1.10458, src=OPLS_ESTER),
    ("HC", "CT", "C_2", "O_2"): rb(0.0, 0.0, 0.0, 0.0, src=OPLS + " (aldehyde, ketone, ester)"),
    ("CT", "CT", "C_2", "OS"): rb(-1.15688, -3.47063, 0.0, 4.62750, src=OPLS_ESTER),
    ("CT", "CT", "C_2", "O_2"): rb(3.10662, -3.77606, -5.13795, 5.80739, src=OPLS + " (aldehyde & ketone)"),
    ("C_2", "CT", "CT", "HC"): rb(-0.15899, -0.47698, 0.0, 0.63596, src=OPLS + " (aldehyde & ketone)"),
    ("C_2", "CT", "CT", "CT"): rb(-4.23421, 7.22159, 1.90790, -4.89528, src=OPLS + " (aldehyde & ketone)"),
    # nitriles
    ("NZ", "CZ", "CT", "HC"): rb(0.0, 0.0, 0.0, 0.0, src=OPLS_NITRILE + " NZ-CZ-CT-X"),
    ("NZ", "CZ", "CT", "CT"): rb(0.0, 0.0, 0.0, 0.0, src=OPLS_NITRILE + " NZ-CZ-CT-X"),
    ("CZ", "CT", "CT", "HC"): rb(0.76567, 2.29701, 0.0, -3.06269, src=OPLS_NITRILE + " (alkyne, nitrile)"),
    ("CZ", "CT", "CT", "CT"): approx(rb(2.92880, -1.46440, 0.20920, -1.67360, src=OPLS), "NC-C-C-C = CT-CT-CT-CT"),
    # sulfones (GROMACS writes the sulfone S class as SY2 in these rows)
    ("HC", "CT", "SY", "OY"): rb(0.73220, 2.19660, 0.0, -2.92880, src=OPLS_SULF),
    ("HC", "CT", "SY", "CT"): rb(0.73220, 2.19660, 0.0, -2.92880, src=OPLS_SULF),
    ("CT", "CT", "SY", "OY"): rb(0.0, 0.0, 0.0, 0.0, src=OPLS_SULF),
    ("CT", "CT", "SY", "CT"): rb(0.0, 0.0, 0.0, 0.0, src=OPLS_SULF),
    ("HC", "CT", "CT", "SY"): rb(0.73220, 2.19660, 0.0, -2.92880, src=OPLS_SULF),
    ("CT", "CT", "CT", "SY"): rb(3.92459, -3.92459, 0.0, 0.0, src=OPLS_SULF),
    # CL&P anions
    ("OB", "SB", "CF", "FB"): fk(0.0, 0.0, 1.4510, 0.0, CLP_NTF2),
    ("NB", "SB", "CF", "FB"): fk(0.0, 0.0, 1.3220, 0.0, CLP_NTF2),
    ("OB", "SB", "NB", "SB"): fk(0.0, 0.0, -0.0150, 0.0, CLP_NTF2),
    ("SB", "NB", "SB", "CF"): fk(32.7730, -10.4200, -3.1950, 0.0, CLP_NTF2),
    ("FB", "SB", "NB", "SB"): fk(13.4514, -12.3373, -8.4874, -2.8654, CLP_FSI),
}


# ----------------------------------------------------------------------------------
# species: atom types come from the general typer (opls_types.py); per species only the
# provenance note and, where fitted, per-atom QM charges
# ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeciesFF:
    name: str
    note: str
    # per-atom charges from a QM fit (forcefields/qm/<file>, written by a script in this folder);
    # they replace the type charges in the residue template; the types still give the LJ
    charges_json: str | None = None
    # per-atom charges given directly (solvmd species add: RESP or AM1-BCC), in atom order
    charges: tuple[float, ...] | None = None
    charges_note: str | None = None


QM_DIR = ROOT / "forcefields" / "qm"


def qm_charges(sp, spec: "SpeciesFF") -> list[float] | None:
    """Per-atom charges of ``spec.charges`` or ``spec.charges_json`` for registry species ``sp``
    (None if neither is set).

    Errors if the file is missing, was fitted for another SMILES or atom naming, or does not
    sum to the formal charge within 1e-6 e."""
    import json

    if spec.charges is not None:
        q = [float(x) for x in spec.charges]
        if len(q) != sp.n_atoms or abs(sum(q) - sp.charge) > 1e-6:
            raise ValueError(f"{sp.name}: {len(q)} charges summing to {sum(q):+.7f}; need {sp.n_atoms} summing "
                             f"to {sp.charge}")
        return q
    if spec.charges_json is None:
        return None
    path = QM_DIR / spec.charges_json
    if not path.exists():
        raise ValueError(f"{sp.name}: charge file {path} missing; run the generating script in forcefields/tools/")
    rec = json.loads(path.read_text())
    if rec.get("smiles") != sp.smiles or rec.get("atom_names") != sp.atom_names:
        raise ValueError(f"{sp.name}: {path} was fitted for SMILES {rec.get('smiles')!r} / atoms "
                         f"{rec.get('atom_names')}, but species.yaml has {sp.smiles!r} / {sp.atom_names}: "
                         "re-run the charge fit")
    q = [float(rec["charges"][a]) for a in sp.atom_names]
    if abs(sum(q) - sp.charge) > 1e-6:
        raise ValueError(f"{sp.name}: charges in {path} sum to {sum(q):+.7f}, formal charge {sp.charge}")
    return q


SPECIES = [
    # ---------------- ions ----------------
    SpeciesFF("Li", "Li+ LJ: Jensen & Jorgensen, JCTC 2006, 2, 1499"),
    SpeciesFF("Na", "Na+ LJ: Jensen & Jorgensen, JCTC 2006, 2, 1499"),
    SpeciesFF("Mg", "Mg2+ LJ: Aqvist, J. Phys. Chem. 1990, 94, 8021 (as OPLS-AA opls_411)"),
    SpeciesFF("Cl", "Cl- LJ: Jensen & Jorgensen, JCTC 2006, 2, 1499"),
    # ---------------- anions (CL&P) ----------------
    SpeciesFF("TFSI", "CL&P NTf2-: Canongia Lopes & Padua, JPCB 2004, 108, 16893"),
    SpeciesFF("FSI", "CL&P FSI-: Shimizu et al., JPCB 2010, 114, 3592"),
    SpeciesFF("PF6", "CL&P PF6-: Canongia Lopes, Deschamps & Padua, JPCB 2004, 108, 2038"),
    SpeciesFF("NO3", "CL&P NO3-: Canongia Lopes, Deschamps & Padua, JPCB 2004, 108, 2038 (old.il.ff)"),
    # ---------------- ethers (OPLS-AA) ----------------
    SpeciesFF("DME", "OPLS-AA ether types opls_180/181/182/185"),
    SpeciesFF("DOL", "OPLS-AA ether + acetal types opls_182/185/186/189/190"),
    SpeciesFF("THF", "OPLS-AA ether + alkane types opls_136/140/180/182/185"),
    # ---------------- fluorinated ethers (OPLS-AA fluoroalkane + ether types) ----------------
    SpeciesFF("BTFE", "LJ/bonded: OPLS-AA perfluoroalkane (Watkins & Jorgensen, JPCA 2001, 105, 4118) + ether types; "
              "charges: RESP HF/6-31G* (forcefields/qm/resp_BTFE.json)", charges_json="resp_BTFE.json"),
    SpeciesFF("TTE", "LJ/bonded: OPLS-AA perfluoroalkane (Watkins & Jorgensen, JPCA 2001, 105, 4118) + ether types; "
              "charges: RESP HF/6-31G* (forcefields/qm/resp_TTE.json)", charges_json="resp_TTE.json"),
]


# ----------------------------------------------------------------------------------
# graph enumeration and assembly
# ----------------------------------------------------------------------------------
def assign_types(sp, spec: SpeciesFF | None = None) -> list[AType]:
    """Types of registry species ``sp`` from the general typer (``spec`` is not used for typing)."""
    return opls_types.assign_types(sp.mol, sp.name, sp.atom_names)


def graph_terms(mol):
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    nbr = {a.GetIdx(): sorted(n.GetIdx() for n in a.GetNeighbors()) for a in mol.GetAtoms()}
    angles = []
    for j in nbr:
        for a in range(len(nbr[j])):
            for b in range(a + 1, len(nbr[j])):
                angles.append((nbr[j][a], j, nbr[j][b]))
    dihedrals = []
    for j, k in bonds:
        for i in nbr[j]:
            if i == k:
                continue
            for l in nbr[k]:
                if l in (j, i):
                    continue
                dihedrals.append((i, j, k, l))
    return bonds, angles, dihedrals


class MissingTermError(KeyError):
    """A bond, angle or torsion whose class tuple has no published (or transferred) term."""

    def __str__(self) -> str:
        return str(self.args[0])


def lookup(table, key, what, species, atoms=None, mol=None, names=None):
    if key in table:
        return key, table[key]
    rkey = tuple(reversed(key))
    if rkey in table:
        return rkey, table[rkey]
    where = ""
    if atoms is not None and mol is not None:
        where = " at atoms " + " - ".join(
            f"{i}{' ' + names[i] if names else ''} {opls_types.environment(mol, i)}" for i in atoms)
    raise MissingTermError(f"{species}: missing {what} term: no {what} parameters for classes {'-'.join(key)} "
                           f"(nor reversed){where}; add the published term (or a documented approx: transfer) "
                           "to the tables in forcefields/tools/make_xml.py")


def canonical(key):
    rkey = tuple(reversed(key))
    return min(key, rkey)


def f(x: float) -> str:
    return repr(round(float(x), 10))


def species_xml(sp, spec: SpeciesFF):
    """Return dict of XML fragments for one species, plus the list of sources used."""
    res = sp.residue
    mol = sp.mol
    types = assign_types(sp, spec)
    names = sp.atom_names
    bonds, angles, dihedrals = graph_terms(mol)
    cls = [t.cls for t in types]
    used_src: set[str] = set()

    def xc(c):
        return f"{res}_{c}"

    out = {"types": [], "residue": [], "bonds": [], "angles": [], "custom_angles": [],
           "propers": [], "impropers": [], "nonbonded": []}
    seen_types = {}
    for atom, t in zip(mol.GetAtoms(), types):
        if t.key in seen_types:
            u = seen_types[t.key]  # one key for two table entries only if their parameters are equal
            if (u.cls, u.sigma_a, u.eps_kj) != (t.cls, t.sigma_a, t.eps_kj):
                raise ValueError(f"{sp.name}: type key {t.key} used for two different types")
            continue
        seen_types[t.key] = t
        el = atom.GetSymbol()
        out["types"].append(f'  <Type name="{res}-{t.key}" class="{xc(t.cls)}" element="{el}" mass="{MASS[el]}"/>')
        out["nonbonded"].append(
            f'  <Atom type="{res}-{t.key}" sigma="{f(t.sigma_a / 10.0)}" epsilon="{f(t.eps_kj)}"/>'
            f"  <!-- {t.src} -->")

    total = 0.0
    out["residue"].append(f'  <Residue name="{res}">')
    qm = qm_charges(sp, spec)
    for k, (name, t) in enumerate(zip(names, types)):
        q = t.charge if qm is None else qm[k]
        out["residue"].append(f'   <Atom name="{name}" type="{res}-{t.key}" charge="{f(q)}"/>')
        total += q
    if qm is not None:
        used_src.add(spec.charges_note if spec.charges is not None else
                     f"charges: forcefields/qm/{spec.charges_json} (RESP, forcefields/tools/fluoroether_charges.py)")
    for i, j in bonds:
        out["residue"].append(f'   <Bond atomName1="{names[i]}" atomName2="{names[j]}"/>')
    out["residue"].append("  </Residue>")
    if abs(total - sp.charge) > 1e-9:
        raise ValueError(f"{sp.name}: template charges sum to {total}, formal charge {sp.charge}")

    done = set()
    for i, j in bonds:
        key, p = lookup(BONDS, (cls[i], cls[j]), "bond", sp.name, (i, j), mol, names)
        if canonical(key) in done:
            continue
        done.add(canonical(key))
        used_src.add(p.src)
        out["bonds"].append(f'  <Bond class1="{xc(key[0])}" class2="{xc(key[1])}" '
                            f'length="{f(p.r0_nm)}" k="{f(p.k)}"/>  <!-- {p.src} -->')
    done = set()
    for i, j, k in angles:
        key, p = lookup(ANGLES, (cls[i], cls[j], cls[k]), "angle", sp.name, (i, j, k), mol, names)
        if canonical(key) in done:
            continue
        done.add(canonical(key))
        used_src.add(p.src)
        attrs = f'class1="{xc(key[0])}" class2="{xc(key[1])}" class3="{xc(key[2])}"'
        if p.octahedral:
            if p.theta0_deg != 90.0:
                raise ValueError(f"{sp.name}: octahedral angle {key} must have theta0 = 90 deg")
            out["custom_angles"].append(
                f'  <Angle {attrs} k="{f(p.k)}"/>  <!-- {p.src}: k about 90 deg (cis); no trans term -->')
        else:
            out["angles"].append(f'  <Angle {attrs} angle="{f(math.radians(p.theta0_deg))}" k="{f(p.k)}"/>'
                                 f"  <!-- {p.src} -->")
    done = set()
    for i, j, k, l in dihedrals:
        key, p = lookup(TORSIONS, (cls[i], cls[j], cls[k], cls[l]), "torsion", sp.name, (i, j, k, l), mol,
                        names)
        if canonical(key) in done:
            continue
        done.add(canonical(key))
        used_src.add(p.src)
        terms = [(n, v / 2.0, 0.0 if n % 2 else math.pi) for n, v in enumerate(p.v, start=1) if v != 0.0]
        if not terms:  # keep an explicit (zero) term so the dihedral is visibly parameterized
            terms = [(3, 0.0, 0.0)]
        attrs = " ".join(f'periodicity{m}="{n}" phase{m}="{f(ph)}" k{m}="{f(k)}"'
                         for m, (n, k, ph) in enumerate(terms, start=1))
        out["propers"].append(f'  <Proper class1="{xc(key[0])}" class2="{xc(key[1])}" class3="{xc(key[2])}" '
                              f'class4="{xc(key[3])}" {attrs}/>  <!-- {p.src} -->')
    # impropers: centre atoms with three neighbours whose class tuple is listed
    for a in mol.GetAtoms():
        nb = [n.GetIdx() for n in a.GetNeighbors()]
        if len(nb) != 3:
            continue
        key = (cls[a.GetIdx()], *sorted(cls[n] for n in nb))
        if key in IMPROPERS and key not in done:
            done.add(key)
            p = IMPROPERS[key]
            used_src.add(p.src)
            terms = [(n, v / 2.0, 0.0 if n % 2 else math.pi) for n, v in enumerate(p.v, start=1) if v != 0.0]
            attrs = " ".join(f'periodicity{m}="{n}" phase{m}="{f(ph)}" k{m}="{f(k)}"'
                             for m, (n, k, ph) in enumerate(terms, start=1))
            out["impropers"].append(
                f'  <Improper class1="{xc(key[0])}" class2="{xc(key[1])}" class3="{xc(key[2])}" '
                f'class4="{xc(key[3])}" {attrs}/>  <!-- {p.src}; class1 = central atom -->')
    return out, used_src


def build_file(xml_name: str, members: list, generator: str = "forcefields/tools/make_xml.py - edit the generator, "
               "not this file") -> str:
    parts = {k: [] for k in ("types", "residue", "bonds", "angles", "custom_angles", "propers",
                             "impropers", "nonbonded")}
    sources: set[str] = set()
    for sp, spec in members:
        frag, used = species_xml(sp, spec)
        for k in parts:
            parts[k] += frag[k]
        sources.add(f"{sp.name}: {spec.note}")
        sources |= {s.rsplit("[", 1)[1].rstrip("]") if s.startswith("approx:") else s for s in used}
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             f"<!-- solvmd force field: {xml_name} ({', '.join(sp.name for sp, _ in members)}).",
             f"     GENERATED by {generator}.",
             "     Units: nm, kJ/mol, rad, e. Full (unscaled) charges; raw per-type sigma/epsilon",
             "     (OPLS geometric combining and ionic charge scaling are applied by solvmd.forcefield).",
             "     Sources (full references with DOI in forcefields/SOURCES.md):"]
    lines += [f"       - {s}" for s in sorted(sources)]
    lines += ["-->", "<ForceField>", " <AtomTypes>"] + parts["types"] + [" </AtomTypes>", " <Residues>"]
    lines += parts["residue"] + [" </Residues>"]
    if parts["bonds"]:
        lines += [" <HarmonicBondForce>"] + parts["bonds"] + [" </HarmonicBondForce>"]
    if parts["angles"]:
        lines += [" <HarmonicAngleForce>"] + parts["angles"] + [" </HarmonicAngleForce>"]
    if parts["custom_angles"]:
        lines += ["  <!-- Octahedral X-M-X angles. The published model has E = 1/2 k (theta - 90 deg)^2 for the",
                  "       12 cis pairs and no term for the 3 trans pairs; a class-based template cannot tell cis",
                  "       from trans, so all 15 get E = 1/2 k cos^2(theta) (1 + cos theta)^2, which equals",
                  "       1/2 k (theta - 90 deg)^2 to second order about 90 deg and is zero with zero curvature",
                  "       at 180 deg (= no trans term); its only minima are 90 and 180 deg. -->",
                  f' <CustomAngleForce energy="{OCTA_ENERGY}">',
                  '  <PerAngleParameter name="k"/>']
        lines += parts["custom_angles"] + [" </CustomAngleForce>"]
    if parts["propers"] or parts["impropers"]:
        lines += [" <PeriodicTorsionForce>"] + parts["propers"] + parts["impropers"] + [" </PeriodicTorsionForce>"]
    lines += [' <NonbondedForce coulomb14scale="0.5" lj14scale="0.5">',
              '  <UseAttributeFromResidue name="charge"/>']
    lines += parts["nonbonded"] + [" </NonbondedForce>", "</ForceField>", ""]
    return "\n".join(lines)


def generate() -> dict[str, str]:
    reg = species_registry.registry()
    specs = {s.name: s for s in SPECIES}
    missing = sorted(set(reg) - set(specs))
    if missing:
        raise ValueError(f"species in species.yaml without a force-field spec here: {missing}")
    files: dict[str, list] = {}
    for name, sp in reg.items():
        files.setdefault(sp.xml, []).append((sp, specs[name]))
    return {xml: build_file(xml, members) for xml, members in files.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    ap.add_argument("--outdir", default=str(species_registry.FORCEFIELD_DIR))
    args = ap.parse_args(argv)
    out = generate()
    stale = []
    for name, text in out.items():
        path = Path(args.outdir) / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:  # every file generated (and checked) before the first is written; each write atomic
            write_text_atomic(path, text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {stale}; run python forcefields/tools/make_xml.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
