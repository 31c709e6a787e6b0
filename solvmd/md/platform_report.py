"""``solvmd platforms``: every platform and device, what ``auto`` picks and why, the probe results."""

from __future__ import annotations

import openmm

from solvmd.errors import SolvmdError
from solvmd.md import devices as devmod
from solvmd.md import probe as probemod
from solvmd.md.platforms import (GPU_PLATFORMS, HOST_PRECISION, available_platforms, cpu_properties,
                                 gpu_properties, select_platform)

_ROW = "  {:<12s} {:<64s} {:<6s} {}"


def _host_rows(names: list[str]) -> list[str]:
    rows = []
    for name in ("CPU", "Reference"):
        if name in names:
            threads = cpu_properties().get("Threads")
            what = {"CPU": f"this machine's cores ({f'{threads} thread(s), SOLVMD_CPU_THREADS' if threads else 'all'})",
                    "Reference": "this machine's cores (one thread, reference code, slow)"}[name]
            precisions = "single, mixed" if HOST_PRECISION[name] == "mixed" else "single, mixed, double"
            rows.append(_ROW.format(name, what, "CPU", precisions))
    return rows


def _device_rows(names: list[str]) -> list[str]:
    rows = []
    for device in devmod.list_devices():
        installed = "" if device.platform in names else " [OpenMM platform not installed]"
        name = f"{device.name} ({device.runtime})" if device.runtime else device.name
        rows.append(_ROW.format(device.label, name + installed, device.kind, ", ".join(device.precisions)))
    return rows


def _missing(names: list[str]) -> list[str]:
    notes = []
    if "CUDA" not in names:
        notes.append("CUDA: OpenMM's CUDA platform is not installed (pip install -e \".[cuda12]\" or \".[cuda13]\")")
    if not any(d.platform == "OpenCL" for d in devmod.list_devices()):
        notes.append("OpenCL: no OpenCL device (no ICD loader or runtime)")
    return notes


def _probe_rows(precision: str, names: list[str]) -> list[str]:
    """Probe every device of every installed GPU platform (``--probe``)."""
    rows = []
    for device in devmod.list_devices():
        if device.platform not in names or precision not in device.precisions:
            continue
        result = probemod.probe(device.platform, gpu_properties(device, precision))
        rows.append(f"  {device.label}: {result.summary()}")
    return rows or ["  (no GPU-platform device to probe)"]


def report(precision: str = "mixed", probe_all: bool = False) -> str:
    """The text ``solvmd platforms`` prints."""
    names = available_platforms()
    lines = [f"OpenMM {openmm.__version__}: platforms {', '.join(names)}",
             _ROW.format("platform", "device", "type", "precision")]
    lines += _host_rows(names) + _device_rows(names)
    lines += [f"  note: {n}" for n in _missing(names)]
    try:
        choice = select_platform("auto", precision)
        lines.append(f"auto picks: {choice.name} {choice.properties}: {choice.reason}")
        lines += [f"  skipped {s}" for s in choice.skipped]
        probe = choice.probe.summary() if choice.probe else "none needed (CPU and Reference are not probed)"
        lines.append(f"probe of the auto choice: {probe}")
    except SolvmdError as err:
        lines.append(f"auto: error: {err}")
    if probe_all:
        lines.append(f"probes ({precision} precision; each in a child process):")
        lines += _probe_rows(precision, names)
    elif any(d.platform in GPU_PLATFORMS and d.platform in names for d in devmod.list_devices()):
        lines.append("  (solvmd platforms --probe also probes every GPU-platform device, CPU devices included)")
    return "\n".join(lines)
