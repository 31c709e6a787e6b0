"""Independent repeats of a PMF (solvmd.pmf.repeats): names, seeds, the combined number and verdict."""

from __future__ import annotations

import math

import pytest

from solvmd.errors import SolvmdError
from solvmd.pmf.repeats import combine_barriers, combine_quantity, repeat_system, split_repeat
from solvmd.recipe import load_recipe, with_repeat


def _barrier(v: float, e: float, converged: bool = True, ads: tuple[float, float] | None = None) -> dict:
    b = {"dG_barrier_kJ_mol": v, "dG_barrier_err_kJ_mol": e, "dG_kJ_mol": v / 2, "dG_err_kJ_mol": e,
         "converged": converged, "converged_reason": "all checks passed" if converged else "halves disagree"}
    if ads:
        b["adsorption"] = {"dG_ads_kJ_mol": ads[0], "dG_ads_err_kJ_mol": ads[1], "dG_barrier_in_kJ_mol": 1.0,
                           "dG_barrier_in_err_kJ_mol": 0.5}
    return b


def test_repeat_folder_names_round_trip():
    assert repeat_system("demo_sac_li_bulk", 1) == "demo_sac_li_bulk"
    assert repeat_system("demo_sac_li_bulk", 3) == "demo_sac_li_bulk+r3"
    assert split_repeat("demo_sac_li_bulk+r3") == ("demo_sac_li_bulk", 3)
    assert split_repeat("demo_sac_li_bulk") == ("demo_sac_li_bulk", 1)
    with pytest.raises(ValueError, match="start at 1"):
        repeat_system("x", 0)


def test_with_repeat_moves_only_the_packmol_seed():
    r = load_recipe("systems/demo_sac_li_bulk.yaml")
    r3 = with_repeat(r, 3)
    assert r3.packing.seed == r.packing.seed + 2
    assert r3.model_dump(exclude={"packing"}) == r.model_dump(exclude={"packing"})
    assert with_repeat(r, 1) is r
    with pytest.raises(SolvmdError, match="start at 1"):
        with_repeat(r, 0)


def test_between_repeat_error_is_sd_over_sqrt_n():
    q = combine_quantity([58.1, 15.5, 32.2], [3.3, 1.7, 4.2])  # the three demo runs of issue 23
    sd = math.sqrt(((58.1 - 35.2667) ** 2 + (15.5 - 35.2667) ** 2 + (32.2 - 35.2667) ** 2) / 2)
    assert q["mean_kJ_mol"] == pytest.approx(35.2667, abs=1e-3)
    assert q["err_kJ_mol"] == pytest.approx(sd / math.sqrt(3), abs=1e-3)  # 12.4 kJ/mol, not 3
    assert q["p_agree"] < 1e-6  # 21 kJ/mol apart with 2-4 kJ/mol error bars: they disagree


def test_verdict_needs_converged_and_agreeing_repeats():
    agree = combine_barriers([_barrier(30.0, 2.0), _barrier(31.0, 2.0), _barrier(29.5, 2.0)])
    assert agree["converged"] is True
    assert agree["quantities"]["dG_barrier"]["n_repeats"] == 3
    spread = combine_barriers([_barrier(58.1, 3.3), _barrier(15.5, 1.7), _barrier(32.2, 4.2)])
    assert spread["converged"] is False and "repeats disagree" in spread["converged_reason"]
    one_bad = combine_barriers([_barrier(30.0, 2.0), _barrier(31.0, 2.0, converged=False)])
    assert one_bad["converged"] is False and "repeat 2: halves disagree" in one_bad["converged_reason"]
    single = combine_barriers([_barrier(30.0, 2.0)])
    assert single["converged"] is True and "one repeat only" in single["converged_reason"]
    assert single["quantities"]["dG_barrier"]["err_kJ_mol"] == 2.0  # one repeat: its own error, labelled
    assert single["error_kind"].startswith("within-run")


def test_adsorption_quantities_are_combined():
    out = combine_barriers([_barrier(5.0, 1.0, ads=(-20.0, 1.0)), _barrier(5.0, 1.0, ads=(-22.0, 1.0))])
    assert out["quantities"]["dG_ads"]["mean_kJ_mol"] == pytest.approx(-21.0)
    assert out["quantities"]["dG_ads"]["err_kJ_mol"] == pytest.approx(1.0)  # sd sqrt(2) / sqrt(2)
