"""Surface builders: lattice geometry, periodic bonds, doping counts, M-N4 sites, charges, bad input."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from solvmd.assembly.surfaces import METALS, SurfaceSpec, build_sheet, lattice_cells, surface_parameters
from solvmd.errors import SolvmdError

D_CC = 0.142  # nm


def _bond_lengths(sheet):
    L = np.array([*sheet.box_xy_nm, 1e9])
    out = []
    for i, j in sheet.bonds:
        d = sheet.xyz_nm[j] - sheet.xyz_nm[i]
        d -= L * np.rint(d / L)
        out.append((i, j, float(np.linalg.norm(d))))
    return out


def _neighbours(sheet):
    nb = [[] for _ in range(sheet.n_atoms)]
    for i, j in sheet.bonds:
        nb[i].append(j)
        nb[j].append(i)
    return nb


def test_pristine_graphene_is_a_periodic_honeycomb():
    sheet = build_sheet(SurfaceSpec(kind="graphene", size_nm=(3.0, 3.0)), cutoff_nm=1.0)
    nx, ny = sheet.n_cells
    a = math.sqrt(3) * D_CC
    # whole cells closest to the request: 3.0 / 0.24595 = 12.2 -> 12; 3.0 / 0.426 = 7.04 -> 7
    assert (nx, ny) == (12, 7)
    assert sheet.box_xy_nm == pytest.approx((12 * a, 7 * 3 * D_CC))
    assert sheet.n_atoms == 4 * nx * ny == 336
    assert np.all(sheet.xyz_nm[:, 2] == 0.0)
    assert all(len(n) == 3 for n in _neighbours(sheet))  # no edge atoms: bonds across the boundary
    lengths = np.array([r for _, _, r in _bond_lengths(sheet)])
    assert len(lengths) == 3 * sheet.n_atoms // 2 == 504
    assert lengths == pytest.approx(D_CC, abs=1e-9)
    # some bonds really cross the boundary (raw separation ~ box edge)
    raw = [np.linalg.norm(sheet.xyz_nm[j] - sheet.xyz_nm[i]) for i, j in sheet.bonds]
    # 2 bonds per cell row cross x, 2 per cell column cross y, one of them at the corner crosses both
    assert sum(r > 1.0 for r in raw) == 2 * nx + 2 * ny - 1
    assert sheet.net_charge == 0.0 and np.all(sheet.charges == 0.0)
    # OPLS-AA opls_147 aromatic C
    assert sheet.sigma_nm == pytest.approx(0.355) and sheet.epsilon_kJ_mol == pytest.approx(0.29288)


def test_cheng_steele_carbon():
    sheet = build_sheet(SurfaceSpec(kind="graphene", size_nm=(2.5, 2.5), carbon_lj="cheng-steele"))
    assert sheet.sigma_nm == pytest.approx(0.340) and sheet.epsilon_kJ_mol == pytest.approx(0.2328)


def test_n_doped_counts_and_local_neutrality():
    spec = SurfaceSpec(kind="N-graphene", size_nm=(3.0, 3.0), graphitic_N=5, pyridinic_N=6, seed=3)
    sheet = build_sheet(spec, cutoff_nm=1.0)
    roles = np.array(sheet.roles)
    assert (roles == "N_graphitic").sum() == 5 and (roles == "N_pyridinic").sum() == 6
    assert sheet.defects == {"MN4_sites": 0, "pyridinic_N": 6, "graphitic_N": 5, "vacancies": 2}
    assert sheet.n_atoms == 336 - 2
    nb = _neighbours(sheet)
    for k, r in enumerate(roles):
        if r == "N_graphitic":
            assert len(nb[k]) == 3
        if r == "N_pyridinic":
            assert len(nb[k]) == 2  # the third neighbour is the vacancy
        if r.startswith("N"):
            assert all(sheet.elements[m] == "C" for m in nb[k]), "no N-N bonds"
    q = _charge_table()
    assert sheet.charges[roles == "N_pyridinic"] == pytest.approx(q["N_pyridinic"])
    # each graphitic N + its 3 C neighbours is neutral
    for k in np.flatnonzero(roles == "N_graphitic"):
        assert sheet.charges[k] + sheet.charges[nb[k]].sum() == pytest.approx(0.0, abs=1e-12)
    assert sheet.net_charge == pytest.approx(0.0, abs=1e-12)
    assert all(r == pytest.approx(D_CC) for _, _, r in _bond_lengths(sheet))


def test_n_fraction():
    sheet = build_sheet(SurfaceSpec(kind="N-graphene", size_nm=(3.0, 3.0), N_fraction=0.05, pyridinic_share=0.5))
    n_total = round(0.05 * 336)  # 17
    n_pyr = 3 * round(n_total * 0.5 / 3)  # 9
    assert sheet.defects["pyridinic_N"] == n_pyr and sheet.defects["graphitic_N"] == n_total - n_pyr


def _charge_table():
    return surface_parameters()["charges"]


@pytest.mark.parametrize("metal", METALS)
def test_mn4_site_geometry_charges_and_uff(metal):
    sheet = build_sheet(SurfaceSpec(kind="MN4", metal=metal, size_nm=(3.0, 3.0)), cutoff_nm=1.0)
    assert sheet.n_atoms == 336 - 2 + 1
    (m,) = sheet.site_atoms
    assert sheet.elements[m] == metal
    nb = _neighbours(sheet)
    assert sorted(sheet.elements[k] for k in nb[m]) == ["N"] * 4
    m_n = surface_parameters()["geometry"]["MN4_m_n_A"][metal] / 10.0
    for i, j, r in _bond_lengths(sheet):
        pair = {sheet.elements[i], sheet.elements[j]}
        if metal in pair:
            assert r == pytest.approx(m_n, abs=1e-9)
        elif pair == {"C"}:
            assert r == pytest.approx(D_CC, abs=1e-9)
        else:  # C-N: the N moved radially to the M-N length, C-N stays bond-like
            assert 0.130 < r < 0.150
    # square-planar: the 4 N-M-N angles between neighbours sum to 360 deg, metal in the plane
    v = sheet.xyz_nm[nb[m]] - sheet.xyz_nm[m]
    ang = sorted(np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360)
    assert sheet.xyz_nm[m, 2] == 0.0 and np.diff(ang + [ang[0] + 360]).sum() == pytest.approx(360)
    q = _charge_table()["MN4"][metal]
    if q["metal"] is None:  # no sourced charges: the geometry stands, the charges are refused
        with pytest.raises(SolvmdError, match=f"{metal}-N4 has no sourced site charges"):
            sheet.charges
        assert "metal" not in sheet.charge_sources
        return
    assert sheet.charges[m] == pytest.approx(q["metal"])
    assert sheet.charges[nb[m]] == pytest.approx(q["N_site"])
    alpha = [k for k, r in enumerate(sheet.roles) if r == "C_alpha"]
    assert len(alpha) == 8
    assert sheet.charges[alpha] == pytest.approx(-(q["metal"] + 4 * q["N_site"]) / 8)
    assert sheet.net_charge == pytest.approx(0.0, abs=1e-12)
    # UFF (Rappe 1992): sigma = x / 2^(1/6), epsilon = D kcal/mol
    uff = surface_parameters()["lj"]["metals_uff"][metal]
    assert sheet.sigma_nm[m] == pytest.approx(uff["x_A"] / 2 ** (1 / 6) / 10)
    assert sheet.epsilon_kJ_mol[m] == pytest.approx(uff["D_kcal_mol"] * 4.184)


def test_mn4_defaults_name_their_source():
    """Every metal's M-N length, and its q(M), q(N) where they are given, name where they come
    from: a publication or script (a [TAG] listed in SOURCES.md). A metal without sourced charges
    has null ones (refused at build), never a number without a source. Fe alone may still carry
    the old 'representative' pair until its DFT run is written (issue 13, in progress)."""
    sources_md = (Path(__file__).resolve().parents[1] / "forcefields" / "SOURCES.md").read_text()
    geo = surface_parameters()["geometry"]
    for metal in METALS:
        q = _charge_table()["MN4"][metal]
        assert (q["metal"] is None) == (q["N_site"] is None) == (q.get("source") is None), (metal, q)
        for src in ([q["source"]] if q["metal"] is not None else []) + [geo["MN4_m_n_source"].get(metal)]:
            assert isinstance(src, str) and src.strip(), metal
            tags = re.findall(r"\[([A-Z][A-Za-z0-9]+)\]", src)
            assert tags or (metal == "Fe" and src.startswith("representative")), (metal, src)
            for tag in tags:
                assert f"* [{tag}] " in sources_md, (metal, tag)
    # numbers exactly where the DFT fit wrote them (forcefields/qm/mn4_<M>.json); Fe: see above
    qm = Path(__file__).resolve().parents[1] / "forcefields" / "qm"
    for metal in METALS:
        has_fit = (qm / f"mn4_{metal}.json").exists()
        assert (_charge_table()["MN4"][metal]["metal"] is not None) == (has_fit or metal == "Fe"), metal


@pytest.mark.parametrize("metal", ["Co", "Ni", "Mn", "Cu"])
def test_unsourced_mn4_recipe_is_refused_and_names_the_command(metal):
    from solvmd.recipe import parse_interface_recipe

    data = {"name": f"iface_{metal}", "electrolyte": {"name": "e", "salts": [{"cation": "Li", "anion": "FSI",
            "molarity_M": 1.0}], "solvents": [{"species": "DME", "volume_fraction": 1.0}], "size": {"salt_units": 4},
            "forcefield": {"cutoff_nm": 0.8}},
            "surface": {"kind": "MN4", "metal": metal, "size_nm": [2.2, 2.2]}, "slab": {"liquid_thickness_nm": 2.0}}
    with pytest.raises(SolvmdError) as err:
        parse_interface_recipe(data, "x.yaml")
    msg = str(err.value)
    assert "\n" not in msg and f"surface.metal: {metal}-N4 has no sourced site charges" in msg
    assert f"python forcefields/tools/mn4_site_charges.py run {metal}` then" in msg and "update`" in msg
    # a recipe that brings its own (cited) charges is accepted
    data["surface"]["charges"] = {"metal": 0.5, "N_site": -0.2}
    assert parse_interface_recipe(data, "x.yaml").surface.metal == metal


def test_zn_uff_numbers_independently():
    sheet = build_sheet(SurfaceSpec(kind="MN4", metal="Zn", size_nm=(2.5, 2.5)))
    (m,) = sheet.site_atoms
    assert sheet.sigma_nm[m] == pytest.approx(0.246155, abs=1e-5)  # 2.763 A / 1.122462
    assert sheet.epsilon_kJ_mol[m] == pytest.approx(0.518816, abs=1e-6)  # 0.124 kcal/mol


def test_several_sites_at_a_spacing():
    sheet = build_sheet(SurfaceSpec(kind="MN4", metal="Fe", size_nm=(4.0, 4.0), sites=4, site_spacing_nm=1.5))
    assert len(sheet.site_atoms) == 4 and sheet.defects["vacancies"] == 8
    xy = np.array(sheet.site_positions_nm)
    L = np.array(sheet.box_xy_nm)
    d = xy[:, None] - xy[None]
    d -= L * np.rint(d / L)
    r = np.sqrt((d**2).sum(-1))
    nearest = np.sort(r, axis=1)[:, 1]
    assert nearest == pytest.approx(1.5, abs=0.25)  # snapped to the nearest C-C bond
    assert sheet.net_charge == pytest.approx(0.0, abs=1e-12)


def test_explicit_site_positions_and_charge_override():
    spec = SurfaceSpec(kind="MN4", metal="Co", size_nm=(3.0, 3.0), site_positions_nm=[(0.8, 0.8), (2.2, 2.2)],
                       charges={"metal": 0.5, "N_site": -0.4})
    sheet = build_sheet(spec)
    xy = np.array(sheet.site_positions_nm)
    assert np.abs(xy - [[0.8, 0.8], [2.2, 2.2]]).max() < 0.15
    assert sheet.charges[sheet.site_atoms] == pytest.approx(0.5)
    alpha = [k for k, r in enumerate(sheet.roles) if r == "C_alpha"]
    assert sheet.charges[alpha] == pytest.approx(-(0.5 - 1.6) / 8)


@pytest.mark.parametrize(
    "kw, cutoff, field, words",
    [
        (dict(kind="MN4", metal="Zn", size_nm=(1.5, 3.0)), 1.0, "surface.size_nm", "twice the nonbonded cutoff"),
        (dict(kind="N-graphene", size_nm=(2.5, 2.5), graphitic_N=60), None, "surface.graphitic_N", "fit"),
        (dict(kind="N-graphene", size_nm=(2.5, 2.5), pyridinic_N=60), None, "surface.pyridinic_N", "fit"),
        (dict(kind="MN4", metal="Ni", size_nm=(3.0, 3.0), sites=2, site_spacing_nm=0.3), None,
         "surface.site_spacing_nm", "overlaps"),
        (dict(kind="MN4", metal="Ni", size_nm=(3.0, 3.0), site_positions_nm=[(1.0, 1.0), (1.2, 1.0)]), None,
         "surface.site_positions_nm", "overlaps"),
        (dict(kind="MN4", metal="Ni", size_nm=(3.0, 3.0), site_positions_nm=[(4.0, 1.0)]), None,
         "surface.site_positions_nm", "outside"),
    ],
)
def test_bad_sheets_name_the_field(kw, cutoff, field, words):
    with pytest.raises(SolvmdError) as err:
        build_sheet(SurfaceSpec(**kw), cutoff_nm=cutoff)
    assert field in str(err.value) and words in str(err.value)


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(kind="MN4", metal="Pt", size_nm=(3, 3)), "unknown metal 'Pt'"),
        (dict(kind="MN4", size_nm=(3, 3)), "needs a metal"),
        (dict(kind="graphene", metal="Fe", size_nm=(3, 3)), "only for kind MN4"),
        (dict(kind="N-graphene", size_nm=(3, 3), pyridinic_N=4), "multiple of 3"),
        (dict(kind="N-graphene", size_nm=(3, 3)), "needs N doping"),
        (dict(kind="N-graphene", size_nm=(3, 3), N_fraction=0.02, graphitic_N=2), "not both"),
        (dict(kind="MN4", metal="Fe", size_nm=(3, 3), sites=3), "site_spacing_nm"),
        (dict(kind="MN4", metal="Fe", size_nm=(3, 3), charges={"iron": 1.0}), "unknown charge key"),
    ],
)
def test_bad_surface_specs(kw, words):
    with pytest.raises(Exception) as err:
        SurfaceSpec(**kw)
    assert words in str(err.value)


def test_lattice_cells_round_to_nearest():
    assert lattice_cells((2.2, 2.2)) == (9, 5)  # 2.2/0.24595 = 8.94, 2.2/0.426 = 5.16


def test_cli_refuses_co_n4_in_one_line_and_zn_still_builds(tmp_path, capsys):
    """`solvmd build` on a Co-N4 recipe: exit 2, one error line, nothing written; Zn-N4 builds."""
    import json

    import yaml

    from solvmd.cli import main

    electrolyte = {"name": "e", "salts": [{"cation": "Li", "anion": "FSI", "molarity_M": 1.0}],
                   "solvents": [{"species": "DME", "volume_fraction": 1.0}], "size": {"salt_units": 4},
                   "forcefield": {"cutoff_nm": 0.8}}
    for metal in ("Co", "Zn"):
        data = {"name": f"iface_{metal}", "electrolyte": electrolyte,
                "surface": {"kind": "MN4", "metal": metal, "size_nm": [2.0, 2.0]}, "slab": {"liquid_thickness_nm": 1.8}}
        (tmp_path / f"{metal}.yaml").write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["build", str(tmp_path / "Co.yaml"), "-o", str(tmp_path / "co")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("solvmd build: error: surface.metal: Co-N4 has no sourced")
    assert "mn4_site_charges.py run Co" in err[0] and not (tmp_path / "co" / "manifest.json").exists()
    assert main(["build", str(tmp_path / "Zn.yaml"), "-o", str(tmp_path / "zn")]) == 0
    man = json.loads((tmp_path / "zn" / "manifest.json").read_text())
    q = surface_parameters()["charges"]["MN4"]["Zn"]
    assert man["surface"]["charges_e"]["metal"] == pytest.approx(q["metal"])
    assert man["surface"]["net_charge_e"] == pytest.approx(0.0, abs=1e-9)
