"""Recipes: validation errors name the field; counts follow the composition exactly."""

import glob

import pytest

from solvmd import species
from solvmd.assembly.composition import resolve
from solvmd.errors import SolvmdError
from solvmd.recipe import load_recipe, parse_recipe

BASE = {
    "name": "t",
    "salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 1.0}],
    "solvents": [{"species": "DOL", "volume_fraction": 0.5}, {"species": "DME", "volume_fraction": 0.5}],
    "size": {"salt_units": 100},
}


def _with(**changes):
    d = {k: v for k, v in BASE.items()}
    d.update(changes)
    return d


def _is_interface(path: str) -> bool:
    """Interface recipes (a ``surface:`` block) are tested in tests/test_interface*.py."""
    return any(line.startswith("surface:") for line in open(path).read().splitlines())


@pytest.mark.parametrize("path", sorted(p for p in glob.glob("systems/*.yaml") if not _is_interface(p)))
def test_every_recipe_resolves_neutral(root, path):
    recipe = load_recipe(root / path)
    comp = resolve(recipe)
    assert comp.net_charge == 0
    assert comp.box_nm >= 2 * recipe.forcefield.cutoff_nm
    for salt in recipe.salts:
        if salt.molarity_M is not None:
            assert comp.concentrations_M[salt.label] == pytest.approx(salt.molarity_M, rel=0.03)


def test_volume_fraction_gives_mole_ratio():
    comp = resolve(parse_recipe(BASE))
    dol, dme = species.get("DOL"), species.get("DME")
    expected = (dol.density_g_cm3 / dol.molar_mass_g_mol) / (dme.density_g_cm3 / dme.molar_mass_g_mol)
    assert comp.counts["DOL"] / comp.counts["DME"] == pytest.approx(expected, rel=0.01)
    assert comp.counts["Li"] == comp.counts["TFSI"] == 100


def test_molarity_uses_solution_volume():
    """1 M means 1 mol per litre of solution: salt volume is taken out of the solvent."""
    comp = resolve(parse_recipe(BASE))
    avogadro = 6.02214076e23
    litres = comp.box_nm**3 * 1e-24
    assert comp.counts["Li"] / avogadro / litres == pytest.approx(1.0, rel=1e-3)  # solvent rounding
    salt_volume = sum(species.get(n).molar_volume for n in ("Li", "TFSI"))  # cm3 per mol salt
    solvent_volume = sum(comp.counts[n] * species.get(n).molar_volume for n in ("DOL", "DME")) / 100
    assert solvent_volume == pytest.approx(1000.0 - salt_volume, rel=0.01)


def test_molar_ratio_counts_are_exact():
    comp = resolve(load_recipe("systems/lhce_fsi_dme_tte.yaml"))
    assert comp.counts == {"Li": 60, "FSI": 60, "DME": 72, "TTE": 180}


def test_mg_salt_stoichiometry_from_charges():
    r = parse_recipe(_with(salts=[{"cation": "Mg", "anion": "TFSI", "molarity_M": 0.5}],
                           solvents=[{"species": "DME", "volume_fraction": 1}], size={"salt_units": 10}))
    comp = resolve(r)
    assert comp.counts["Mg"] == 10 and comp.counts["TFSI"] == 20


def test_target_atoms():
    r = parse_recipe(_with(size={"target_atoms": 5000}))
    assert resolve(r).n_atoms == pytest.approx(5000, rel=0.02)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"solvents": [{"species": "DMEE", "volume_fraction": 1}]}, "unknown species 'DMEE'"),
        ({"salts": [{"cation": "Li", "anion": "TFSI", "molarity": 1.0}]}, "unknown field"),
        ({"salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 0}]}, "salts.0.molarity_M"),
        ({"salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": -1}]}, "greater than 0"),
        ({"salts": [{"formula": {"Mg": 1, "Cl": 1}, "molarity_M": 1}]}, "net charge +1"),
        ({"salts": [{"cation": "Li", "anion": "Na", "molarity_M": 1}]}, "an anion must be negative"),
        ({"salts": [{"formula": {"Li": 1, "TTE": 1}, "molarity_M": 1}]}, "a solvent"),
        ({"solvents": [{"species": "TFSI", "volume_fraction": 1}]}, "not a solvent"),
        ({"sizee": {"salt_units": 3}}, "sizee: unknown field"),
        ({"charge_scale": 1.5}, "charge_scale"),
    ],
)
def test_bad_recipes_name_the_field(change, message):
    with pytest.raises(SolvmdError) as err:
        parse_recipe(_with(**change))
    assert message in str(err.value)


def test_malformed_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nsalts: [\n")
    with pytest.raises(SolvmdError, match="malformed YAML"):
        load_recipe(p)


def test_box_smaller_than_twice_cutoff(tmp_path):
    from solvmd.assembly.system import build_system

    r = parse_recipe(_with(size={"salt_units": 2}))
    with pytest.raises(SolvmdError, match="smaller than twice the cutoff"):
        build_system(r, tmp_path / "build")
    assert not (tmp_path / "build" / "manifest.json").exists()
