"""OpenMM platform choice: CUDA (mixed) > OpenCL (mixed) > CPU, unless overridden.

A platform counts as available only if a tiny Context can actually be created on it
(a CUDA plugin without a GPU is skipped). The override comes from the protocol or the
``SOLVMD_PLATFORM`` environment variable.

CPU fallback (``allow_cpu_fallback``; ``SOLVMD_ALLOW_CPU_FALLBACK=1/0`` overrides): when
a GPU platform (CUDA, OpenCL) is requested but unusable, the default is an error; with
fallback allowed a :class:`PlatformFallbackWarning` is issued and the CPU platform used.
With ``auto`` the default is to fall back to the CPU silently; with fallback explicitly
disallowed, ``auto`` finding no GPU platform is an error (a GPU profile that must not
quietly run on CPUs).
"""

from __future__ import annotations

import os
import warnings

import openmm

from solvmd.errors import SolvmdError

PREFERENCE = ("CUDA", "OpenCL", "CPU")
GPU_PLATFORMS = ("CUDA", "OpenCL")
ENV_FALLBACK = "SOLVMD_ALLOW_CPU_FALLBACK"


class PlatformFallbackWarning(UserWarning):
    """A GPU platform was requested but the run falls back to the CPU."""


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


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


def _cpu(precision: str, why: str) -> tuple[openmm.Platform, dict[str, str]]:
    warnings.warn(f"{why}; falling back to the CPU platform (md.allow_cpu_fallback is true)",
                  PlatformFallbackWarning, stacklevel=3)
    return openmm.Platform.getPlatformByName("CPU"), _properties("CPU", precision)


def choose_platform(requested: str = "auto", precision: str = "mixed",
                    allow_cpu_fallback: bool | None = None) -> tuple[openmm.Platform, dict[str, str]]:
    """The platform to run on and its properties.

    Args:
        requested: ``auto`` or a platform name (CUDA, OpenCL, CPU, Reference).
        precision: CUDA/OpenCL precision (``mixed`` default).
        allow_cpu_fallback: use the CPU (with a warning) when a requested GPU platform is
            unusable. None: no for an explicit GPU platform, yes for ``auto``. False with
            ``auto``: finding no GPU platform is an error.
    """
    requested = os.environ.get("SOLVMD_PLATFORM", requested)
    env = _env_flag(ENV_FALLBACK)
    if env is not None:
        allow_cpu_fallback = env
    names = available_platforms()
    if requested != "auto":
        if requested not in names:
            why = (f"platform {requested!r} is not available; this OpenMM has {names}. "
                   "For CUDA install solvmd[cuda12] or solvmd[cuda13]")
            if requested in GPU_PLATFORMS and allow_cpu_fallback:
                return _cpu(precision, why)
            raise SolvmdError(why + _fallback_hint(requested))
        props = _properties(requested, precision)
        if not _usable(requested, props):
            why = f"platform {requested!r} is installed but cannot create a context (no device?)"
            if requested in GPU_PLATFORMS and allow_cpu_fallback:
                return _cpu(precision, why)
            raise SolvmdError(why + _fallback_hint(requested))
        return openmm.Platform.getPlatformByName(requested), props
    for name in PREFERENCE:
        if name in names:
            if name == "CPU" and allow_cpu_fallback is False:
                raise SolvmdError(f"no usable GPU platform (CUDA, OpenCL) on this machine (OpenMM has {names}) "
                                  "and md.allow_cpu_fallback is false: run on a GPU node, or set "
                                  "allow_cpu_fallback: true to accept the CPU")
            props = _properties(name, precision)
            if _usable(name, props):
                return openmm.Platform.getPlatformByName(name), props
    return openmm.Platform.getPlatformByName("Reference"), {}


def _fallback_hint(requested: str) -> str:
    if requested not in GPU_PLATFORMS:
        return ""
    return ("; CPU fallback is off, so the run stops here: run it on a GPU node, or set "
            f"md.allow_cpu_fallback: true (or {ENV_FALLBACK}=1) to accept the CPU")
