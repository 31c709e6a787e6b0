"""``solvmd`` command line: thin argument parsing over library calls.

Every verb takes files in and writes files out, so it runs the same by hand, from
Snakemake, or on a cluster node. Errors print one message and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from solvmd.errors import SolvmdError


def _cmd_build(args: argparse.Namespace) -> None:
    from solvmd.build.interface import build_interface
    from solvmd.build.system import build_system
    from solvmd.recipe import InterfaceRecipe, load_any_recipe

    recipe = load_any_recipe(args.recipe)
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
    protocol = load_protocol(args.protocol, overrides)
    run_md(args.build, args.out, protocol)


def _cmd_species(args: argparse.Namespace) -> None:
    from solvmd import species

    print(f"{'name':6s} {'residue':7s} {'role':8s} {'charge':>6s} {'atoms':>5s}  {'xml':10s} smiles")
    for sp in species.registry().values():
        print(f"{sp.name:6s} {sp.residue:7s} {sp.role:8s} {sp.charge:>6d} {sp.n_atoms:>5d}  {sp.xml:10s} {sp.smiles}")


def _cmd_platforms(args: argparse.Namespace) -> None:
    from solvmd.md.platforms import available_platforms, choose_platform

    platform, props = choose_platform("auto")
    print(f"installed: {available_platforms()}; auto choice: {platform.getName()} {props}")


def _cmd_analyze(args: argparse.Namespace) -> None:
    from solvmd import analysis

    if args.spec is not None:
        spec = analysis.load_spec(args.spec)
    elif args.build and args.md:
        spec = analysis.spec_from_manifest(Path(args.build), Path(args.md))
    else:
        raise SolvmdError("solvmd analyze: give SPEC.yaml, or --build BUILD_DIR --md MD_DIR for a solvmd run")
    tables = analysis.run_analysis(spec, Path(args.out))
    if args.build:
        from solvmd.build.interface import is_interface_build

        if is_interface_build(args.build):
            settings = analysis.interface_settings_from_manifest(Path(args.build))
            analysis.run_interface_analysis(spec, settings, Path(args.out), results=tables)


def _pmf_spec(args: argparse.Namespace):
    from solvmd import pmf

    return pmf.load_spec(args.spec, name=args.name)


def _cmd_pmf_prepare(args: argparse.Namespace) -> None:
    from solvmd import pmf

    build, md = Path(args.build), Path(args.md)
    pmf.prepare_windows(build / "system.xml", md / "final.xml", _pmf_spec(args), Path(args.out),
                        topology=build / "system.pdb", strict=True)


def _cmd_pmf_window(args: argparse.Namespace) -> None:
    from solvmd import pmf

    out = Path(args.out)
    pmf.run_window(Path(args.build) / "system.xml", out / "init" / f"window_{args.window}.xml",
                   _pmf_spec(args), args.window, out)


def _cmd_pmf_estimate(args: argparse.Namespace) -> None:
    from solvmd import pmf

    pmf.estimate_pmf(Path(args.out), _pmf_spec(args))


def _cmd_compare(args: argparse.Namespace) -> None:
    from solvmd import pmf

    table = pmf.compare_barriers(args.barriers, args.csv, args.png, labels=args.labels)
    print(table.to_string(index=False))


def _cmd_sac_compare(args: argparse.Namespace) -> None:
    from solvmd.pmf.sac import compare_sac

    print(compare_sac(args.pmf_dirs, args.csv, args.png).to_string(index=False))


def _cmd_summarize(args: argparse.Namespace) -> None:
    from solvmd.summary import summarize, write_summary

    table = summarize(args.results, args.systems)
    write_summary(table, args.csv, args.html)
    print(table.to_string(index=False, max_cols=12))


def _cmd_plot_thermo(args: argparse.Namespace) -> None:
    from solvmd.md.plots import write_thermo_plot

    if not Path(args.thermo).is_file():
        raise SolvmdError(f"{args.thermo} does not exist (run solvmd md first)")
    write_thermo_plot(args.thermo, args.out)


def _cmd_gpu_slot(args: argparse.Namespace) -> None:
    from solvmd.gpu_slots import exec_with_slot

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    devices = [d for d in args.devices.split(",") if d.strip()] if args.devices else None
    count = args.count if args.count and args.count > 0 else None
    exec_with_slot(command, devices=devices, count=count, lock_dir=args.lock_dir, timeout_s=args.timeout,
                   need=args.need)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="solvmd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="recipe -> packed, parameterized system (system.pdb/xml, manifest.json)")
    p.add_argument("recipe", help="systems/<name>.yaml")
    p.add_argument("-o", "--out", required=True, help="output folder, e.g. results/<name>/build")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("md", help="minimize, heat, equilibrate, produce (resumes from checkpoints)")
    p.add_argument("build", help="build folder written by `solvmd build`")
    p.add_argument("-o", "--out", required=True, help="output folder, e.g. results/<name>/md")
    p.add_argument("-p", "--protocol", help="YAML with MD settings (top level or an md: block)")
    p.add_argument("--platform", choices=["auto", "CUDA", "OpenCL", "CPU", "Reference"], help="override the platform")
    p.set_defaults(func=_cmd_md)

    p = sub.add_parser("analyze", help="RDF, CN, shells, SSIP/CIP/AGG, residence, transport")
    p.add_argument("spec", nargs="?", help="analysis spec YAML (any MDAnalysis-readable trajectory)")
    p.add_argument("--build", help="solvmd build folder (spec written from its manifest)")
    p.add_argument("--md", help="solvmd md folder")
    p.add_argument("-o", "--out", required=True, help="output folder, e.g. results/<name>/analysis")
    p.set_defaults(func=_cmd_analyze)

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
    p.set_defaults(func=_cmd_pmf_window)

    p = sub.add_parser("pmf-estimate", help="MBAR PMF, WHAM cross-check, barrier.json, figures")
    pmf_args(p, need_build=False)
    p.set_defaults(func=_cmd_pmf_estimate)

    p = sub.add_parser("sac-compare", help="single-atom-catalyst comparison table + figure from PMF folders")
    p.add_argument("pmf_dirs", nargs="+", help="finished PMF folders results/<system>/pmf/<cv>")
    p.add_argument("--csv", required=True, help="output table, e.g. results/sac_comparison.csv")
    p.add_argument("--png", help="output figure, e.g. results/sac_comparison.png")
    p.set_defaults(func=_cmd_sac_compare)

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

    p = sub.add_parser("platforms", help="list OpenMM platforms and the automatic choice")
    p.set_defaults(func=_cmd_platforms)
    return parser


def main(argv: list[str] | None = None) -> int:
    import logging

    import warnings

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    warnings.showwarning = lambda message, category, *a, **k: print(
        f"warning ({category.__name__}): {message}", file=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SolvmdError as err:
        print(f"solvmd {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
