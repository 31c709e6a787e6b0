"""Shared pieces of the benchmark scripts: MD protocols, merged result tables, resumable runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from solvmd.md.protocol import MDProtocol, load_protocol

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def benchmark_protocol(equilibrate_ps: float, production_ps: float, platform: str = "auto",
                       frame_interval_ps: float = 1.0, checkpoint_interval_ps: float = 10.0) -> MDProtocol:
    """5 ps NVT heat, then NPT equilibration and production (ps), reported every 0.5 ps."""
    return load_protocol(None, dict(heat_ps=5, equilibrate_ps=equilibrate_ps, production_ps=production_ps,
                                    report_interval_ps=0.5, frame_interval_ps=frame_interval_ps,
                                    checkpoint_interval_ps=checkpoint_interval_ps, platform=platform))


def write_fresh_table(rows: list[dict], out: Path, stem: str, columns: list[str]) -> pd.DataFrame:
    """``out/<stem>.csv`` and ``<stem>.md`` rebuilt from ``rows`` (not merged with older tables), atomically."""
    from solvmd.io import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows).reindex(columns=columns)
    write_text_atomic(out / f"{stem}.csv", table.to_csv(index=False))
    shown = table.astype(object).where(table.notna(), "")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in shown.itertuples(index=False)]
    write_text_atomic(out / f"{stem}.md", "\n".join(lines) + "\n")
    return table


def write_merged_table(rows: list[dict], out: Path, stem: str, key: str) -> pd.DataFrame:
    """Merge ``rows`` into ``out/<stem>.csv`` (rows with the same ``key`` value are replaced,
    others kept, so benchmarks can be run one system at a time) and write ``<stem>.md``."""
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    csv = out / f"{stem}.csv"
    if csv.exists():
        old = pd.read_csv(csv)
        table = pd.concat([old[~old[key].isin(table[key])], table], ignore_index=True)
    table.to_csv(csv, index=False)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False)]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return table


# --------------------------------------------------------------------------- long, resumable validation runs
# Shared by validation.py and densities.py: the annealed protocol from the command line, one
# folder per (system, packing) with its own packmol and velocity seeds, the status of a run
# that has not finished, and the per-sitting run limit.


def add_protocol_arguments(ap, equilibrate_ps: float, production_ps: float, frame_ps: float,
                           checkpoint_ps: float, packings: int) -> None:
    """Command-line options of the annealed protocol (ps, K) and of the run bookkeeping."""
    ap.add_argument("--heat-ps", type=float, default=5.0, help="NVT heating 50 K -> 298.15 K")
    ap.add_argument("--anneal-K", type=float, default=450.0, help="NVT anneal temperature (0: no anneal)")
    ap.add_argument("--anneal-ps", type=float, default=200.0)
    ap.add_argument("--cool-ps", type=float, default=100.0, help="linear NVT cool-down to 298.15 K")
    ap.add_argument("--equilibrate-ps", type=float, default=equilibrate_ps, help="NPT equilibration")
    ap.add_argument("--production-ps", type=float, default=production_ps, help="NPT production (analysed)")
    ap.add_argument("--frame-ps", type=float, default=frame_ps, help="frame and thermo interval")
    ap.add_argument("--checkpoint-ps", type=float, default=checkpoint_ps)
    ap.add_argument("--platform", default="auto")
    ap.add_argument("--packings", type=int, default=packings,
                    help="independent runs per system: packmol seed = recipe seed + k, velocity seed = 2024 + k")
    ap.add_argument("--max-runs", type=int, default=None,
                    help="start or continue at most this many unfinished runs in this sitting (the rest: next time)")
    ap.add_argument("--table-only", action="store_true", help="only rebuild the tables from the finished runs")


def annealed_protocol(args) -> MDProtocol:
    """minimize -> heat -> NVT anneal at ``--anneal-K`` -> cool -> NPT equilibration -> NPT production."""
    anneal = dict(anneal_K=args.anneal_K, anneal_ps=args.anneal_ps, cool_ps=args.cool_ps) if args.anneal_K else {}
    return load_protocol(None, dict(heat_ps=args.heat_ps, equilibrate_ps=args.equilibrate_ps,
                                    production_ps=args.production_ps, report_interval_ps=args.frame_ps,
                                    frame_interval_ps=args.frame_ps, checkpoint_interval_ps=args.checkpoint_ps,
                                    platform=args.platform, **anneal))


def protocol_text(p: dict) -> str:
    """Run length of a protocol record (md.json ``protocol``), e.g. 'heat 5 + anneal 200 @ 450 K + ...'."""
    anneal = f" + anneal {p['anneal_ps']:g} @ {p['anneal_K']:g} K + cool {p['cool_ps']:g}" if p.get("anneal_K") else ""
    return (f"heat {p['heat_ps']:g}{anneal} + NPT {p['equilibrate_ps']:g} + production {p['production_ps']:g} ps "
            f"({p['timestep_fs']:g} fs)")


def same_protocol(recorded: dict, protocol: MDProtocol) -> bool:
    """Whether a run's recorded protocol is ``protocol`` (the velocity seed may differ)."""
    want = protocol.model_dump(mode="json")
    return {k: v for k, v in recorded.items() if k != "seed"} == {k: v for k, v in want.items() if k != "seed"}


@dataclass(frozen=True)
class Run:
    """One independent run of a system: packing ``k`` (0-based) with its packmol and velocity seeds."""

    system: str
    k: int
    packmol_seed: int
    velocity_seed: int

    def folder(self, workdir: str | Path) -> Path:
        return Path(workdir) / self.system / f"packing{self.k + 1}_seed{self.packmol_seed}"

    def protocol(self, protocol: MDProtocol) -> MDProtocol:
        return protocol.model_copy(update={"seed": self.velocity_seed})


def make_runs(systems: dict[str, int], n_packings: int, velocity_seed: int) -> list[Run]:
    """Runs for ``{system: recipe packmol seed}``: system by system, packing k with seeds + k."""
    if n_packings < 1:
        raise SystemExit("--packings must be >= 1")
    return [Run(s, k, seed + k, velocity_seed + k) for s, seed in systems.items() for k in range(n_packings)]


def run_status(work: Path, protocol: MDProtocol) -> str:
    """What an unfinished run folder holds, in words (never a result)."""
    md = work / "md"
    if not (work / "build" / "manifest.json").exists():
        return "not started"
    if (md / "md.json").exists():
        return "MD finished, not analysed"
    if (md / "thermo.csv").exists():
        t = pd.read_csv(md / "thermo.csv", usecols=["time_ps"])["time_ps"]
        p = protocol
        total = p.heat_ps + p.anneal_ps + p.cool_ps + p.equilibrate_ps + p.production_ps
        return f"MD in progress ({float(t.iloc[-1]) if len(t) else 0.0:g} of {total:g} ps)"
    return "built, MD not started"


def archived(out: str | Path, run: Run, stem: str) -> Path:
    """The committed record of a finished run: ``<out>/<stem>_runs/<system>/packing<k>_seed<s>.json``
    (``out`` is the table folder, ``benchmarks/results`` by default).

    A campaign spans sessions and machines: the work folder (checkpoints, trajectories) may be
    gone next time, so every finished run's numbers are kept beside the tables, in git, and the
    tables are rebuilt from the work folder where it has the run and from this archive where not.
    """
    return Path(out) / f"{stem}_runs" / run.system / f"packing{run.k + 1}_seed{run.packmol_seed}.json"


def read_archived(out: str | Path, run: Run, stem: str, protocol: MDProtocol) -> dict | None:
    """The archived record of ``run`` made with ``protocol`` (None when absent or made otherwise)."""
    import json

    path = archived(out, run, stem)
    record = json.loads(path.read_text()) if path.exists() else None
    return record if record is not None and same_protocol(record["protocol"], protocol) else None


def runs_this_sitting(todo: list[Run], max_runs: int | None) -> list[Run]:
    """The first ``max_runs`` unfinished runs (all of them when None)."""
    return todo if max_runs is None else todo[:max(max_runs, 0)]
