"""Shared pieces of the benchmark scripts: the short MD protocol and the merged result tables."""

from __future__ import annotations

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
