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
    # CL&P anions
    ("OB", "SB", "CF", "FB"): fk(0.0, 0.0, 1.4510, 0.0, CLP_NTF2),
    ("NB", "SB", "CF", "FB"): fk(0.0, 0.0, 1.3220, 0.0, CLP_NTF2),
    ("OB", "SB", "NB", "SB"): fk(0.0, 0.0, -0.0150, 0.0, CLP_NTF2),
    ("SB", "NB", "SB", "CF"): fk(32.7730, -10.4200, -3.1950, 0.0, CLP_NTF2),
    ("FB", "SB", "NB", "SB"): fk(13.4514, -12.3373, -8.4874, -2.8654, CLP_FSI),
}


# ----------------------------------------------------------------------------------
# atom types and species
# ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AType:
    key: str        # type suffix: XML type name is f"{RES}-{key}"
    cls: str        # generic class: XML class name is f"{RES}_{cls}"
    charge: float   # e (full formal charges; solvmd scales ionic charges itself)
    sigma_a: float  # A
    eps_kj: float   # kJ/mol
    src: str


# OPLS-AA nonbonded (GROMACS ffnonbonded.itp numbers; sigma A, epsilon kJ/mol)
def t_oplsaa(key, cls, q, opls, sig, eps):
    return AType(key, cls, q, sig, eps, f"OPLS-AA {opls}")


@dataclass(frozen=True)
class SpeciesFF:
    name: str
    typing: tuple[tuple[str, AType], ...]  # (SMARTS, type); first SMARTS atom is typed
    note: str
    # per-atom charges from a QM fit (forcefields/qm/<file>, written by a script in this folder);
    # they replace the type charges in the residue template; the types still give the LJ
    charges_json: str | None = None


QM_DIR = ROOT / "forcefields" / "qm"


def qm_charges(sp, spec: "SpeciesFF") -> list[float] | None:
    """Per-atom charges of ``spec.charges_json`` for registry species ``sp`` (None if unset).

    Errors if the file is missing, was fitted for another SMILES or atom naming, or does not
    sum to the formal charge within 1e-6 e."""
    import json

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


H_ETHER = t_oplsaa("HE", "HC", 0.03, "opls_185 H(COR)", 2.50, 0.12552)
O_ETHER = t_oplsaa("OS", "OS", -0.40, "opls_180 O dialkyl ether", 2.90, 0.58576)
C_METHOXY = t_oplsaa("CM", "CT", 0.11, "opls_181 C(H3OR)", 3.50, 0.276144)
C_ETHER = t_oplsaa("CE", "CT", 0.14, "opls_182 C(H2OR)", 3.50, 0.276144)
F_PERFLUORO = t_oplsaa("F", "F", -0.12, "opls_965 F perfluoroalkane (Watkins-Jorgensen)", 2.95, 0.221752)

SPECIES = [
    # ---------------- ions ----------------
    SpeciesFF("Li", (("[Li+]", AType("Li", "Li", 1.0, 2.87, 0.0005 * KCAL, "Jensen-Jorgensen 2006 Li+")),),
              "Li+ LJ: Jensen & Jorgensen, JCTC 2006, 2, 1499"),
    SpeciesFF("Na", (("[Na+]", AType("Na", "Na", 1.0, 4.07, 0.0005 * KCAL, "Jensen-Jorgensen 2006 Na+")),),
              "Na+ LJ: Jensen & Jorgensen, JCTC 2006, 2, 1499"),
    SpeciesFF("Mg", (("[Mg+2]", AType("Mg", "Mg", 2.0, 1.64447, 3.66118, "Aqvist 1990 Mg2+ = OPLS-AA opls_411")),),
              "Mg2+ LJ: Aqvist, J. Phys. Chem. 1990, 94, 8021 (as OPLS-AA opls_411)"),
    SpeciesFF("Cl", (("[Cl-]", AType("Cl", "Cl", -1.0, 4.02, 0.71 * KCAL, "Jensen-Jorgensen 2006 Cl-")),),
              "Cl- LJ: Jensen & Jorgensen, JCTC 2006, 2, 1499"),
    # ---------------- anions (CL&P) ----------------
    SpeciesFF("TFSI", (
        ("[#9][CX4]", AType("F1", "FB", -0.16, 2.95, 0.22175, "CL&P F1")),
        ("[CX4]", AType("CBT", "CF", 0.35, 3.50, 0.27614, "CL&P CBT")),
        ("[SX4]", AType("SBT", "SB", 1.02, 3.55, 1.04600, "CL&P SBT")),
        ("[OX1]", AType("OBT", "OB", -0.53, 2.96, 0.87864, "CL&P OBT")),
        ("[#7]", AType("NBT", "NB", -0.66, 3.25, 0.71128, "CL&P NBT")),
    ), "CL&P NTf2-: Canongia Lopes & Padua, JPCB 2004, 108, 16893"),
    SpeciesFF("FSI", (
        ("[#9]", AType("FSI", "FB", -0.13, 2.95, 0.22175, "CL&P FSI")),
        ("[SX4]", AType("SBT", "SB", 1.02, 3.55, 1.04600, "CL&P SBT")),
        ("[OX1]", AType("OBT", "OB", -0.53, 2.96, 0.87864, "CL&P OBT")),
        ("[#7]", AType("NBT", "NB", -0.66, 3.25, 0.71128, "CL&P NBT")),
    ), "CL&P FSI-: Shimizu et al., JPCB 2010, 114, 3592"),
    SpeciesFF("PF6", (
        ("[#15]", AType("P", "P", 1.34, 3.74, 0.83680, "CL&P P")),
        ("[#9]", AType("FP", "FP", -0.39, 3.12, 0.25520, "CL&P FP")),
    ), "CL&P PF6-: Canongia Lopes, Deschamps & Padua, JPCB 2004, 108, 2038"),
    SpeciesFF("NO3", (
        ("[#7]", AType("NN", "NN", 0.95, 3.06, 0.33800, "CL&P NN (old.il.ff)")),
        ("[#8]", AType("ON", "ON", -0.65, 2.77, 0.61000, "CL&P ON (old.il.ff)")),
    ), "CL&P NO3-: Canongia Lopes, Deschamps & Padua, JPCB 2004, 108, 2038 (old.il.ff)"),
    # ---------------- ethers (OPLS-AA) ----------------
    SpeciesFF("DME", (
        ("[CH3X4][OX2]", C_METHOXY),
        ("[CH2X4][OX2]", C_ETHER),
        ("[OX2]", O_ETHER),
        ("[#1][CX4]", H_ETHER),
    ), "OPLS-AA ether types opls_180/181/182/185"),
    SpeciesFF("DOL", (
        ("[CH2X4]([OX2])[OX2]", t_oplsaa("CA", "CO", 0.20, "opls_189 C(H2O2) acetal", 3.50, 0.276144)),
        ("[#1][CH2X4]([OX2])[OX2]", t_oplsaa("HA", "HC", 0.10, "opls_190 H(CHO2) acetal", 2.50, 0.12552)),
        ("[CH2X4][OX2]", C_ETHER),
        ("[#1][CX4]", H_ETHER),
        ("[OX2]", t_oplsaa("OS", "OS", -0.40, "opls_186 O acetal ether", 2.90, 0.58576)),
    ), "OPLS-AA ether + acetal types opls_182/185/186/189/190"),
    SpeciesFF("THF", (
        ("[CH2X4][OX2]", C_ETHER),
        ("[#1][CX4][OX2]", H_ETHER),
        ("[CH2X4]", t_oplsaa("CB", "CT", -0.12, "opls_136 alkane CH2", 3.50, 0.276144)),
        ("[#1][CX4]", t_oplsaa("HC", "HC", 0.06, "opls_140 alkane H", 2.50, 0.12552)),
        ("[OX2]", O_ETHER),
    ), "OPLS-AA ether + alkane types opls_136/140/180/182/185"),
    # ---------------- fluorinated ethers (OPLS-AA fluoroalkane + ether types) ----------------
    SpeciesFF("BTFE", (
        ("[CX4](F)(F)F", t_oplsaa("C3F", "CF", 0.36, "opls_961 CF3 (Watkins-Jorgensen)", 3.50, 0.276144)),
        ("[#9]", F_PERFLUORO),
        ("[CH2X4][OX2]", C_ETHER),
        ("[#1][CX4]", H_ETHER),
        ("[OX2]", O_ETHER),
    ), "LJ/bonded: OPLS-AA perfluoroalkane (Watkins & Jorgensen, JPCA 2001, 105, 4118) + ether types; "
       "charges: RESP HF/6-31G* (forcefields/qm/resp_BTFE.json)", charges_json="resp_BTFE.json"),
    SpeciesFF("TTE", (
        ("[CX4;H1](F)F", AType("CHF", "CF", 0.14, 3.50, 0.276144, "CHF2 carbon: LJ opls_962")),
        ("[#1][CX4](F)F", AType("HF", "HC", 0.10, 2.50, 0.12552, "opls_958 H in RCHF (tentative OPLS-AA)")),
        ("[CX4;H0](F)(F)[OX2]", AType("CF2O", "CF", 0.44, 3.50, 0.276144, "CF2-O carbon: LJ opls_962")),
        ("[CX4;H0](F)F", t_oplsaa("CF2", "CF", 0.24, "opls_962 CF2 (Watkins-Jorgensen)", 3.50, 0.276144)),
        ("[CH2X4][OX2]", C_ETHER),
        ("[#1][CX4]", H_ETHER),
        ("[#9]", F_PERFLUORO),
        ("[OX2]", O_ETHER),
    ), "LJ/bonded: OPLS-AA perfluoroalkane (Watkins & Jorgensen, JPCA 2001, 105, 4118) + ether types; "
       "charges: RESP HF/6-31G* (forcefields/qm/resp_TTE.json)", charges_json="resp_TTE.json"),
]


# ----------------------------------------------------------------------------------
# graph enumeration and assembly
# ----------------------------------------------------------------------------------
def assign_types(sp, spec: SpeciesFF) -> list[AType]:
    mol = sp.mol
    assigned: list[AType | None] = [None] * mol.GetNumAtoms()
    for smarts, atype in spec.typing:
        patt = Chem.MolFromSmarts(smarts)
        if patt is None:
            raise ValueError(f"{sp.name}: bad SMARTS {smarts!r}")
        for match in mol.GetSubstructMatches(patt, uniquify=False, maxMatches=100000):
            if assigned[match[0]] is None:
                assigned[match[0]] = atype
    missing = [f"{n}" for n, t in zip(sp.atom_names, assigned) if t is None]
    if missing:
        raise ValueError(f"{sp.name}: atoms without a type: {missing}")
    return assigned  # type: ignore[return-value]


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


def lookup(table, key, what, species):
    if key in table:
        return key, table[key]
    rkey = tuple(reversed(key))
    if rkey in table:
        return rkey, table[rkey]
    raise KeyError(f"{species}: no {what} parameters for classes {key} (nor reversed)")


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
            if seen_types[t.key] != t:
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
        used_src.add(f"charges: forcefields/qm/{spec.charges_json} (RESP, forcefields/tools/fluoroether_charges.py)")
    for i, j in bonds:
        out["residue"].append(f'   <Bond atomName1="{names[i]}" atomName2="{names[j]}"/>')
    out["residue"].append("  </Residue>")
    if abs(total - sp.charge) > 1e-9:
        raise ValueError(f"{sp.name}: template charges sum to {total}, formal charge {sp.charge}")

    done = set()
    for i, j in bonds:
        key, p = lookup(BONDS, (cls[i], cls[j]), "bond", sp.name)
        if canonical(key) in done:
            continue
        done.add(canonical(key))
        used_src.add(p.src)
        out["bonds"].append(f'  <Bond class1="{xc(key[0])}" class2="{xc(key[1])}" '
                            f'length="{f(p.r0_nm)}" k="{f(p.k)}"/>  <!-- {p.src} -->')
    done = set()
    for i, j, k in angles:
        key, p = lookup(ANGLES, (cls[i], cls[j], cls[k]), "angle", sp.name)
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
        key, p = lookup(TORSIONS, (cls[i], cls[j], cls[k], cls[l]), "torsion", sp.name)
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


def build_file(xml_name: str, members: list) -> str:
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
             "     GENERATED by forcefields/tools/make_xml.py - edit the generator, not this file.",
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
