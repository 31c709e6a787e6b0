"""The ``solvmd`` command: one verb per workflow step, files in and files out.

The user-facing help lives in :data:`DESCRIPTION` and each verb's description/epilog; this
module only parses arguments and calls the library. Errors print one message and exit with
status 2 (see :func:`main`).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from solvmd import records
from solvmd.errors import SolvmdError
from solvmd.io import read_yaml


def _cmd_build(args: argparse.Namespace) -> None:
    from solvmd.assembly.interface import build_interface
    from solvmd.assembly.system import build_system
    from solvmd.recipe import InterfaceRecipe, load_any_recipe, with_repeat

    recipe = with_repeat(load_any_recipe(args.recipe), args.repeat)
    _out_folder(args.out)
    (Path(args.out) / records.MANIFEST).unlink(missing_ok=True)  # written last: a failed build leaves none
    if isinstance(recipe, InterfaceRecipe):
        build_interface(recipe, args.out)
    else:
        build_system(recipe, args.out)


def _cmd_md(args: argparse.Namespace) -> None:
    from solvmd.md.engine import run_md
    from solvmd.md.protocol import load_protocol

    overrides = {}
    if args.platform:
        overrides["platform"] = args.platform
    if args.protocol is not None:
        read_yaml(args.protocol, "MD protocol", mapping=True)
    protocol = load_protocol(args.protocol, overrides)
    if args.repeat < 1:
        raise SolvmdError(f"--repeat: repeat numbers start at 1, got {args.repeat}")
    protocol = protocol.model_copy(update={"seed": protocol.seed + args.repeat - 1})
    _out_folder(args.out)
    records.claim_folder(args.out, records.fingerprint(args.build, protocol, step=records.MD))
    records.load_openmm_xml(Path(args.build) / records.SYSTEM_XML, "serialized OpenMM System")
    run_md(args.build, args.out, protocol)


def _cmd_species(args: argparse.Namespace) -> None:
    from solvmd import species

    if getattr(args, "species_cmd", None) == "add":
        from solvmd.species_add import add_species

        add_species(args.name, args.smiles, role=args.role, density_g_cm3=args.density_g_cm3, charges=args.charges,
                    residue=args.residue, folder=args.dir, molar_volume_cm3_mol=args.molar_volume)
        return
    print(f"{'name':6s} {'residue':7s} {'role':8s} {'charge':>6s} {'atoms':>5s}  {'xml':10s} smiles")
    for sp in species.registry().values():
        print(f"{sp.name:6s} {sp.residue:7s} {sp.role:8s} {sp.charge:>6d} {sp.n_atoms:>5d}  {sp.xml:10s} {sp.smiles}")


def _cmd_platforms(args: argparse.Namespace) -> None:
    from solvmd.md.platform_report import report

    print(report(args.precision, args.probe))


def _cmd_analyze(args: argparse.Namespace) -> None:
    from solvmd import analysis

    out = Path(args.out)
    overrides = {k: {"enabled": False} for k in ("residence", "transport") if getattr(args, f"no_{k}")}
    if args.spec is not None:
        if args.build or args.md:
            raise SolvmdError("give SPEC.yaml or --build/--md, not both")
        spec = analysis.load_spec(args.spec)
        spec = spec.model_copy(update={k: getattr(spec, k).model_copy(update=v) for k, v in overrides.items()})
    elif args.build and args.md:
        md = _finished_md(args.build, args.md)
        spec = analysis.spec_from_manifest(Path(args.build), Path(args.md), **overrides)
        _out_folder(out)
        records.claim_folder(out, records.fingerprint(args.build, md.protocol, step=records.ANALYSIS))
    else:
        raise SolvmdError("give SPEC.yaml, or --build BUILD_DIR --md MD_DIR for a solvmd run")
    _out_folder(out)
    (out / records.ANALYSIS_JSON).unlink(missing_ok=True)  # written last, after every table and figure
    res = analysis.analyze(spec)
    if args.build:
        from solvmd.assembly.interface import is_interface_build

        if is_interface_build(args.build):
            settings = analysis.interface_settings_from_manifest(Path(args.build))
            analysis.run_interface_analysis(spec, settings, out, results=res)
    from solvmd.analysis.workflow import write_results

    write_results(res, spec, out)


def _finished_md(build, md_dir) -> records.MDRecord:
    """A finished MD run (valid md.json) of this build (its recorded identity, if any, matches)."""
    records.check_build(build)
    info = records.read_md(md_dir)
    records.check_identity(md_dir, records.fingerprint(build, step=records.MD), require=False)
    return info


def _pmf_spec(args: argparse.Namespace):
    from solvmd import pmf
    from solvmd.errors import check_empty_blocks
    from solvmd.pmf_spec import PMFSpec

    data = read_yaml(args.spec, "PMF spec")
    entries, prefix = data, ""
    if isinstance(data, dict) and "pmf" in data and "cv" not in data:  # a recipe with a pmf: block
        entries, prefix = data["pmf"], "pmf."
        if entries is None:
            raise SolvmdError(f"{args.spec}: pmf: the block is empty; the pmf-* verbs need at least one PMF entry "
                              "(docs/reference.md, PMF block)")
    many = isinstance(entries, list)
    for i, entry in enumerate(entries if many else [entries]):
        check_empty_blocks(entry, PMFSpec, str(args.spec), "PMF spec", prefix + (f"{i}." if many else ""))
    return pmf.load_spec(args.spec, name=args.name)


def _pmf_identity(args: argparse.Namespace, spec, build: bool = True) -> records.Fingerprint:
    return records.fingerprint(args.build if build else None, spec, step=records.PMF)


def _cmd_pmf_prepare(args: argparse.Namespace) -> None:
    from solvmd import pmf

    spec = _pmf_spec(args)
    build, md, out = Path(args.build), Path(args.md), Path(args.out)
    man = records.check_build(build)
    _finished_md(build, md)
    records.check_state(md / records.FINAL_XML, man.n_atoms, "final MD state")
    records.load_openmm_xml(md / records.FINAL_XML, "final MD state", "State")
    records.load_openmm_xml(build / records.SYSTEM_XML, "serialized OpenMM System")
    _out_folder(out)
    records.claim_folder(out, _pmf_identity(args, spec))
    pmf.prepare_windows(build / records.SYSTEM_XML, md / records.FINAL_XML, spec, out,
                        topology=build / records.SYSTEM_PDB, strict=True)


def _cmd_pmf_window(args: argparse.Namespace) -> None:
    from solvmd import pmf

    spec = _pmf_spec(args)
    if spec.sampler == "exchange" and args.window < pmf.n_windows(spec):
        raise SolvmdError(f"pmf {spec.name} has sampler: exchange: its windows 0..{pmf.n_windows(spec) - 1} run "
                          "together as replicas; use `solvmd pmf-exchange` (windows an estimate added to close a gap "
                          "run here, one job each)")
    out, build = Path(args.out), Path(args.build)
    man = records.check_build(build)
    n_spec, n = pmf.n_windows(spec), pmf.n_windows(spec, out)  # + windows an estimate added
    if not 0 <= args.window < n:
        raise SolvmdError(f"--window: {args.window} is not a window of pmf {spec.name} (0..{n - 1}); "
                          f"{n_spec} in the spec, {n - n_spec} added by an estimate")
    records.check_identity(out, _pmf_identity(args, spec))
    cv = records.read_cv(out)
    if max(max(g) for g in cv.groups) >= man.n_atoms:
        raise SolvmdError(f"{out / records.CV_JSON}: groups: atom index beyond the build's {man.n_atoms} atoms; "
                          "it belongs to another system: rerun `solvmd pmf-prepare`")
    init = out / records.window_init_xml(args.window)
    if args.window < n_spec or init.is_file():  # an added window's start is made from its neighbour
        records.check_state(init, man.n_atoms, f"start state of window {args.window}")
        records.load_openmm_xml(init, f"start state of window {args.window}", "State")
    records.load_openmm_xml(build / records.SYSTEM_XML, "serialized OpenMM System")
    pmf.run_window(build / records.SYSTEM_XML, init if init.is_file() else None, spec, args.window, out,
                   segment=args.segment)


def _cmd_pmf_exchange(args: argparse.Namespace) -> None:
    from solvmd import pmf
    from solvmd.pmf.exchange import run_exchange

    spec = _pmf_spec(args)
    if spec.sampler != "exchange":
        raise SolvmdError(f"pmf {spec.name} has sampler: {spec.sampler}; `solvmd pmf-exchange` needs sampler: "
                          "exchange (independent windows run with `solvmd pmf-window --window k`)")
    out, build = Path(args.out), Path(args.build)
    man = records.check_build(build)
    records.check_identity(out, _pmf_identity(args, spec))
    cv = records.read_cv(out)
    if max(max(g) for g in cv.groups) >= man.n_atoms:
        raise SolvmdError(f"{out / records.CV_JSON}: groups: atom index beyond the build's {man.n_atoms} atoms; "
                          "it belongs to another system: rerun `solvmd pmf-prepare`")
    for k in range(pmf.n_windows(spec, out)):
        init = out / records.window_init_xml(k)
        records.check_state(init, man.n_atoms, f"start state of window {k}")
        records.load_openmm_xml(init, f"start state of window {k}", "State")
    records.load_openmm_xml(build / records.SYSTEM_XML, "serialized OpenMM System")
    (out / records.exchange_marker(args.segment)).unlink(missing_ok=True)  # the done-marker is written last
    run_exchange(build / records.SYSTEM_XML, spec, out, topology=_pdb_topology(build / records.SYSTEM_PDB),
                 segment=args.segment)


def _pdb_topology(path: Path):
    from openmm import app

    return app.PDBFile(str(path)).topology


def _cmd_pmf_repeats(args: argparse.Namespace) -> None:
    from solvmd.pmf.repeats import combine_files

    for path in args.barriers:
        records.read_barrier(path)  # each one a valid barrier record, or one clear error naming it
    data = combine_files(args.barriers, args.out)
    for name, q in data["quantities"].items():
        print(f"{name}: {q['mean_kJ_mol']:.2f} +- {q['err_kJ_mol']:.2f} kJ/mol ({q['error_kind']})")
    print(f"converged: {data['converged']} ({data['converged_reason']})")


def _cmd_transport_repeats(args: argparse.Namespace) -> None:
    from solvmd.analysis import columns as C
    from solvmd.analysis.transport import combine_runs, read_tables
    from solvmd.io import atomic_path

    df = combine_runs(read_tables(args.tables))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(args.out)) as tmp:
        df.to_csv(tmp, index=False)
    for _, r in df[df[C.METHOD] == C.TRANSFERENCE_ROW].iterrows():
        print(f"t {r[C.SPECIES]} ({r[C.REF_FRAME]}): {r[C.TRANSFERENCE]:.3f} +- {r[C.TRANSFERENCE_STD]:.3f} "
              f"(ideal {r[C.TRANSFERENCE_IDEAL]:.3f})")
    ion = df[df[C.METHOD] == C.IONICITY_ROW]
    if len(ion):
        print(f"ionicity: {ion[C.IONICITY].iloc[0]:.3f} +- {ion[C.IONICITY_STD].iloc[0]:.3f} "
              f"({len(args.tables)} runs; diffusive: {bool(ion[C.DIFFUSIVE].iloc[0])})")


def _cmd_pmf_estimate(args: argparse.Namespace) -> None:
    from solvmd import pmf

    spec = _pmf_spec(args)
    out = Path(args.out)
    if not out.is_dir():
        raise SolvmdError(f"PMF folder {out} does not exist; run `solvmd pmf-prepare` and `pmf-window` first")
    stale = _stale_windows(out, spec)
    if stale:
        raise SolvmdError(stale)
    records.check_identity(out, _pmf_identity(args, spec, build=False))
    for name in (records.BARRIER_JSON, records.PMF_CSV, records.ESTIMATE_JSON):
        (out / name).unlink(missing_ok=True)  # a failed estimate must not leave the old result looking new
    pmf.estimate_pmf(out, spec)


def _stale_windows(out: Path, spec) -> str | None:
    """A message naming the window files of ``out`` that were sampled for other centres or force
    constants than ``spec`` asks for (the spec was changed after they ran, or they were copied
    from another PMF), what they were made for, and how to start over; None if all match."""
    import numpy as np

    from solvmd.pmf.windows import window_table

    want = {w.k_index: (w.r0_nm, w.k_kJ_mol_nm2) for w in window_table(spec, out)}
    made, says = [], []
    for path in sorted(out.glob("window_*.npz"), key=lambda p: p.name):
        m = re.match(records.WINDOW_NPZ_RE, path.name)
        if not m:
            continue
        k = int(m.group(1))
        try:
            with np.load(path) as z:
                r0, kk = float(z["r0_nm"]), float(np.ravel(z["k_kJ_mol_nm2"])[0])
        except Exception:  # noqa: BLE001 - a damaged file is reported by the window checks
            continue
        if not (np.isfinite(r0) and np.isfinite(kk) and kk > 0):
            continue  # not a window made for another spec but a broken one: the window checks name it
        if k not in want:
            made.append(f"window {k}: r0={r0:.5g} nm, k={kk:g} (the spec has {len(want)} windows)")
        elif not np.allclose((r0, kk), want[k], rtol=1e-9, atol=1e-12):
            made.append(f"window {k}: r0={r0:.5g} nm, k={kk:g}")
            says.append(f"window {k}: r0={want[k][0]:.5g} nm, k={want[k][1]:g}")
    if not made:
        return None
    return (f"{out}: stale window files, made for another PMF spec than {spec.name}'s: {'; '.join(made)}"
            + (f". The spec now asks for {'; '.join(says)}" if says else "")
            + f". To start over, delete {out} (window files, init/, checkpoints and identity.json) and rerun "
            "`solvmd pmf-prepare` and the windows; to keep these samples, restore the spec they were made for")


def _cmd_compare(args: argparse.Namespace) -> None:
    from solvmd import pmf

    if args.labels is not None and len(args.labels) != len(args.barriers):
        raise SolvmdError(f"--labels: {len(args.labels)} labels for {len(args.barriers)} barrier files")
    for path in args.barriers:
        records.read_barrier(path)
    _out_file(args.csv, ".csv", "--csv")
    if args.png:
        _out_file(args.png, ".png", "--png")
    table = pmf.compare_barriers(args.barriers, args.csv, args.png, labels=args.labels)
    print(table.to_string(index=False))


def _cmd_sac_compare(args: argparse.Namespace) -> None:
    from solvmd.io import read_json
    from solvmd.pmf.sac import compare_sac

    for d in map(Path, args.pmf_dirs):
        if not d.is_dir():
            raise SolvmdError(f"PMF folder {d} does not exist; run the PMF steps for it first")
        records.read_barrier(d / records.BARRIER_JSON)
        records.read_cv(d)
        for name in (records.SPEC_JSON, records.ESTIMATE_JSON):
            read_json(d / name, f"PMF {name}")
        if (d / "profile.csv").is_file():
            records.read_table(d / "profile.csv", "PMF profile")
        if (d.parent.parent / records.BUILD / records.MANIFEST).is_file():
            records.read_manifest(d.parent.parent / records.BUILD)
    _out_file(args.csv, ".csv", "--csv")
    if args.png:
        _out_file(args.png, ".png", "--png")

    print(compare_sac(args.pmf_dirs, args.csv, args.png).to_string(index=False))


def _cmd_summarize(args: argparse.Namespace) -> None:
    from solvmd.summary import summarize, write_summary

    _out_file(args.csv, ".csv", "--csv")
    if args.html:
        _out_file(args.html, ".html", "--html")
    table = summarize(args.results, args.systems)
    write_summary(table, args.csv, args.html)
    print(table.to_string(index=False, max_cols=12))


def _cmd_plot_thermo(args: argparse.Namespace) -> None:
    from solvmd.md.plots import write_thermo_plot

    records.read_thermo(args.thermo)
    _out_file(args.out, ".png", "--out")
    write_thermo_plot(args.thermo, args.out)


def _out_folder(path) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SolvmdError(f"output folder {path} exists and is not a folder")
    return path


def _out_file(path, suffix: str, option: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise SolvmdError(f"{option}: {path} is a folder; give a file name ending in {suffix}")
    if path.suffix.lower() != suffix:
        raise SolvmdError(f"{option}: {path} must end in {suffix}")
    return path


def _cmd_gpu_slot(args: argparse.Namespace) -> None:
    from solvmd.gpu_slots import exec_with_slot

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise SolvmdError("give the command to run after --, e.g. solvmd gpu-slot -- solvmd md ...")
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    if devices is not None and not all(d.isdigit() for d in devices):
        raise SolvmdError(f"--devices: {args.devices!r}: give comma-separated CUDA device indices, e.g. 0,1")
    if args.need < 0 or (args.timeout is not None and not args.timeout >= 0):
        raise SolvmdError("--need and --timeout must be >= 0")
    if args.lock_dir is not None and args.lock_dir.exists() and not args.lock_dir.is_dir():
        raise SolvmdError(f"--lock-dir: {args.lock_dir} exists and is not a folder")
    count = args.count if args.count and args.count > 0 else None
    exec_with_slot(command, devices=devices, count=count, lock_dir=args.lock_dir, timeout_s=args.timeout,
                   need=args.need)


DESCRIPTION = """\
solvmd: molecular dynamics of battery electrolytes, from a YAML recipe to solvation structure
and desolvation free energies.

Each verb reads files and writes files, so a step runs the same by hand, from Snakemake or on a
cluster node. The usual order:

  solvmd build  systems/<name>.yaml      -o results/<name>/build     recipe -> packed, parameterized box
  solvmd md     results/<name>/build     -o results/<name>/md        minimize, heat, equilibrate, produce
  solvmd analyze --build ... --md ...    -o results/<name>/analysis  RDF, CN, shells, SSIP/CIP/AGG, transport
  solvmd pmf-prepare / pmf-window / pmf-estimate                     umbrella-sampling PMF of one coordinate

`snakemake --cores 2 --configfile config/demo.yaml` runs all of it for the demo.
`solvmd VERB --help` says what a verb reads, writes, and shows an example.
"""

EPILOG = """\
A bad input ends in one line `solvmd VERB: error: ...` naming the file and field (exit status 2)
and leaves no finished-looking output; SOLVMD_DEBUG=1 shows the traceback of an internal error
(exit status 3). Documentation: README.md and docs/ (field reference: docs/reference.md).
"""


def _verb(sub, name: str, summary: str, what: str, reads: str, writes: str, example: str):
    """A subparser whose --help says what the verb does, reads and writes, with one example."""
    epilog = f"reads:\n  {reads}\nwrites:\n  {writes}\nexample:\n  {example}"
    return sub.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.\n\n{what}",
                          epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)


def _protocol_defaults() -> str:
    """What ``solvmd md`` runs when -p is left out (read from the MDProtocol model)."""
    from solvmd.md.protocol import MDProtocol

    p = MDProtocol()
    return (f"the built-in protocol: {p.timestep_fs:g} fs steps, heat {p.heat_ps:g} ps, no anneal, NPT "
            f"equilibration {p.equilibrate_ps:g} ps, production {p.production_ps:g} ps, a frame every "
            f"{p.frame_interval_ps:g} ps, platform {p.platform}, seed {p.seed} (docs/reference.md, MD protocol)")


def build_parser() -> argparse.ArgumentParser:
    from solvmd import __version__

    parser = argparse.ArgumentParser(prog="solvmd", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"solvmd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB")
    for add in (_add_run_verbs, _add_pmf_verbs, _add_table_verbs, _add_tool_verbs):
        add(sub)
    return parser


def _add_run_verbs(sub) -> None:
    """build, md, analyze."""
    p = _verb(sub, "build", "recipe -> packed, parameterized system",
              "Resolves the recipe's concentrations into molecule counts, packs them with packmol (or puts an\n"
              "electrolyte slab on a sheet, for a recipe with a surface: block) and parameterizes the box\n"
              "with the OPLS/CL&P force field (geometric mixing, charge scaling, hydrogen mass repartitioning).",
              "a recipe YAML (systems/*.yaml; fields: docs/reference.md, Recipe)",
              "OUT/system.pdb, OUT/system.xml (serialized OpenMM System), OUT/manifest.json (counts, box,\n"
              "  density estimate, seeds, force-field settings, versions; written last)",
              "solvmd build systems/demo_li_tfsi_dol_dme.yaml -o results/demo_li_tfsi_dol_dme/build")
    p.add_argument("recipe", help="recipe YAML, e.g. systems/li_tfsi_dol_dme.yaml")
    p.add_argument("-o", "--out", required=True, help="output folder, e.g. results/<name>/build")
    p.add_argument("--repeat", type=int, default=1,
                   help="independent repeat r: packmol seed + r - 1 (default 1: the recipe's seed)")
    p.set_defaults(func=_cmd_build)

    p = _verb(sub, "md", "minimize, heat, equilibrate and produce (resumes from checkpoints)",
              "Runs minimization, NVT heating, an optional anneal and cool-down, NPT equilibration and NPT\n"
              "production on the best platform found (CUDA, OpenCL, else CPU). Rerunning the same command\n"
              "after a crash continues from the newest valid checkpoint; a finished run is not redone.",
              "BUILD (a folder written by `solvmd build`); optionally -p PROTOCOL.yaml",
              "OUT/traj.xtc (or .dcd), OUT/topology.pdb, OUT/thermo.csv, OUT/final.xml, OUT/<stage>.chk,\n"
              "  OUT/identity.json, OUT/md.json (written last: without it the run is unfinished)",
              "solvmd md results/demo_li_tfsi_dol_dme/build -o results/demo_li_tfsi_dol_dme/md -p config/demo.yaml")
    p.add_argument("build", help="build folder written by `solvmd build`")
    p.add_argument("-o", "--out", required=True, help="output folder, e.g. results/<name>/md")
    p.add_argument("-p", "--protocol", help="YAML with MD settings, at the top level or in an md: block (a "
                   "workflow config works); left out: " + _protocol_defaults())
    p.add_argument("--platform", choices=["auto", "CUDA", "OpenCL", "CPU", "Reference"],
                   help="override the protocol's platform (default: the protocol's, itself auto)")
    p.add_argument("--repeat", type=int, default=1,
                   help="independent repeat r: velocity seed + r - 1 (default 1: the protocol's seed)")
    p.set_defaults(func=_cmd_md)

    p = _verb(sub, "analyze", "solvation structure, speciation and transport of a trajectory",
              "RDFs and running CNs per partner and donor type, automatic first-shell cutoffs, CN per molecule\n"
              "and per donor atom, the shell census, SSIP/CIP/AGG (anion- and cation-centric), cluster sizes,\n"
              "residence times, diffusion and conductivity; for an interface build also density profiles and\n"
              "CN against height. Works on any trajectory MDAnalysis reads (give a SPEC.yaml), or on a\n"
              "solvmd run (give --build and --md: the spec is written from the manifest).",
              "SPEC.yaml (fields: docs/reference.md, Analysis spec), or --build BUILD --md MD",
              "OUT/rdf.csv, coordination*.csv, shells.csv, speciation.csv, clusters.csv, residence*.csv,\n"
              "  transport.csv, msd.csv, cutoffs.json, figures *.png (interface*.csv/png for an interface),\n"
              "  OUT/analysis.json (written last)",
              "solvmd analyze --build results/demo_li_tfsi_dol_dme/build --md results/demo_li_tfsi_dol_dme/md "
              "-o results/demo_li_tfsi_dol_dme/analysis")
    p.add_argument("spec", nargs="?", help="analysis spec YAML (any MDAnalysis-readable trajectory)")
    p.add_argument("--build", help="solvmd build folder (the spec is written from its manifest)")
    p.add_argument("--md", help="solvmd md folder (with --build)")
    p.add_argument("-o", "--out", required=True, help="output folder, e.g. results/<name>/analysis")
    p.add_argument("--no-residence", action="store_true", help="skip residence times")
    p.add_argument("--no-transport", action="store_true", help="skip diffusion and conductivity")
    p.set_defaults(func=_cmd_analyze)


def _pmf_args(p, need_build: bool = True) -> None:
    p.add_argument("spec", help="recipe with a pmf: block, or a PMF spec YAML (fields: docs/reference.md)")
    p.add_argument("--name", help="which pmf entry (default: the only one; with several, an error lists them)")
    if need_build:
        p.add_argument("--build", required=True, help="solvmd build folder")
    p.add_argument("-o", "--out", required=True, help="PMF folder, e.g. results/<name>/pmf/<pmf name>")


def _add_pmf_verbs(sub) -> None:
    """pmf-prepare, pmf-window, pmf-exchange, pmf-estimate, pmf-repeats, sac-compare."""
    sys_ = "results/li_tfsi_dol_dme"
    p = _verb(sub, "pmf-prepare", "choose the tagged atoms and make the umbrella windows' start structures",
              "Picks the tagged ion (and partner) from the final MD state and places or pulls it to each\n"
              "window centre (init: place or pull), checking every start against its centre. Details:\n"
              "docs/pmf.md.",
              "SPEC (recipe with a pmf: block), --build BUILD, --md MD (its final.xml is the start state)",
              "OUT/cv.json, OUT/spec.json, OUT/shell.json, OUT/init/window_<k>.xml, OUT/starts.json,\n"
              "  OUT/prepare.json (timings), OUT/identity.json",
              f"solvmd pmf-prepare systems/li_tfsi_dol_dme.yaml --name li_dme --build {sys_}/build --md {sys_}/md "
              f"-o {sys_}/pmf/li_dme")
    _pmf_args(p)
    p.add_argument("--md", required=True, help="solvmd md folder (final.xml is the start state)")
    p.set_defaults(func=_cmd_pmf_prepare)

    p = _verb(sub, "pmf-window", "equilibrate and sample one umbrella window (restartable)",
              "Runs window k of a PMF with sampler: independent, resuming from its checkpoint when rerun;\n"
              "reports when the sampled mean slid away from the centre. Windows are independent jobs.",
              "SPEC, --build BUILD, the PMF folder made by `solvmd pmf-prepare` (-o)",
              "OUT/window_<k>.npz (CV samples, restraint, shell counts); OUT/window_<k>.s<j>.npz for --segment j",
              f"solvmd pmf-window systems/li_tfsi_dol_dme.yaml --name li_dme --build {sys_}/build -o {sys_}/pmf/li_dme --window 0")
    _pmf_args(p)
    p.add_argument("--window", type=int, required=True, help="window index k (0-based)")
    p.add_argument("--segment", type=int, default=1,
                   help="extension round j >= 2 planned in extend.json (default 1: the first run)")
    p.set_defaults(func=_cmd_pmf_window)

    p = _verb(sub, "pmf-exchange", "run all windows as replicas with Hamiltonian replica exchange",
              "For sampler: exchange: one OpenMM ReplicaExchangeSampler run over every window, swapping\n"
              "states every exchange_interval_ps; restartable from its checksummed checkpoint.",
              "SPEC, --build BUILD, the PMF folder made by `solvmd pmf-prepare` (-o)",
              "OUT/window_<k>.npz per window, OUT/exchange.npz, OUT/exchange.chk, OUT/replica_paths.png,\n"
              "  OUT/exchange.json (acceptance, round trips; written last)",
              f"solvmd pmf-exchange systems/li_tfsi_dol_dme.yaml --name li_dme --build {sys_}/build -o {sys_}/pmf/li_dme")
    _pmf_args(p)
    p.add_argument("--segment", type=int, default=1,
                   help="extension round j >= 2 planned in extend.json (default 1: the first run)")
    p.set_defaults(func=_cmd_pmf_exchange)

    p = _verb(sub, "pmf-estimate", "MBAR free-energy profile, barrier, errors and convergence verdict",
              "Estimates the PMF from the sampled windows with MBAR (pymbar), cross-checked by WHAM, with\n"
              "block-bootstrap errors and a convergence verdict. Across an overlap gap it stops and writes\n"
              "the windows that close it to added_windows.json (rerun the window steps, then this verb).",
              "SPEC and the PMF folder (-o) with every window_<k>.npz",
              "OUT/pmf.csv, OUT/profile.csv, OUT/barrier.json, OUT/estimate.json, OUT/pmf.png, overlap.png,\n"
              "  histograms.png, convergence.png; OUT/added_windows.json or OUT/extend.json when more sampling is due",
              f"solvmd pmf-estimate systems/li_tfsi_dol_dme.yaml --name li_dme -o {sys_}/pmf/li_dme")
    _pmf_args(p, need_build=False)
    p.set_defaults(func=_cmd_pmf_estimate)

    p = _verb(sub, "pmf-repeats", "combine independent repeats of one PMF",
              "Mean over the repeats, the between-repeat standard error (the reported error), a chi-square\n"
              "test of their agreement and a verdict.",
              "the barrier.json of repeats 1..N (results/<system>[+r<r>]/pmf/<name>/barrier.json)",
              "OUT (repeats.json)",
              f"solvmd pmf-repeats {sys_}/pmf/li_dme/barrier.json {sys_}+r2/pmf/li_dme/barrier.json "
              f"-o {sys_}/pmf/li_dme/repeats.json")
    p.add_argument("barriers", nargs="+", help="barrier.json of repeats 1..N (results/<system>[+r<r>]/pmf/<name>/)")
    p.add_argument("-o", "--out", required=True, help="output, e.g. results/<system>/pmf/<name>/repeats.json")
    p.set_defaults(func=_cmd_pmf_repeats)

    p = _verb(sub, "sac-compare", "single-atom-catalyst comparison table and figure",
              "One row per ion, surface and coordinate: the barrier, the adsorption free energy, the shell the\n"
              "ion sheds, the error kind and the convergence verdict (docs/sac.md).",
              "finished PMF folders results/<system>/pmf/<name>",
              "--csv table (e.g. results/sac_comparison.csv), --png figure",
              "solvmd sac-compare results/*/pmf/* --csv results/sac_comparison.csv --png results/sac_comparison.png")
    p.add_argument("pmf_dirs", nargs="+", help="finished PMF folders results/<system>/pmf/<name>")
    p.add_argument("--csv", required=True, help="output table, e.g. results/sac_comparison.csv")
    p.add_argument("--png", help="output figure, e.g. results/sac_comparison.png (default: none)")
    p.set_defaults(func=_cmd_sac_compare)


def _add_table_verbs(sub) -> None:
    """compare, summarize, transport-repeats, plot-thermo."""
    p = _verb(sub, "compare", "table and figure of barriers across systems",
              "One row per barrier.json: the barrier and end-to-end free energies with their errors.",
              "barrier.json files of finished PMFs",
              "--csv table, --png bar chart",
              "solvmd compare results/*/pmf/li_dme/barrier.json --csv results/barriers.csv --png results/barriers.png")
    p.add_argument("barriers", nargs="+", help="barrier.json files")
    p.add_argument("--labels", nargs="+", help="one label per barrier (default: <system>/<pmf name>)")
    p.add_argument("--csv", required=True, help="output table (.csv)")
    p.add_argument("--png", help="output figure (.png; default: none)")
    p.set_defaults(func=_cmd_compare)

    p = _verb(sub, "summarize", "one row per system across a results folder",
              "Density, CN per partner, SSIP/CIP/AGG fractions and the PMF barriers of every finished system.",
              "RESULTS folder (results/<system>/{build,md,analysis,pmf})",
              "--csv table (e.g. results/summary.csv), --html rendering",
              "solvmd summarize results --csv results/summary.csv")
    p.add_argument("results", help="results folder (results/)")
    p.add_argument("--systems", nargs="+", help="systems to include (default: every finished one)")
    p.add_argument("--csv", required=True, help="output table, e.g. results/summary.csv")
    p.add_argument("--html", help="also an HTML rendering (for the Snakemake report; default: none)")
    p.set_defaults(func=_cmd_summarize)

    p = _verb(sub, "transport-repeats", "combine the transport tables of independent runs",
              "D and the Onsager L_ij averaged over independent runs (packings) of one system; conductivity,\n"
              "transference numbers and ionicity from the averages, each with the jackknife error over runs\n"
              "(docs/transport.md).",
              "transport.csv of runs 1..N (results/<system>[+r<r>]/analysis/transport.csv)",
              "OUT (a transport table of the same columns, n_runs = N)",
              "solvmd transport-repeats results/li_fsi_dme_1M/analysis/transport.csv "
              "results/li_fsi_dme_1M+r2/analysis/transport.csv -o results/li_fsi_dme_1M/analysis/transport_runs.csv")
    p.add_argument("tables", nargs="+", help="transport.csv of runs 1..N (results/<system>[+r<r>]/analysis/)")
    p.add_argument("-o", "--out", required=True, help="output, e.g. results/<system>/analysis/transport_runs.csv")
    p.set_defaults(func=_cmd_transport_repeats)

    p = _verb(sub, "plot-thermo", "figure of temperature, density and energy against time",
              "One panel per quantity, coloured by MD stage, with the production mean.",
              "THERMO (results/<name>/md/thermo.csv)", "OUT (.png)",
              "solvmd plot-thermo results/demo_li_tfsi_dol_dme/md/thermo.csv -o results/demo_li_tfsi_dol_dme/md/thermo.png")
    p.add_argument("thermo", help="results/<name>/md/thermo.csv")
    p.add_argument("-o", "--out", required=True, help="output PNG")
    p.set_defaults(func=_cmd_plot_thermo)


def _add_tool_verbs(sub) -> None:
    """gpu-slot, species, platforms."""
    p = _verb(sub, "gpu-slot", "run a command on a free GPU",
              "Locks one free CUDA device (a lock file the kernel releases when the job exits, even after\n"
              "kill -9), exports SOLVMD_CUDA_DEVICE and runs the command; waits while every GPU is taken.\n"
              "The Snakemake profiles wrap MD and window jobs in it, so two jobs never share a GPU.",
              "COMMAND after --", "nothing of its own: the command's outputs",
              "solvmd gpu-slot --count 4 -- solvmd md results/x/build -o results/x/md")
    p.add_argument("--devices", help="comma list of CUDA device indices (default: CUDA_VISIBLE_DEVICES, "
                   "--count, or nvidia-smi)")
    p.add_argument("--count", type=int, help="use devices 0..N-1 (0 or left out: detect)")
    p.add_argument("--lock-dir", type=Path,
                   help="lock-file folder (default $SOLVMD_GPU_LOCK_DIR or <tmp>/solvmd-gpu-locks)")
    p.add_argument("--timeout", type=float, help="seconds to wait for a free GPU (default: forever)")
    p.add_argument("--need", type=int, default=1, help="GPUs the job asked for (default 1; 0: run the command "
                   "unchanged)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    p.set_defaults(func=_cmd_gpu_slot)

    p = _verb(sub, "species", "list the species a recipe can name",
              "Name, residue, role, formal charge, atom count, force-field file and SMILES of every species\n"
              "in forcefields/species.yaml and in the user species folders ($SOLVMD_SPECIES_PATH, else\n"
              "~/.local/share/solvmd/species; docs/species.md).",
              "forcefields/species.yaml and the user species folders", "a table on stdout", "solvmd species")
    p.set_defaults(func=_cmd_species)
    ssub = p.add_subparsers(dest="species_cmd", metavar="[add]")
    a = _verb(ssub, "add", "add a molecule or ion from its SMILES (registry entry + OpenMM XML)",
              "Types every atom with the general OPLS-AA typer (forcefields/tools/opls_types.py), looks up every\n"
              "bond, angle and torsion in the published tables (transfers tagged approx:), fits the charges\n"
              "(RESP: PySCF HF/6-31G* + AmberTools resp, minutes; or AM1-BCC: antechamber/sqm, seconds) and\n"
              "writes NAME/ into the first user species folder. Anything untypeable, a missing term or a bad\n"
              "input stops with one error and writes nothing. The shipped forcefields/ is never edited.",
              "NAME and SMILES (and the options)",
              "<species folder>/NAME/{species.yaml, name.xml, charges.json, SOURCES.md} (docs/species.md)",
              "solvmd species add DMC --smiles 'COC(=O)OC' --density-g-cm3 1.063 --charges am1bcc")
    a.add_argument("name", help="species name (a letter, then up to 15 letters, digits or _)")
    a.add_argument("--smiles", required=True, help="SMILES of the molecule or ion (hydrogens are added)")
    a.add_argument("--role", default="solvent", choices=["solvent", "cation", "anion"], help="default solvent")
    a.add_argument("--density-g-cm3", type=float, help="pure-liquid density at 298 K (required for a solvent)")
    a.add_argument("--charges", default="resp", choices=["resp", "am1bcc"], help="charge method (default resp)")
    a.add_argument("--residue", help="residue name, at most 3 characters (default: the first 3 of NAME)")
    a.add_argument("--molar-volume", type=float, help="ions: partial molar volume guess, cm^3/mol (default "
                   "M / 1.5 g/cm^3; only the initial box)")
    a.add_argument("--dir", type=Path, help="species folder to write into (default: first entry of "
                   "$SOLVMD_SPECIES_PATH, else ~/.local/share/solvmd/species)")
    a.set_defaults(func=_cmd_species)

    p = _verb(sub, "platforms", "list OpenMM platforms and devices, and which one `auto` picks",
              "Every platform and device (name, type, precisions), the automatic choice and why; --probe\n"
              "also runs the small force/minimizer probe on every GPU-platform device.",
              "nothing (the OpenMM installation)", "a report on stdout", "solvmd platforms --probe")
    p.add_argument("--probe", action="store_true", help="also probe every GPU-platform device (a child process each)")
    p.add_argument("--precision", default="mixed", choices=["single", "mixed", "double"],
                   help="precision to check the platforms for (default mixed)")
    p.set_defaults(func=_cmd_platforms)


def _finished_outputs(args: argparse.Namespace) -> list[Path]:
    """Files whose presence says a verb finished: removed again if this invocation wrote
    them and then failed."""
    out = Path(getattr(args, "out", "") or ".")
    by_verb = {
        "build": [out / records.MANIFEST],
        "md": [out / records.MD_JSON, out / records.FINAL_XML],
        "analyze": [out / records.ANALYSIS_JSON, out / records.INTERFACE_JSON],
        "pmf-prepare": [out / records.CV_JSON],
        "pmf-window": [out / records.window_npz(args.window)] if args.command == "pmf-window" else [],
        "pmf-estimate": [out / n for n in (records.BARRIER_JSON, records.PMF_CSV, records.ESTIMATE_JSON)],
        "compare": [Path(p) for p in (args.csv, getattr(args, "png", None)) if p] if args.command == "compare" else [],
        "summarize": [Path(p) for p in (args.csv, args.html) if p] if args.command == "summarize" else [],
        "sac-compare": [Path(p) for p in (args.csv, args.png) if p] if args.command == "sac-compare" else [],
        "plot-thermo": [out],
    }
    return by_verb.get(args.command, [])


def _mtimes(paths: list[Path]) -> dict[Path, float | None]:
    return {p: (p.stat().st_mtime_ns if p.is_file() else None) for p in paths}


def _remove_new(before: dict[Path, float | None]) -> None:
    for p, t in before.items():
        if p.is_file() and p.stat().st_mtime_ns != t:
            p.unlink()


def main(argv: list[str] | None = None) -> int:
    """Run one verb. A bad input ends in one ``solvmd <verb>: error: ...`` message and exit
    status 2; an unexpected exception (a bug) in one line and status 3, with the traceback
    when SOLVMD_DEBUG=1. Either way files this call wrote that look finished are removed."""
    import os
    import warnings

    from solvmd.log import configure

    configure(stream=sys.stderr)
    warnings.showwarning = lambda message, category, *a, **k: print(
        f"warning ({category.__name__}): {message}", file=sys.stderr)
    args = build_parser().parse_args(argv)
    guarded = _finished_outputs(args)
    before = _mtimes(guarded)
    try:
        args.func(args)
    except SolvmdError as err:
        _remove_new(before)
        print(f"solvmd {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (e.g. `solvmd species | head`): not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        _remove_new(before)
        print(f"solvmd {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the safety net; real validation comes first
        _remove_new(before)
        if os.environ.get("SOLVMD_DEBUG", "") not in ("", "0"):
            raise
        msg = " ".join(str(err).split())[:500]
        print(f"solvmd {args.command}: internal error: {type(err).__name__}: {msg} (this is a solvmd bug or an "
              "input it does not check yet; rerun with SOLVMD_DEBUG=1 for the traceback and report it)",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
