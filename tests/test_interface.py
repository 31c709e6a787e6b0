"""Interfaces: recipes, the built System (frozen sheet, pair overrides), a demo MD with physics checks,
and the interfacial analysis checked against independent counts."""

import glob
import io
import json
import os
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import openmm
import pytest
from openmm import app, unit

from solvmd import species as species_registry
from solvmd.analysis import spec_from_manifest
from solvmd.analysis.interface import interface_settings_from_manifest, run_interface_analysis
from solvmd.assembly.interface import (
    add_frozen_sheet, build_interface, finish_interface_nonbonded, is_interface_build, pair_overrides)
from solvmd.md.barostats import make_barostat
from solvmd.assembly.surfaces import SurfaceSpec, build_sheet, surface_parameters
from solvmd.assembly.system import load_build
from solvmd.errors import SolvmdError
from solvmd.forcefield import parameterize
from solvmd.recipe import InterfaceRecipe, LJOverrideSpec, load_any_recipe, parse_interface_recipe

ELECTROLYTE = {
    "name": "demo_e",
    "salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 1.0}],
    "solvents": [{"species": "DOL", "volume_fraction": 0.5}, {"species": "DME", "volume_fraction": 0.5}],
    "size": {"salt_units": 12},
    "forcefield": {"cutoff_nm": 0.9},
    "packing": {"seed": 5},
}


def recipe(**over):
    data = {"name": "t_iface", "electrolyte": ELECTROLYTE,
            "surface": {"kind": "MN4", "metal": "Zn", "size_nm": [2.0, 2.0]},
            "slab": {"liquid_thickness_nm": 2.3}, "barostat": "z",
            "lj_overrides": [{"a": "metal", "b": "Li", "sigma_nm": 0.26, "epsilon_kJ_mol": 0.2}]}
    data.update(over)
    return data


# --------------------------------------------------------------------------- recipes


@pytest.mark.parametrize("path", sorted(glob.glob("systems/iface_*.yaml")))
def test_every_interface_recipe_loads_and_its_sheet_builds(root, path):
    rec = load_any_recipe(root / path)
    assert isinstance(rec, InterfaceRecipe)
    assert rec.electrolyte_source is not None and Path(rec.electrolyte_source).is_file()
    sheet = build_sheet(rec.surface, cutoff_nm=rec.bulk.forcefield.cutoff_nm)
    assert sheet.net_charge == pytest.approx(0.0, abs=1e-12)
    assert min(sheet.box_xy_nm) >= 2 * rec.bulk.forcefield.cutoff_nm
    if rec.density.source == "md":  # the bulk run of the SAME electrolyte
        assert Path(rec.density.path).parts[-2:] == (rec.bulk.name, "md")


def test_seed_comparisons_are_covered(root):
    labels = {(r.bulk.name, r.surface.label) for r in map(load_any_recipe, glob.glob(str(root / "systems/iface_*.yaml")))}
    for surf in ("Zn-N4", "Fe-N4", "N-graphene", "graphene"):
        assert ("li_tfsi_dol_dme", surf) in labels
    for surf in ("Zn-N4", "N-graphene"):
        assert ("mgcl2_licl_thf", surf) in labels


@pytest.mark.parametrize(
    "over, field, words",
    [
        ({"surface": {"kind": "MN4", "metal": "Pt", "size_nm": [2.0, 2.0]}}, "surface.metal", "unknown metal 'Pt'"),
        ({"surface": {"kind": "MN4", "metal": "Zn", "size_nm": [1.5, 2.0]}}, "surface.size_nm", "twice the nonbonded"),
        ({"electrolyte": "no_such_electrolyte"}, "electrolyte", "no recipe file"),
        ({"barostat": "isotropic"}, "barostat", "'z' or 'none'"),
        ({"density": {"source": "md"}}, "density", "needs path"),
        ({"slab": {"liquid_thickness_nm": -1}}, "slab.liquid_thickness_nm", "greater than 0"),
        ({"surface": {"kind": "N-graphene", "size_nm": [2.0, 2.0], "pyridinic_N": 5}}, "surface.pyridinic_N",
         "multiple of 3"),
    ],
)
def test_bad_interface_recipes_name_the_field(over, field, words):
    with pytest.raises(SolvmdError) as err:
        parse_interface_recipe(recipe(**over), "bad.yaml", base_dir="systems")
    msg = str(err.value)
    assert field in msg and words in msg, msg


@pytest.mark.parametrize(
    "over, field",
    [
        ({"lj_overrides": [{"a": "metal", "b": "PF6", "sigma_nm": 0.3, "epsilon_kJ_mol": 0.1}]}, "lj_overrides[0].b"),
        ({"lj_overrides": [{"a": "Fe", "b": "Li", "sigma_nm": 0.3, "epsilon_kJ_mol": 0.1}]}, "lj_overrides[0].a"),
        ({"density": {"source": "md", "path": "/nonexistent/md"}}, "density.path"),
        ({"surface": {"kind": "N-graphene", "size_nm": [2.0, 2.0], "graphitic_N": 50}}, "surface.graphitic_N"),
        ({"slab": {"liquid_thickness_nm": 0.8}}, "slab.liquid_thickness_nm"),
    ],
)
def test_bad_input_found_at_build_names_the_field(tmp_path, over, field):
    rec = parse_interface_recipe(recipe(**over), "bad.yaml")
    with pytest.raises(SolvmdError) as err:
        build_interface(rec, tmp_path / "b", log=io.StringIO())
    assert field in str(err.value), str(err.value)
    assert not (tmp_path / "b" / "manifest.json").exists()


# --------------------------------------------------------------------------- the System


@pytest.mark.parametrize("mixing", ["exact", "split"])
def test_pair_override_and_geometric_mixing_energies(mixing):
    """One Li above a Zn-N4 sheet: the LJ energy (charges off) relative to Li far away equals an
    independent sum over sheet atoms, geometric mixing except the overridden Zn-Li pair."""
    spec = SurfaceSpec(kind="MN4", metal="Zn", size_nm=(2.0, 2.0), charges={"metal": 0.0, "N_site": 0.0})
    sheet = build_sheet(spec, cutoff_nm=0.9)
    Lx, Ly = sheet.box_xy_nm
    Lz = 3.0
    top = app.Topology()
    species_registry.add_molecule(top, top.addChain(), species_registry.get("Li"))
    top.setPeriodicBoxVectors([openmm.Vec3(Lx, 0, 0), openmm.Vec3(0, Ly, 0), openmm.Vec3(0, 0, Lz)] * unit.nanometer)
    system = parameterize(top, ["Li"], cutoff_nm=0.9, charge_scale=0.8)
    start = add_frozen_sheet(system, sheet, 0.9)
    overrides, rows = pair_overrides([LJOverrideSpec(a="metal", b="Li", sigma_nm=0.26, epsilon_kJ_mol=0.2)],
                                     sheet, start, top, {"Li": 1})
    assert rows[0]["n_a"] == 1 and rows[0]["n_b"] == 1
    finish_interface_nonbonded(system, (start, start + sheet.n_atoms), overrides, mixing=mixing)
    assert all(system.getParticleMass(start + k).value_in_unit(unit.dalton) == 0 for k in range(sheet.n_atoms))
    # the homogeneous long-range correction sees the liquid only
    forces = {system.getForce(i).getName(): system.getForce(i) for i in range(system.getNumForces())}
    if mixing == "exact":  # sheet-liquid LJ has its own force without the correction
        main, wall = forces["LennardJonesGeometric"], forces["LennardJonesSheet"]
        assert main.getUseLongRangeCorrection() and not wall.getUseLongRangeCorrection()
        assert all(main.getParticleParameters(start + k) == (0.0, 0.0) for k in range(sheet.n_atoms))
        assert wall.getNumInteractionGroups() == 1
    else:  # the sheet sits in the split NonbondedForces; a volume term removes its correction share
        assert "LennardJonesSheet" not in forces and "SheetLongRangeCorrectionRemoval" in forces
    nb = forces["NonbondedForce"]
    for i in range(system.getNumParticles()):  # charges off: what is left is LJ
        nb.setParticleParameters(i, 0.0, *nb.getParticleParameters(i)[1:])
    for k in range(nb.getNumExceptions()):
        i, j, _, sig, eps = nb.getExceptionParameters(k)
        nb.setExceptionParameters(k, i, j, 0.0, sig, eps)
    for i, f in enumerate(system.getForces()):
        f.setForceGroup(1 if isinstance(f, (openmm.CustomNonbondedForce, openmm.NonbondedForce)) else 0)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    (m,) = sheet.site_atoms
    site = sheet.xyz_nm[m]

    def energy(li):
        ctx.setPositions(np.vstack([li, sheet.xyz_nm]) * unit.nanometer)
        return ctx.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    near = site + [0.03, 0.02, 0.27]
    far = site + [0.0, 0.0, 1.5]  # > cutoff from the sheet and from its image at z = 3
    s_li, e_li = 0.287, 0.002092  # ions.xml (Jensen-Jorgensen 2006)
    d = sheet.xyz_nm - near
    d[:, :2] -= np.array([Lx, Ly]) * np.rint(d[:, :2] / [Lx, Ly])
    r = np.linalg.norm(d, axis=1)
    sig = np.sqrt(sheet.sigma_nm * s_li)
    eps = np.sqrt(sheet.epsilon_kJ_mol * e_li)
    sig[m], eps[m] = 0.26, 0.2
    lj = np.where(r < 0.9, 4 * eps * ((sig / r) ** 12 - (sig / r) ** 6), 0.0)
    assert energy(near) - energy(far) == pytest.approx(lj.sum(), rel=1e-5)
    # the override matters: the geometric Zn-Li pair alone would give a different number
    zn_geo = 4 * np.sqrt(sheet.epsilon_kJ_mol[m] * e_li) * ((np.sqrt(sheet.sigma_nm[m] * s_li) / r[m]) ** 12
                                                            - (np.sqrt(sheet.sigma_nm[m] * s_li) / r[m]) ** 6)
    assert abs(zn_geo - lj[m]) > 0.1


def test_make_barostat_kinds():
    z = make_barostat("z", 1.0, 300.0, 25)
    assert isinstance(z, openmm.MonteCarloAnisotropicBarostat)
    assert (z.getScaleX(), z.getScaleY(), z.getScaleZ()) == (False, False, True)
    assert make_barostat("none", 1.0, 300.0, 25) is None
    assert isinstance(make_barostat(None, 1.0, 300.0, 25), openmm.MonteCarloBarostat)
    with pytest.raises(SolvmdError):
        make_barostat("xy", 1.0, 300.0, 25)


# --------------------------------------------------------------------------- demo MD


STEPS, FRAME_EVERY = 1200, 100


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Build a ~1000-atom Li-TFSI DOL/DME | Zn-N4 interface, run 2.4 ps z-NPT on the CPU, analyse it."""
    work = tmp_path_factory.mktemp("iface")
    rec = parse_interface_recipe(recipe(), "demo")
    man = build_interface(rec, work / "build", log=io.StringIO())
    pdb, system, man = load_build(work / "build")
    T = man["temperature_K"]
    system.addForce(make_barostat(man["barostat"], man["pressure_bar"], T, 25, seed=11))
    integ = openmm.LangevinMiddleIntegrator(T * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    integ.setRandomNumberSeed(11)
    props = {"Threads": os.environ.get("SOLVMD_CPU_THREADS", "2")}
    sim = app.Simulation(pdb.topology, system, integ, openmm.Platform.getPlatformByName("CPU"), props)
    sim.context.setPositions(pdb.positions)
    sim.minimizeEnergy(maxIterations=100)
    sim.context.setVelocitiesToTemperature(T * unit.kelvin, 11)
    sim.reporters.append(app.DCDReporter(str(work / "traj.dcd"), FRAME_EVERY))
    sim.step(STEPS)
    st = sim.context.getState(getPositions=True)
    final = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    box = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
    (work / "md").mkdir()
    json.dump({"frame_interval_ps": FRAME_EVERY * 0.002}, open(work / "md" / "md.json", "w"))
    spec = spec_from_manifest(work / "build", work / "md", trajectory=str(work / "traj.dcd"),
                              residence={"enabled": False}, transport={"enabled": False})
    settings = interface_settings_from_manifest(work / "build", bin_A=1.0, wall_exclusion_A=7.0)
    res = run_interface_analysis(spec, settings, work / "analysis")
    summary = {r["quantity"]: r["value"] for r in res["interface"].to_dict("records")}
    start_xyz = np.array(pdb.positions.value_in_unit(unit.nanometer))
    return {"work": work, "man": man, "res": res, "s": summary, "final": final, "box": box, "start": start_xyz,
            "rec": rec}


def test_demo_build_manifest(demo):
    man, work = demo["man"], demo["work"]
    assert is_interface_build(work / "build")
    s0, s1 = man["frozen_atoms"]
    assert s1 == man["n_atoms"] and s1 - s0 == man["surface"]["n_atoms"] == 4 * 8 * 5 - 2 + 1
    assert man["net_charge_e"] == pytest.approx(0.0, abs=1e-9)
    assert man["barostat"] == "z" and man["surface"]["metal"] == "Zn"
    assert man["box_nm"][:2] == pytest.approx(man["surface"]["size_nm"])
    (site,) = man["surface"]["site_atoms"]
    assert man["surface"]["site_positions_nm"][0] == pytest.approx(list(demo["start"][site]), abs=1e-3)
    # liquid packed at the density used: mass / (area x thickness)
    slab = man["slab"]
    assert slab["liquid_mass_g"] / (slab["area_nm2"] * slab["liquid_thickness_nm"] * 1e-21) == pytest.approx(
        man["density_g_cm3"], rel=1e-9)
    # explicit cross terms: geometric unless overridden
    terms = {t["b"]: t for t in man["cross_terms"]}
    s_zn = surface_parameters()["lj"]["metals_uff"]["Zn"]["x_A"] / 2 ** (1 / 6) / 10
    assert terms["DME:O"]["sigma_nm"] == pytest.approx(np.sqrt(s_zn * 0.290))
    assert terms["Li:Li"]["sigma_nm"] == 0.26 and terms["Li:Li"]["source"] == "recipe lj_overrides"
    # the PDB loads in MDAnalysis with the sheet as one GRA residue and the metal element
    u = mda.Universe(str(work / "build" / "system.pdb"))
    gra = u.select_atoms("resname GRA")
    assert gra.n_atoms == s1 - s0 and gra.n_residues == 1
    assert list(u.select_atoms("resname GRA and element Zn").ix) == [site]


def test_demo_sheet_stays_planar_and_fixed(demo):
    s0, s1 = demo["man"]["frozen_atoms"]
    assert np.abs(demo["final"][s0:s1] - demo["start"][s0:s1]).max() < 1e-6  # mass 0: never moved
    assert np.abs(demo["final"][s0:s1, 2]).max() < 1e-6
    assert demo["s"]["sheet_z_spread_A"] == 0.0
    box, man = demo["box"], demo["man"]
    assert box[0, 0] == pytest.approx(man["box_nm"][0], abs=1e-9) and box[1, 1] == pytest.approx(man["box_nm"][1], abs=1e-9)
    assert box[2, 2] != pytest.approx(man["box_nm"][2], abs=1e-6)  # the z barostat did act


def test_demo_no_liquid_atom_crosses_the_sheet(demo):
    assert demo["s"]["sheet_crossings"] == 0
    assert demo["s"]["min_liquid_height_A"] > 1.0


def test_demo_density_profile(demo):
    res, man = demo["res"], demo["man"]
    dens = res["interface_density"]
    area_nm2 = man["box_nm"][0] * man["box_nm"][1]
    # integral of the number density over z = number of molecules (independent: the manifest counts)
    for row in man["species"]:
        sub = dens[dens["species"] == row["name"]]
        assert (sub["n_per_nm3"] * 0.1 * area_nm2).sum() == pytest.approx(row["count"], rel=0.01)
    # the liquid keeps off the sheet: no mass within 1 A of either face
    tot = dens[dens["species"] == "all"]
    assert tot[tot["height_A"] < 1.0]["mass_g_cm3"].max() == 0.0
    # flat in the middle of the slab within noise: molecule centres in 2 A slices scatter like
    # Poisson counts of one frame (chi2/dof ~ 1; a gap or gradient gives >> 1), and the mid-slab
    # density is near the packing density (2.4 ps from a packmol start: loose bound; the 3 %
    # check is for equilibrated runs, see forcefields/SOURCES.md)
    s = demo["s"]
    assert s["mid_slab_count_chi2_per_dof"] < 3.0, s
    assert abs(s["density_mid_slab_rel_dev"]) < 0.12, s


def test_demo_interfacial_tables(demo):
    res, work = demo["res"], demo["work"]
    n_frames = STEPS // FRAME_EVERY
    n_li = next(r["count"] for r in demo["man"]["species"] if r["name"] == "Li")
    coord = res["interface_coordination"]
    assert coord[coord["partner"] == "total"]["n_samples"].sum() == n_frames * n_li  # every cation binned once
    shells = res["interface_shells"]
    for _, layer in shells.groupby("height_lo_A"):
        assert layer["fraction"].sum() == pytest.approx(1.0)
    assert shells["count"].sum() == n_frames * n_li
    assert 0.0 <= demo["s"]["fraction_cations_contact_layer"] <= 1.0
    # running count of cations around the site at r_max, against a direct count
    u = mda.Universe(str(work / "build" / "system.pdb"), str(work / "traj.dcd"))
    (site,) = demo["man"]["surface"]["site_atoms"]
    li = u.select_atoms("resname LI")
    rdf = res["interface_site_rdf"]
    r_edge = rdf["r_A"].iloc[-1] + 0.05
    count = 0
    for ts in u.trajectory:
        d = li.positions - u.atoms[site].position
        d -= ts.dimensions[:3] * np.rint(d / ts.dimensions[:3])
        count += int((np.linalg.norm(d, axis=1) < r_edge).sum())
    assert rdf["n_site"].iloc[-1] == pytest.approx(count / u.trajectory.n_frames)
    for name in ("interface.csv", "interface_density.csv", "interface_coordination.csv", "interface_shells.csv",
                 "interface_site_rdf.csv", "interface_coordination_lateral.csv", "interface_density.png",
                 "interface.json"):
        assert (work / "analysis" / name).stat().st_size > 0


# --------------------------------------------------------------------------- the CLI path


def test_cli_build_md_analyze_an_interface(tmp_path):
    """`solvmd build` dispatches on the `surface:` block, `solvmd md` applies the z-only barostat
    (x and y stay the sheet's periods) and `solvmd analyze` adds the interfacial tables."""
    import yaml

    from solvmd.cli import main

    (tmp_path / "iface.yaml").write_text(yaml.safe_dump(recipe()))
    protocol = {"md": {"heat_ps": 0.4, "equilibrate_ps": 1.0, "production_ps": 1.0, "report_interval_ps": 0.2,
                       "frame_interval_ps": 0.2, "checkpoint_interval_ps": 1.0, "barostat_interval_steps": 5,
                       "platform": "CPU"}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(protocol))
    build, md, out = tmp_path / "build", tmp_path / "md", tmp_path / "analysis"
    assert main(["build", str(tmp_path / "iface.yaml"), "-o", str(build)]) == 0
    man = json.loads((build / "manifest.json").read_text())
    assert man["kind"] == "interface" and man["barostat"] == "z"
    assert main(["md", str(build), "-o", str(md), "-p", str(tmp_path / "p.yaml")]) == 0
    final = app.PDBFile(str(md / "final.pdb"))
    box = final.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)
    assert [box[0][0], box[1][1]] == pytest.approx(man["box_nm"][:2], abs=1e-4)  # the sheet's periods kept
    thermo = np.genfromtxt(md / "thermo.csv", delimiter=",", names=True, dtype=None, encoding=None)
    volumes = thermo["V_nm3"][thermo["stage"] != "heat"]
    assert volumes.std() > 0  # the z barostat acted
    sheet = slice(*man["frozen_atoms"])
    xyz = np.array(final.positions.value_in_unit(unit.nanometer))[sheet]
    start = np.array(app.PDBFile(str(build / "system.pdb")).positions.value_in_unit(unit.nanometer))[sheet]
    assert np.abs(xyz - start).max() < 1e-3  # frozen sheet did not move
    assert main(["analyze", "--build", str(build), "--md", str(md), "-o", str(out)]) == 0
    assert (out / "analysis.json").is_file() and (out / "interface.json").is_file()
    from solvmd import records  # what the Snakefile declares for this recipe is what was written

    declared = records.analysis_outputs(**records.analysis_switches_for_recipe(recipe()))
    assert "interface.json" in declared and set(declared) <= {p.name for p in out.iterdir()}
    dens = np.genfromtxt(out / "interface_density.csv", delimiter=",", names=True, dtype=None, encoding=None)
    assert len(dens) > 10
