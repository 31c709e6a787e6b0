"""Issue 28: the general OPLS-AA typer, the shipped species regenerated through it, and
``solvmd species add`` (search path, AM1-BCC, bad inputs with nothing half-written)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from solvmd import species
from solvmd.errors import SolvmdError

TOOLS = Path(species.FORCEFIELD_DIR) / "tools"
sys.path.insert(0, str(TOOLS))
import make_xml  # noqa: E402
import opls_types  # noqa: E402


def _types(smiles):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    return mol, opls_types.assign_types(mol, smiles)


def _opls(smiles):
    """{element+index: opls number} for the heavy atoms, plus the set of H types."""
    mol, ts = _types(smiles)
    heavy = [opls_types.opls_number(t) for a, t in zip(mol.GetAtoms(), ts) if a.GetSymbol() != "H"]
    hyd = sorted({opls_types.opls_number(t) for a, t in zip(mol.GetAtoms(), ts) if a.GetSymbol() == "H"})
    return heavy, hyd, sum(t.charge for t in ts)


# published OPLS-AA types of reference molecules (GROMACS oplsaa.ff atomtypes.atp descriptions;
# Jorgensen et al. JACS 1996 for the ethers/alkanes; PC types 771-779 as printed there)
REFERENCE = {
    "COCCOC": (["opls_181", "opls_180", "opls_182", "opls_182", "opls_180", "opls_181"], ["opls_185"]),  # DME
    "C1CCOC1": (["opls_136", "opls_136", "opls_182", "opls_180", "opls_182"], ["opls_140", "opls_185"]),  # THF
    "CCCC": (["opls_135", "opls_136", "opls_136", "opls_135"], ["opls_140"]),  # butane
    "CC1COC(=O)O1": (["opls_776", "opls_775", "opls_774", "opls_773", "opls_772", "opls_771", "opls_773"],
                     ["opls_777", "opls_778", "opls_779"]),  # propylene carbonate
    "CC#N": (["opls_755", "opls_754", "opls_753"], ["opls_759"]),  # acetonitrile
    "COC(C)=O": (["opls_468", "opls_467", "opls_465", "opls_135", "opls_466"], ["opls_140", "opls_469"]),
    "CS(C)(=O)=O": (["opls_135", "opls_493", "opls_135", "opls_494", "opls_494"], ["opls_140"]),  # DMSO2
    "FC(F)(F)COCC(F)(F)F": (["opls_965", "opls_961"] + ["opls_965"] * 2 + ["opls_182", "opls_180", "opls_182",
                            "opls_961"] + ["opls_965"] * 3, ["opls_185"]),  # BTFE (Watkins-Jorgensen CF3 + ether)
}


@pytest.mark.parametrize("smiles", list(REFERENCE))
def test_types_equal_published_opls_types(smiles):
    heavy, hyd, _ = _opls(smiles)
    assert heavy == REFERENCE[smiles][0]
    assert hyd == REFERENCE[smiles][1]


@pytest.mark.parametrize("smiles", ["COCCOC", "C1CCOC1", "CCCC", "CC1COC(=O)O1", "CC#N", "COC(C)=O", "C1OCCO1",
                                    "O=C1OCCO1"])
def test_published_type_charges_are_neutral(smiles):
    """A molecule fully described by one OPLS-AA set gets reference charges summing to 0
    (EC with the PC types: 0.86 - 0.50 - 2 x 0.45 + 2 x 0.21 + 4 x 0.03 = 0)."""
    assert abs(_opls(smiles)[2]) < 1e-9


def test_ec_and_dmc_types():
    heavy, hyd, _ = _opls("O=C1OCCO1")  # EC: cyclic carbonate
    assert heavy == ["opls_771", "opls_772", "opls_773", "opls_774", "opls_774", "opls_773"] and hyd == ["opls_777"]
    heavy, hyd, _ = _opls("COC(=O)OC")  # DMC: linear carbonate, ester alkoxy methyls
    assert heavy == ["opls_468", "opls_773", "opls_772", "opls_771", "opls_773", "opls_468"] and hyd == ["opls_469"]


def test_shipped_species_regenerate_identically_through_the_general_typer():
    """make_xml --check as a test: all ten XML files of the 13 shipped species, byte for byte."""
    out = make_xml.generate()
    assert sorted(out) == sorted({sp.xml for sp in species.shipped_registry().values()})
    for name, text in out.items():
        assert text == (species.FORCEFIELD_DIR / name).read_text(), name
    assert make_xml.main(["--check"]) == 0


@pytest.mark.parametrize("smiles, words", [
    ("C[Fe]", ["atom 1", "Fe", "not in the OPLS-AA type table"]),        # organometallic
    ("[CH3]", ["atom 0", "radical"]),                                      # radical
    ("CCN", ["atom 2", "N (sp3", "matches no OPLS-AA type", "missing term: atom type"]),  # amine: no type
    ("CCF", ["atom 2", "F (", "matches no OPLS-AA type"]),                 # monofluoroalkane: no guessed F type
])
def test_untypeable_atom_gives_one_clear_error(smiles, words):
    with pytest.raises(opls_types.TypingError) as err:
        _types(smiles)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_missing_bonded_term_names_the_atoms(tmp_path):
    from solvmd.species_add import add_species

    with pytest.raises(SolvmdError, match=r"missing bond term: no bond parameters for classes CF-CZ .* at atoms 1 C1 C \(sp3; bonded to C, F, F, F"):
        add_species("TFAN", "FC(F)(F)C#N", density_g_cm3=1.0, charges="am1bcc", folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "species"
    monkeypatch.setenv(species.SPECIES_PATH_ENV, str(d))
    species.reload_registry()
    yield d
    monkeypatch.delenv(species.SPECIES_PATH_ENV)
    species.reload_registry()


@pytest.mark.skipif(shutil.which("antechamber") is None and not (Path(sys.executable).parent / "antechamber").exists(),
                    reason="AmberTools not installed")
def test_species_add_am1bcc_search_path_and_openmm(user_dir):
    """Acetonitrile (6 atoms, sqm < 1 s): written through the search path, charges sum to 0
    and are equal on the three H, the XML loads with the shipped files in one ForceField."""
    import openmm
    from openmm import app

    from solvmd.species_add import add_species

    dest = add_species("ACN", "CC#N", density_g_cm3=0.786, charges="am1bcc", log=lambda *_: None)
    assert dest == user_dir / "ACN"
    assert sorted(p.name for p in dest.iterdir()) == ["SOURCES.md", "acn.xml", "charges.json", "species.yaml"]
    sp = species.get("ACN")
    assert sp.user and sp.xml_path == dest / "acn.xml" and sp.residue == "ACN" and sp.density_g_cm3 == 0.786
    q = json.loads((dest / "charges.json").read_text())["charges"]
    assert abs(sum(q.values())) < 1e-9
    assert q["H1"] == q["H2"] == q["H3"]
    assert -0.6 < q["N1"] < -0.2 and q["C2"] > 0  # nitrile N negative, C positive
    text = sp.xml_path.read_text()
    assert "AM1-BCC" in text and 'type="ACN-CZ"' in text and 'type="ACN-NZ"' in text
    ff = app.ForceField(*(str(species.get(n).xml_path) for n in ("ACN", "DME", "Li", "TFSI")))
    top, pos = species.molecule_topology(sp)
    system = ff.createSystem(top, nonbondedMethod=app.NoCutoff)
    nb = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
    assert abs(sum(nb.getParticleParameters(i)[0]._value for i in range(system.getNumParticles()))) < 1e-9
    assert "ACN" in {s.name for s in species.registry().values()}
    from solvmd.species_add import add_species as again

    with pytest.raises(SolvmdError, match="clashes with a user species"):
        again("ACN", "CC#N", density_g_cm3=0.786, charges="am1bcc")


def test_symmetrize_sums_to_formal_charge_and_equalizes():
    from solvmd.species_add import symmetrize

    mol = Chem.AddHs(Chem.MolFromSmiles("COC(=O)OC"))  # DMC
    rng = np.random.default_rng(0)
    q = symmetrize(rng.normal(0, 0.3, mol.GetNumAtoms()), mol, 0)
    assert abs(q.sum()) < 1e-12
    assert q[0] == pytest.approx(q[5]) and q[1] == pytest.approx(q[4])
    h = [i for i, a in enumerate(mol.GetAtoms()) if a.GetSymbol() == "H"]
    assert np.ptp(q[h]) < 1e-12
    mol = Chem.AddHs(Chem.MolFromSmiles("F[P-](F)(F)(F)(F)F"))
    q = symmetrize(rng.normal(0, 0.3, 7), mol, -1)
    f = [i for i, a in enumerate(mol.GetAtoms()) if a.GetSymbol() == "F"]
    assert abs(q.sum() + 1) < 1e-12 and len(f) == 6 and np.ptp(q[f]) < 1e-12


@pytest.mark.parametrize("kwargs, msg", [
    (dict(name="BAD", smiles="C1CC(", density_g_cm3=1.0), "invalid SMILES"),
    (dict(name="BAD", smiles="C[N+](C)(C)C", density_g_cm3=1.0), "formal charge \\+1 but --role solvent"),
    (dict(name="DME", smiles="COCCOC", density_g_cm3=0.86), "clashes with a shipped species"),
    (dict(name="dme", smiles="COCCOC", density_g_cm3=0.86), "clashes with a shipped species"),
    (dict(name="BAD", smiles="COCCOC", density_g_cm3=0.86, residue="TFS"), "already used by species TFSI"),
    (dict(name="BAD", smiles="COCCOC", density_g_cm3=0.86, residue="ABCD"), "PDB limit is 3"),
    (dict(name="BAD", smiles="C" * 70, density_g_cm3=0.8), "the limit for species add"),
    (dict(name="BAD", smiles="COCCOC", density_g_cm3=0.0), "must be > 0"),
    (dict(name="BAD", smiles="COCCOC", density_g_cm3=-1.0), "must be > 0"),
    (dict(name="BAD", smiles="COCCOC"), "needs --density-g-cm3"),
    (dict(name="BAD", smiles="[Li+].[Cl-]", density_g_cm3=1.0), "disconnected parts"),
    (dict(name="BAD", smiles="CCN", density_g_cm3=0.7), "matches no OPLS-AA type"),
    (dict(name="1x", smiles="CC", density_g_cm3=0.5), "species name"),
])
def test_bad_input_one_error_nothing_written(user_dir, kwargs, msg):
    from solvmd.species_add import add_species

    with pytest.raises(SolvmdError, match=msg):
        add_species(charges="am1bcc", log=lambda *_: None, **kwargs)
    assert not user_dir.exists() or list(user_dir.iterdir()) == []


def test_cli_species_add_help_has_example():
    from solvmd.cli import build_parser

    p = build_parser()
    sub = next(a for a in p._actions if a.dest == "command").choices["species"]
    add = next(a for a in sub._actions if a.dest == "species_cmd").choices["add"]
    text = add.format_help()
    assert "example:" in text and "solvmd species add DMC" in text and "--charges" in text
