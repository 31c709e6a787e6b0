"""OpenMM platform choice: CUDA (mixed) > OpenCL (mixed) > CPU, unless overridden.

A platform counts as available only if a tiny Context can actually be created on it
(a CUDA plugin without a GPU is skipped). The override comes from the protocol or the
``SOLVMD_PLATFORM`` environment variable.
"""

from __future__ import annotations

import os

import openmm

from solvmd.errors import SolvmdError

PREFERENCE = ("CUDA", "OpenCL", "CPU")


def _properties(name: str, precision: str) -> dict[str, str]:
    props: dict[str, str] = {}
    if name in ("CUDA", "OpenCL"):
        props["Precision"] = precision
    if name == "CUDA" and os.environ.get("SOLVMD_CUDA_DEVICE"):
        props["DeviceIndex"] = os.environ["SOLVMD_CUDA_DEVICE"]
    if name == "CPU" and os.environ.get("SOLVMD_CPU_THREADS"):
        props["Threads"] = os.environ["SOLVMD_CPU_THREADS"]
    return props


def _usable(name: str, props: dict[str, str]) -> bool:
    try:
        platform = openmm.Platform.getPlatformByName(name)
        system = openmm.System()
        system.addParticle(1.0)
        openmm.Context(system, openmm.VerletIntegrator(0.001), platform, props)
        return True
    except Exception:
        return False


def available_platforms() -> list[str]:
    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def choose_platform(requested: str = "auto", precision: str = "mixed") -> tuple[openmm.Platform, dict[str, str]]:
    """The platform to run on and its properties.

    Args:
        requested: ``auto`` or a platform name (CUDA, OpenCL, CPU, Reference).
        precision: CUDA/OpenCL precision (``mixed`` default).
    """
    requested = os.environ.get("SOLVMD_PLATFORM", requested)
    names = available_platforms()
    if requested != "auto":
        if requested not in names:
            raise SolvmdError(
                f"platform {requested!r} is not available; this OpenMM has {names}. "
                "For CUDA install solvmd[cuda12] or solvmd[cuda13]"
            )
        props = _properties(requested, precision)
        if not _usable(requested, props):
            raise SolvmdError(f"platform {requested!r} is installed but cannot create a context (no device?)")
        return openmm.Platform.getPlatformByName(requested), props
    for name in PREFERENCE:
        if name in names:
            props = _properties(name, precision)
            if _usable(name, props):
                return openmm.Platform.getPlatformByName(name), props
    return openmm.Platform.getPlatformByName("Reference"), {}
