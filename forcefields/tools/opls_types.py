"""General OPLS-AA atom typing: one ordered SMARTS table over published OPLS-AA / CL&P types.

Every molecule that solvmd parameterizes (the shipped species through ``make_xml.py`` and a
user's molecule through ``solvmd species add``) is typed here. Rules are tried in order; the
first rule whose first SMARTS atom is the atom wins (most specific first). An atom no rule
matches is an error (:class:`TypingError`) naming the atom, its element, its bonded
environment and what is missing: nothing is guessed.

Numbers (charge e, sigma A, epsilon kJ/mol) are those of GROMACS ``share/top/oplsaa.ff/
ffnonbonded.itp`` (OPLS-AA, Jorgensen, Maxwell & Tirado-Rives, JACS 1996, 118, 11225, and the
extensions collected there) with the type number in each source tag, or of CL&P ``il.ff``
for the anions; full references in forcefields/SOURCES.md (section "General typer").

The type charge is the published reference charge. Shipped species without a QM charge file
use it; ``solvmd species add`` always replaces it with RESP or AM1-BCC charges (only the LJ
and the bonded class of a type are used there).

Coverage (see docs/species.md): alkanes; ethers, polyethers and cyclic ethers; acetals;
carbonates (cyclic: OPLS-AA propylene-carbonate types 771-779; linear: carbonate C/O 771-773
with the ester alkoxy types 468-469/490-492); esters (465-469, 490-492); nitriles (753-759);
sulfones (493/494); fluoroalkyl and fluoroether groups (Watkins & Jorgensen 2001 types
961-965, 958, and the TTE CHF2/CF2-O carbons); the ions Li+, Na+, Mg2+, Cl-; the anions
TFSI-, FSI-, PF6-, NO3- (CL&P).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from rdkit import Chem

KCAL = 4.184


@dataclass(frozen=True)
class AType:
    key: str        # type suffix: XML type name is f"{RES}-{key}"
    cls: str        # generic bonded class: XML class name is f"{RES}_{cls}"
    charge: float   # e (published reference charge; full formal charges for ions)
    sigma_a: float  # A
    eps_kj: float   # kJ/mol
    src: str


class TypingError(ValueError):
    """An atom no rule of the table types (message names atom, element, environment)."""


def t_oplsaa(key, cls, q, opls, sig, eps):
    return AType(key, cls, q, sig, eps, f"OPLS-AA {opls}")


# ----------------------------------------------------------------------------------
# the type table (GROMACS oplsaa.ff ffnonbonded.itp numbers unless the tag says otherwise)
# ----------------------------------------------------------------------------------
H_ETHER = t_oplsaa("HE", "HC", 0.03, "opls_185 H(COR)", 2.50, 0.12552)
O_ETHER = t_oplsaa("OS", "OS", -0.40, "opls_180 O dialkyl ether", 2.90, 0.58576)
O_ACETAL = t_oplsaa("OS", "OS", -0.40, "opls_186 O acetal ether", 2.90, 0.58576)  # = opls_180 numbers
C_METHOXY = t_oplsaa("CM", "CT", 0.11, "opls_181 C(H3OR)", 3.50, 0.276144)
C_ETHER = t_oplsaa("CE", "CT", 0.14, "opls_182 C(H2OR)", 3.50, 0.276144)
F_PERFLUORO = t_oplsaa("F", "F", -0.12, "opls_965 F perfluoroalkane (Watkins-Jorgensen)", 2.95, 0.221752)

CARBONATE = "[CX3](=[OX1])([OX2])[OX2]"
ESTER_C = "[CX3](=[OX1])([OX2])[#6]"

RULES: tuple[tuple[str, AType], ...] = (
    # ---------------- monatomic ions ----------------
    ("[Li+]", AType("Li", "Li", 1.0, 2.87, 0.0005 * KCAL, "Jensen-Jorgensen 2006 Li+")),
    ("[Na+]", AType("Na", "Na", 1.0, 4.07, 0.0005 * KCAL, "Jensen-Jorgensen 2006 Na+")),
    ("[Mg+2]", AType("Mg", "Mg", 2.0, 1.64447, 3.66118, "Aqvist 1990 Mg2+ = OPLS-AA opls_411")),
    ("[Cl-]", AType("Cl", "Cl", -1.0, 4.02, 0.71 * KCAL, "Jensen-Jorgensen 2006 Cl-")),
    # ---------------- anions (CL&P il.ff) ----------------
    ("[#9][CX4]([#9])([#9])[SX4](=O)(=O)[N-]", AType("F1", "FB", -0.16, 2.95, 0.22175, "CL&P F1")),
    ("[CX4]([#9])([#9])([#9])[SX4](=O)(=O)[N-]", AType("CBT", "CF", 0.35, 3.50, 0.27614, "CL&P CBT")),
    ("[#9][SX4](=O)(=O)[N-]", AType("FSI", "FB", -0.13, 2.95, 0.22175, "CL&P FSI")),
    ("[SX4](=O)(=O)[N-]", AType("SBT", "SB", 1.02, 3.55, 1.04600, "CL&P SBT")),
    ("[OX1]=[SX4][N-]", AType("OBT", "OB", -0.53, 2.96, 0.87864, "CL&P OBT")),
    ("[N-]([SX4])[SX4]", AType("NBT", "NB", -0.66, 3.25, 0.71128, "CL&P NBT")),
    ("[P-]([#9])([#9])([#9])([#9])([#9])[#9]", AType("P", "P", 1.34, 3.74, 0.83680, "CL&P P")),
    ("[#9][P-]", AType("FP", "FP", -0.39, 3.12, 0.25520, "CL&P FP")),
    ("[N+](=O)([O-])[O-]", AType("NN", "NN", 0.95, 3.06, 0.33800, "CL&P NN (old.il.ff)")),
    ("[OX1]~[N+](~[OX1])~[OX1]", AType("ON", "ON", -0.65, 2.77, 0.61000, "CL&P ON (old.il.ff)")),
    # ------- fluoroalkyl / fluoroether groups (Watkins & Jorgensen 2001): before every functional group -------
    ("[CX4](F)(F)F", t_oplsaa("C3F", "CF", 0.36, "opls_961 CF3 (Watkins-Jorgensen)", 3.50, 0.276144)),
    ("[CX4;H1](F)F", AType("CHF", "CF", 0.14, 3.50, 0.276144, "CHF2 carbon: LJ opls_962")),
    ("[#1][CX4](F)F", AType("HF", "HC", 0.10, 2.50, 0.12552, "opls_958 H in RCHF (tentative OPLS-AA)")),
    ("[CX4;H0](F)(F)[OX2]", AType("CF2O", "CF", 0.44, 3.50, 0.276144, "CF2-O carbon: LJ opls_962")),
    ("[CX4;H0](F)F", t_oplsaa("CF2", "CF", 0.24, "opls_962 CF2 (Watkins-Jorgensen)", 3.50, 0.276144)),
    ("[#9][CX4;$(C([#9])[#9])]", F_PERFLUORO),  # F on CF2/CF3/CHF2 only (no monofluoroalkane type)
    # ---------------- sulfones R-SO2-R' ----------------
    ("[SX4](=[OX1])(=[OX1])([#6])[#6]", t_oplsaa("SY", "SY", 1.374, "opls_493 S in sulfone", 3.55, 1.04600)),
    ("[OX1]=[SX4](=[OX1])([#6])[#6]", t_oplsaa("OY", "OY", -0.687, "opls_494 O in sulfone", 2.96, 0.71128)),
    # ---------------- nitriles R-C#N ----------------
    ("[CX2]#[NX1]", t_oplsaa("CZ", "CZ", 0.46, "opls_754 C in RCN nitrile", 3.30, 0.276144)),
    ("[NX1]#[CX2]", t_oplsaa("NZ", "NZ", -0.56, "opls_753 N in RCN nitrile", 3.20, 0.71128)),
    ("[CH3X4][CX2]#[NX1]", t_oplsaa("CZ3", "CT", -0.08, "opls_755 CH3 in CH3CN", 3.30, 0.276144)),
    ("[CH2X4][CX2]#[NX1]", t_oplsaa("CZ2", "CT", -0.02, "opls_756 CH2 in RCH2CN", 3.30, 0.276144)),
    ("[CH1X4][CX2]#[NX1]", t_oplsaa("CZ1", "CT", 0.04, "opls_757 CH in R2CHCN", 3.30, 0.276144)),
    ("[CH0X4][CX2]#[NX1]", t_oplsaa("CZ0", "CT", 0.10, "opls_758 C in R3CCN", 3.30, 0.276144)),
    ("[#1][CX4][CX2]#[NX1]", t_oplsaa("HZ", "HC", 0.06, "opls_759 alpha-H in nitriles", 2.50, 0.06276)),
    # ---------------- carbonates (cyclic and linear) ----------------
    (CARBONATE, t_oplsaa("CCB", "C", 0.86, "opls_772 carbonate C=O (propylene carbonate)", 3.75, 0.43932)),
    ("[OX1]=[CX3]([OX2])[OX2]", t_oplsaa("OCB", "O", -0.50, "opls_771 carbonate O= (propylene carbonate)",
                                         2.96, 0.87864)),
    ("[OX2]([#6])[CX3](=[OX1])[OX2]", t_oplsaa("OSC", "OS", -0.45, "opls_773 carbonate OS (propylene carbonate)",
                                               3.00, 0.71128)),
    ("[CH2X4;R][OX2;R][CX3;R](=[OX1])[OX2;R]", t_oplsaa("CR2", "CT", 0.21, "opls_774 ring CH2 (propylene carbonate)",
                                                        3.50, 0.276144)),
    ("[CH1X4;R][OX2;R][CX3;R](=[OX1])[OX2;R]", t_oplsaa("CR1", "CT", 0.16, "opls_775 ring CH (propylene carbonate)",
                                                        3.50, 0.276144)),
    ("[CH3X4][CX4;R][OX2;R][CX3;R](=[OX1])[OX2;R]", t_oplsaa("CMP", "CT", -0.10, "opls_776 CH3 (propylene carbonate)",
                                                             3.50, 0.276144)),
    ("[#1][CH2X4;R][OX2;R][CX3;R](=[OX1])[OX2;R]", t_oplsaa("HR2", "HC", 0.03, "opls_777 H on ring CH2 (propylene "
                                                            "carbonate)", 2.42, 0.06276)),
    ("[#1][CH1X4;R][OX2;R][CX3;R](=[OX1])[OX2;R]", t_oplsaa("HR1", "HC", 0.03, "opls_778 H on ring CH (propylene "
                                                            "carbonate)", 2.42, 0.06276)),
    ("[#1][CH3X4][CX4;R][OX2;R][CX3;R](=[OX1])[OX2;R]", t_oplsaa("HMP", "HC", 0.06, "opls_779 H on CH3 (propylene "
                                                                 "carbonate)", 2.42, 0.06276)),
    # ---------------- esters R-C(=O)-O-R' (and the alkoxy carbons of linear carbonates) ----------------
    (ESTER_C, t_oplsaa("CES", "C_2", 0.51, "opls_465 ester C=O", 3.75, 0.43932)),
    ("[OX1]=[CX3]([OX2])[#6]", t_oplsaa("OES", "O_2", -0.43, "opls_466 ester =O", 2.96, 0.87864)),
    ("[OX2]([#6])[CX3](=[OX1])[#6]", t_oplsaa("OSE", "OS", -0.33, "opls_467 ester -OR", 3.00, 0.71128)),
    ("[CH3X4][OX2][CX3]=[OX1]", t_oplsaa("CME", "CT", 0.16, "opls_468 methoxy C in esters", 3.50, 0.276144)),
    ("[CH2X4][OX2][CX3]=[OX1]", t_oplsaa("CEE", "CT", 0.19, "opls_490 C(H2OS) ethyl ester", 3.50, 0.276144)),
    ("[CH1X4][OX2][CX3]=[OX1]", t_oplsaa("CIE", "CT", 0.22, "opls_491 C(HOS) i-pr ester", 3.50, 0.276144)),
    ("[CH0X4][OX2][CX3]=[OX1]", t_oplsaa("CTE", "CT", 0.25, "opls_492 C(OS) t-bu ester", 3.50, 0.276144)),
    ("[#1][CX4][OX2][CX3]=[OX1]", t_oplsaa("HME", "HC", 0.03, "opls_469 H on the alkoxy C of esters", 2.42, 0.06276)),
    # ---------------- acetals O-CH2-O ----------------
    ("[CH2X4]([OX2])[OX2]", t_oplsaa("CA", "CO", 0.20, "opls_189 C(H2O2) acetal", 3.50, 0.276144)),
    ("[#1][CH2X4]([OX2])[OX2]", t_oplsaa("HA", "HC", 0.10, "opls_190 H(CHO2) acetal", 2.50, 0.12552)),
    ("[OX2]([CX4])[CH2X4][OX2]", O_ACETAL),
    # ---------------- ethers ----------------
    ("[CH3X4][OX2][CX4]", C_METHOXY),
    ("[CH2X4][OX2][CX4]", C_ETHER),
    ("[CH1X4][OX2][CX4]", t_oplsaa("CEH", "CT", 0.17, "opls_183 C(HOR)", 3.50, 0.276144)),
    ("[CH0X4][OX2][CX4]", t_oplsaa("CEQ", "CT", 0.20, "opls_184 C(OR)", 3.50, 0.276144)),
    ("[#1][CX4][OX2]", H_ETHER),
    ("[OX2]([CX4])[CX4]", O_ETHER),
    # ---------------- alkanes (also alkyl groups next to C=O, S or C#N) ----------------
    ("[CH4X4]", t_oplsaa("CH4", "CT", -0.24, "opls_138 CH4", 3.50, 0.276144)),
    ("[CH3X4]", t_oplsaa("CH3", "CT", -0.18, "opls_135 CH3 alkane", 3.50, 0.276144)),
    ("[CH2X4]", t_oplsaa("CB", "CT", -0.12, "opls_136 alkane CH2", 3.50, 0.276144)),
    ("[CH1X4]", t_oplsaa("CH1", "CT", -0.06, "opls_137 alkane CH", 3.50, 0.276144)),
    ("[CH0X4]([#6])([#6])([#6])[#6]", t_oplsaa("C4", "CT", 0.0, "opls_139 alkane C", 3.50, 0.276144)),
    ("[#1][CX4]", t_oplsaa("HC", "HC", 0.06, "opls_140 alkane H", 2.50, 0.12552)),
)

# elements a rule above can type; anything else is refused before matching
ELEMENTS = {"H", "C", "N", "O", "F", "S", "P", "Li", "Na", "Mg", "Cl"}


@lru_cache(maxsize=None)
def _patterns() -> tuple[tuple[Chem.Mol, AType, str], ...]:
    out = []
    for smarts, t in RULES:
        p = Chem.MolFromSmarts(smarts)
        if p is None:
            raise ValueError(f"bad SMARTS in the type table: {smarts!r}")
        out.append((p, t, smarts))
    return tuple(out)


def environment(mol: Chem.Mol, idx: int) -> str:
    """'C(sp3, 4 bonds: C, H, H, O)' style description of atom ``idx``."""
    a = mol.GetAtomWithIdx(idx)
    nb = sorted(n.GetSymbol() for n in a.GetNeighbors())
    bonds = sorted(f"{b.GetBondTypeAsDouble():g}" for b in a.GetBonds())
    q = a.GetFormalCharge()
    ring = ", in a ring" if a.IsInRing() else ""
    return (f"{a.GetSymbol()}{'%+d' % q if q else ''} ({str(a.GetHybridization()).lower()}{ring}; bonded to "
            f"{', '.join(nb) or 'nothing'}; bond orders {', '.join(bonds) or '-'})")


def check_chemistry(mol: Chem.Mol, label: str = "molecule") -> None:
    """Refuse what no OPLS-AA/CL&P rule here can describe, before typing: radicals,
    elements outside the table, metals bonded to anything (organometallics)."""
    for a in mol.GetAtoms():
        where = f"{label}: atom {a.GetIdx()} ({environment(mol, a.GetIdx())})"
        if a.GetNumRadicalElectrons():
            raise TypingError(f"{where} is a radical ({a.GetNumRadicalElectrons()} unpaired electron(s)); "
                              "OPLS-AA describes closed-shell molecules only")
        if a.GetSymbol() not in ELEMENTS:
            raise TypingError(f"{where}: element {a.GetSymbol()} is not in the OPLS-AA type table "
                              f"(forcefields/tools/opls_types.py knows {', '.join(sorted(ELEMENTS))})")
        if a.GetSymbol() in ("Li", "Na", "Mg") and a.GetDegree():
            raise TypingError(f"{where}: a metal bonded to other atoms (organometallic); the table has the "
                              "metals only as free ions")


def assign_types(mol: Chem.Mol, label: str = "molecule", names: list[str] | None = None) -> list[AType]:
    """OPLS-AA type of every atom of ``mol`` (explicit hydrogens), first matching rule wins.

    Raises :class:`TypingError` naming the first untypeable atom (index, name, element,
    environment)."""
    check_chemistry(mol, label)
    n = mol.GetNumAtoms()
    assigned: list[AType | None] = [None] * n
    for patt, t, _ in _patterns():
        for match in mol.GetSubstructMatches(patt, uniquify=False, maxMatches=100000):
            if assigned[match[0]] is None:
                assigned[match[0]] = t
        if all(x is not None for x in assigned):
            break
    missing = [i for i, t in enumerate(assigned) if t is None]
    if missing:
        i = missing[0]
        nm = f" {names[i]}" if names else ""
        more = f" (and {len(missing) - 1} more atom(s): {missing[1:6]})" if len(missing) > 1 else ""
        raise TypingError(f"{label}: atom {i}{nm} = {environment(mol, i)} matches no OPLS-AA type in "
                          f"forcefields/tools/opls_types.py{more}; missing term: atom type (LJ + class). "
                          "Add a published type with its SMARTS rule and source, or leave the molecule out")
    return assigned  # type: ignore[return-value]


def opls_number(t: AType) -> str | None:
    """'opls_NNN' named in a type's source tag, or None (CL&P and ion types)."""
    import re

    m = re.search(r"opls_(\d+)", t.src)
    return f"opls_{m.group(1)}" if m else None
