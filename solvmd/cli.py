"""``solvmd`` command line: thin argument parsing over library calls.

Every verb takes files in and writes files out, so it runs the same by hand, from
Snakemake, or on a cluster node. Errors print one message and exit with status 2.
"""

from __future__ import annotations

import argparse
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
    if spec.sampler == "exchange":
        raise SolvmdError(f"pmf {spec.name} has sampler: exchange: its windows run together as replicas; use "
                          "`solvmd pmf-exchange` (or set sampler: independent for one job per window)")
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


def _cmd_pmf_estimate(args: argparse.Namespace) -> None:
    from solvmd import pmf

    spec = _pmf_spec(args)
    out = Path(args.out)
    if not out.is_dir():
        raise SolvmdError(f"PMF folder {out} does not exist; run `solvmd pmf-prepare` and `pmf-window` first")
    records.check_identity(out, _pmf_identity(args, spec, build=False))
    for k in range(pmf.n_windows(spec)):
        records.check_window_npz(out / records.window_npz(k))
    for name in (records.BARRIER_JSON, records.PMF_CSV, records.ESTIMATE_JSON):
        (out / name).unlink(missing_ok=True)  # a failed estimate must not leave the old result looking new
    pmf.estimate_pmf(out, spec)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="solvmd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run_verbs, _add_pmf_verbs, _add_table_verbs, _add_tool_verbs):
        add(sub)
    return parser


def _add_run_verbs(sub) -> None:
    """build, md, analyze."""
    p = sub.add_parser("build", help="recipe -> packed, parameterized system (system.pdb/xml, manifest.json)")
    p.add_argument("recipe", help="systems/<name>.yaml")
    p.add_argument("-o", "--out", required=True, help="output folder, e.g. results/<name>/build")
    p.add_argument("--repeat", type=int, default=1, help="independent repeat r: packmol seed + r - 1 (default 1)")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("md", help="minimize, heat, equilibrate, produce (resumes from checkpoints)")
    p.add_argument("build", help="build folder written by `solvmd build`")
    p.add_argument("-o", "--out", required=True, help="output folder, e.g. results/<name>/md")
    p.add_argument("-p", "--protocol", help="YAML with MD settings (top level or an md: block)")
    p.add_argument("--platform", choices=["auto", "CUDA", "OpenCL", "CPU", "Reference"], help="override the platform")
    p.add_argument("--repeat", type=int, default=1, help="independent repeat r: velocity seed + r - 1 (default 1)")
    p.set_defaults(func=_cmd_md)

    p = sub.add_parser("analyze", help="RDF, CN, shells, SSIP/CIP/AGG, residence, transport")
    p.add_argument("spec", nargs="?", help="analysis spec YAML (any MDAnalysis-readable trajectory)")
    p.add_argument("--build", help="solvmd build folder (spec written from its manifest)")
    p.add_argument("--md", help="solvmd md folder")
    p.add_argument("-o", "--out", required=True, help="output folder, e.g. results/<name>/analysis")
    p.add_argument("--no-residence", action="store_true", help="skip residence times")
    p.add_argument("--no-transport", action="store_true", help="skip diffusion and conductivity")
    p.set_defaults(func=_cmd_analyze)


def _add_pmf_verbs(sub) -> None:
    """pmf-prepare, pmf-window, pmf-exchange, pmf-estimate, sac-compare."""
    def pmf_args(p, need_build=True):
        p.add_argument("spec", help="recipe with a pmf: block, or a PMF spec YAML")
        p.add_argument("--name", help="which pmf entry, when the file has several")
        if need_build:
            p.add_argument("--build", required=True, help="solvmd build folder")
        p.add_argument("-o", "--out", required=True, help="PMF folder, e.g. results/<name>/pmf/<cv>")

    p = sub.add_parser("pmf-prepare", help="choose tagged atoms, make window start structures (steered pull)")
    pmf_args(p)
    p.add_argument("--md", required=True, help="solvmd md folder (final.xml is the start state)")
    p.set_defaults(func=_cmd_pmf_prepare)

    p = sub.add_parser("pmf-window", help="equilibrate and sample one umbrella window (restartable)")
    pmf_args(p)
    p.add_argument("--window", type=int, required=True, help="window index k")
    p.add_argument("--segment", type=int, default=1, help="extension j >= 2 planned in extend.json (default 1)")
    p.set_defaults(func=_cmd_pmf_window)

    p = sub.add_parser("pmf-exchange", help="all windows as replicas with Hamiltonian replica exchange "
                       "(sampler: exchange; restartable, extendable)")
    pmf_args(p)
    p.add_argument("--segment", type=int, default=1, help="extension j >= 2 planned in extend.json (default 1)")
    p.set_defaults(func=_cmd_pmf_exchange)

    p = sub.add_parser("pmf-estimate", help="MBAR PMF, WHAM cross-check, barrier.json, figures")
    pmf_args(p, need_build=False)
    p.set_defaults(func=_cmd_pmf_estimate)

    p = sub.add_parser("pmf-repeats", help="combine independent repeats of one PMF: mean, between-repeat "
                       "standard error, agreement, verdict (repeats.json)")
    p.add_argument("barriers", nargs="+", help="barrier.json of repeats 1..N (results/<system>[+r<r>]/pmf/<cv>/)")
    p.add_argument("-o", "--out", required=True, help="output, e.g. results/<system>/pmf/<cv>/repeats.json")
    p.set_defaults(func=_cmd_pmf_repeats)

    p = sub.add_parser("sac-compare", help="single-atom-catalyst comparison table + figure from PMF folders")
    p.add_argument("pmf_dirs", nargs="+", help="finished PMF folders results/<system>/pmf/<cv>")
    p.add_argument("--csv", required=True, help="output table, e.g. results/sac_comparison.csv")
    p.add_argument("--png", help="output figure, e.g. results/sac_comparison.png")
    p.set_defaults(func=_cmd_sac_compare)


def _add_table_verbs(sub) -> None:
    """compare, summarize, plot-thermo."""
    p = sub.add_parser("compare", help="table and figure of barriers across systems")
    p.add_argument("barriers", nargs="+", help="barrier.json files")
    p.add_argument("--labels", nargs="+", help="labels for the barriers (default: system/cv)")
    p.add_argument("--csv", required=True, help="output table")
    p.add_argument("--png", help="output figure")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("summarize", help="summary.csv: one row per system (density, CN, SSIP/CIP/AGG, barriers)")
    p.add_argument("results", help="results folder (results/)")
    p.add_argument("--systems", nargs="+", help="systems to include (default: every finished one)")
    p.add_argument("--csv", required=True, help="output table, e.g. results/summary.csv")
    p.add_argument("--html", help="also an HTML rendering (for the Snakemake report)")
    p.set_defaults(func=_cmd_summarize)

    p = sub.add_parser("plot-thermo", help="figure of T, density and energy against time from thermo.csv")
    p.add_argument("thermo", help="results/<name>/md/thermo.csv")
    p.add_argument("-o", "--out", required=True, help="output PNG")
    p.set_defaults(func=_cmd_plot_thermo)


def _add_tool_verbs(sub) -> None:
    """gpu-slot, species, platforms."""
    p = sub.add_parser("gpu-slot", help="run a command on a free GPU (lock-file slot, sets SOLVMD_CUDA_DEVICE)")
    p.add_argument("--devices", help="comma list of CUDA device indices (default: CUDA_VISIBLE_DEVICES, "
                   "--count, or nvidia-smi)")
    p.add_argument("--count", type=int, help="use devices 0..N-1 (0: detect)")
    p.add_argument("--lock-dir", type=Path,
                   help="lock-file folder (default $SOLVMD_GPU_LOCK_DIR or <tmp>/solvmd-gpu-locks)")
    p.add_argument("--timeout", type=float, help="seconds to wait for a free GPU (default: forever)")
    p.add_argument("--need", type=int, default=1, help="GPUs the job asked for (0: run the command unchanged)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    p.set_defaults(func=_cmd_gpu_slot)

    p = sub.add_parser("species", help="list the species registry")
    p.set_defaults(func=_cmd_species)

    p = sub.add_parser("platforms", help="list OpenMM platforms and devices, the automatic choice and its probe")
    p.add_argument("--probe", action="store_true", help="also probe every GPU-platform device (a child process each)")
    p.add_argument("--precision", default="mixed", choices=["single", "mixed", "double"])
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
