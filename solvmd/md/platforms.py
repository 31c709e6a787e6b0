"""OpenMM platform choice that cannot crash or crawl.

``auto``: a GPU platform (CUDA, then OpenCL) only on a GPU *device*, and only after it
passed its probe (:mod:`solvmd.md.probe`: a small real system minimised and stepped in a
child process, forces checked against the CPU platform); otherwise the CPU platform. An
OpenCL CPU device (PoCL, Intel's CPU runtime) is never chosen by ``auto``: it runs the
same work as the CPU platform through a GPU-shaped kernel compiler, and PoCL 3.1
miscompiles OpenMM 8.6's GPU minimiser (a segmentation fault; ``docs/pocl_minimizer_crash.md``).
A device that fails its probe is skipped; the reason is printed once per process and kept
in :class:`PlatformChoice` (``md.json`` records it).

An explicit platform (``md.platform``, ``--platform``, ``SOLVMD_PLATFORM``) is probed too.
On a CPU device it still runs, with a warning giving the probe's speed next to the CPU
platform's; when only its minimiser failed, ``solvmd md`` minimises on the CPU platform
(``PlatformChoice.minimize_platform``).

CPU fallback (``allow_cpu_fallback``; ``SOLVMD_ALLOW_CPU_FALLBACK=1/0`` overrides): when
a requested GPU platform is unusable, the default is an error; with fallback allowed a
:class:`PlatformFallbackWarning` is issued and the CPU platform used. With ``auto`` the
default is to fall back to the CPU; with fallback explicitly disallowed, ``auto`` finding
no usable GPU is an error (a GPU profile that must not quietly run on CPUs).

Bad input (an unknown platform name, a ``SOLVMD_CUDA_DEVICE`` that does not exist, a
precision the platform lacks) is one :class:`SolvmdError` listing what is available.
"""

from __future__ import annotations

import locale
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import openmm

from solvmd.errors import SolvmdError
from solvmd.log import get_logger
from solvmd.md import devices as devmod
from solvmd.md import probe as probemod
from solvmd.md.devices import PRECISION_ORDER, Device

GPU_PLATFORMS = ("CUDA", "OpenCL")
KNOWN_PLATFORMS = ("CUDA", "OpenCL", "CPU", "Reference")
ENV_FALLBACK = "SOLVMD_ALLOW_CPU_FALLBACK"
ENV_DEVICE = "SOLVMD_CUDA_DEVICE"
# the most accurate precision each CPU-side platform delivers (CPU: single-precision forces
# accumulated in double, like "mixed"; Reference: double throughout)
HOST_PRECISION = {"CPU": "mixed", "Reference": "double"}
LOG = get_logger("platform")
_SHOWN: set[str] = set()


class PlatformFallbackWarning(UserWarning):
    """A GPU platform was requested but the run falls back to the CPU."""


class PlatformDeviceWarning(UserWarning):
    """An explicitly requested GPU platform runs on a CPU device (or minimises on the CPU)."""


@dataclass
class PlatformChoice:
    """The platform a run uses, and why.

    Attributes:
        name: OpenMM platform name.
        properties: OpenMM platform properties (Precision, DeviceIndex, Threads...).
        reason: why this platform, in words.
        requested: what was asked (``auto`` or a platform name).
        device: the GPU-platform device (None on CPU/Reference).
        probe: the probe result of the chosen platform (None on CPU/Reference).
        skipped: devices ``auto`` passed over, each with its reason.
        minimize_platform: where to minimise when it is not this platform (its minimiser
            failed the probe), else None.
    """

    name: str
    properties: dict[str, str]
    reason: str
    requested: str = "auto"
    device: Device | None = None
    probe: probemod.ProbeResult | None = None
    skipped: list[str] = field(default_factory=list)
    minimize_platform: str | None = None

    @property
    def platform(self) -> openmm.Platform:
        return openmm.Platform.getPlatformByName(self.name)

    def record(self) -> dict:
        """JSON-ready form for ``md.json``."""
        return {"requested": self.requested, "platform": self.name, "properties": self.properties,
                "device": None if self.device is None else self.device.describe(), "reason": self.reason,
                "probe": None if self.probe is None else self.probe.record(), "skipped": list(self.skipped),
                "minimize_platform": self.minimize_platform}


def available_platforms() -> list[str]:
    """Names of the OpenMM platforms this installation has."""
    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def say_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process meets it."""
    if message not in _SHOWN:
        _SHOWN.add(message)
        LOG.warning(message)


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def cpu_properties() -> dict[str, str]:
    """CPU platform properties (``Threads`` from ``SOLVMD_CPU_THREADS``)."""
    threads = os.environ.get("SOLVMD_CPU_THREADS")
    return {"Threads": threads} if threads else {}


# --------------------------------------------------------------------------- input checks


def check_name(requested: str, names: list[str]) -> None:
    """Refuse a platform name that is neither ``auto`` nor an OpenMM platform."""
    if requested == "auto" or requested in names or requested in KNOWN_PLATFORMS:
        return
    raise SolvmdError(f"unknown platform {requested!r}: choose auto or one of {', '.join(KNOWN_PLATFORMS)} "
                      f"(names are case-sensitive; installed here: {', '.join(names)})")


def check_precision(precision: str) -> None:
    if precision not in PRECISION_ORDER:
        raise SolvmdError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISION_ORDER)}")


def _host_precision_ok(name: str, precision: str) -> None:
    """The CPU platform computes like ``mixed``: asking it for ``double`` is refused."""
    best = HOST_PRECISION.get(name, "double")
    if PRECISION_ORDER.index(precision) > PRECISION_ORDER.index(best):
        offers = ", ".join(PRECISION_ORDER[:PRECISION_ORDER.index(best) + 1])
        raise SolvmdError(f"platform {name} lacks precision {precision!r}: it offers {offers} "
                          "(double precision: platform Reference, slow, or a GPU platform)")


def cuda_pin(found: list[Device]) -> int | None:
    """``SOLVMD_CUDA_DEVICE`` as an index, checked against the CUDA devices ``found``."""
    raw = os.environ.get(ENV_DEVICE, "").strip()
    if not raw:
        return None
    listing = "; ".join(d.describe() for d in found) or "none"
    try:
        index = int(raw)
    except ValueError:
        raise SolvmdError(f"{ENV_DEVICE}={raw!r} is not a device index; CUDA devices here: {listing}") from None
    if not any(d.index == index for d in found):
        raise SolvmdError(f"{ENV_DEVICE}={index}: no such CUDA device; CUDA devices here: {listing}")
    return index


def platform_devices(name: str) -> list[Device]:
    """Devices of one GPU platform, GPUs first; CUDA narrowed to ``SOLVMD_CUDA_DEVICE`` when set."""
    found = [d for d in devmod.list_devices() if d.platform == name]
    if name == "CUDA" and found:
        pin = cuda_pin(found)
        found = [d for d in found if pin is None or d.index == pin]
    return sorted(found, key=lambda d: not d.is_gpu)


def gpu_properties(device: Device, precision: str) -> dict[str, str]:
    return {"Precision": precision, **device.properties()}


# --------------------------------------------------------------------------- the choice


def _cpu_choice(requested: str, reason: str, skipped: list[str] | None = None) -> PlatformChoice:
    return PlatformChoice("CPU", cpu_properties(), reason, requested, skipped=skipped or [])


def _fallback(requested: str, why: str, allow: bool | None) -> PlatformChoice:
    """CPU with a warning when fallback is allowed, else the error ``why``."""
    if allow:
        warnings.warn(f"{why}; falling back to the CPU platform (md.allow_cpu_fallback is true)",
                      PlatformFallbackWarning, stacklevel=4)
        return _cpu_choice(requested, f"fallback: {why}")
    raise SolvmdError(why + ("; CPU fallback is off, so the run stops here: run it on a GPU node, or set "
                             f"md.allow_cpu_fallback: true (or {ENV_FALLBACK}=1) to accept the CPU"))


def _auto(precision: str, allow: bool | None, names: list[str]) -> PlatformChoice:
    """First GPU device (CUDA, then OpenCL) that offers ``precision`` and passes its probe; else CPU."""
    skipped = []
    for name in GPU_PLATFORMS:
        if name not in names:
            continue
        for device in platform_devices(name):
            if not device.is_gpu:
                skipped.append(f"{device.describe()}: a {device.kind} device, never faster than the CPU platform")
            elif precision not in device.precisions:
                skipped.append(f"{device.describe()}: lacks precision {precision!r}")
            else:
                result = probemod.probe(name, gpu_properties(device, precision))
                if result.ok:
                    return PlatformChoice(name, gpu_properties(device, precision),
                                          f"auto: first GPU device that passed its probe ({device.describe()})",
                                          "auto", device, result, skipped)
                skipped.append(f"{device.describe()}: probe {result.summary()}")
                say_once(f"platform auto: skipping {device.describe()}: probe {result.summary()}")
    if allow is False:
        raise SolvmdError(f"no usable GPU platform on this machine (OpenMM has {names}"
                          + (f"; {'; '.join(skipped)}" if skipped else "")
                          + ") and md.allow_cpu_fallback is false: run on a GPU node, or set "
                          "allow_cpu_fallback: true to accept the CPU")
    if "CPU" not in names:
        return PlatformChoice("Reference", {}, "auto: no CPU platform in this OpenMM", "auto", skipped=skipped)
    _host_precision_ok("CPU", precision)
    failed = any(": probe " in s for s in skipped)
    why = "no GPU device passed its probe" if failed else "no GPU device (CPU devices of OpenCL are not considered)"
    return _cpu_choice("auto", f"auto: {why}", skipped)


def _explicit_gpu(name: str, precision: str, allow: bool | None, names: list[str],
                  needs_minimizer: bool) -> PlatformChoice:
    """A requested CUDA/OpenCL platform: its best device, probed; errors name what is available."""
    if name not in names:
        return _fallback(name, f"platform {name!r} is not available; this OpenMM has {names}. "
                               "For CUDA install solvmd[cuda12] or solvmd[cuda13]", allow)
    found = platform_devices(name)
    if not found:
        return _fallback(name, f"platform {name!r} is installed but finds no device "
                               "(no driver, or no OpenCL runtime such as an ICD file)", allow)
    usable = [d for d in found if precision in d.precisions]
    if not usable:
        offers = "; ".join(f"{d.describe()} offers {', '.join(d.precisions)}" for d in found)
        raise SolvmdError(f"platform {name} lacks precision {precision!r} on this machine: {offers}")
    device = usable[0]
    props = gpu_properties(device, precision)
    result = probemod.probe(name, props)
    if not result.steps_ok:
        return _fallback(name, f"platform {name} on {device.describe()} failed its probe: {result.summary()}", allow)
    choice = PlatformChoice(name, props, f"requested {name}", name, device, result)
    if not result.minimize_ok:
        if needs_minimizer:
            raise SolvmdError(f"platform {name} on {device.describe()}: its minimiser failed the probe "
                              f"({result.summary()}); this command minimises on the platform: use platform CPU")
        choice.minimize_platform = "CPU"
    _warn_explicit(choice)
    return choice


def _warn_explicit(choice: PlatformChoice) -> None:
    device, result = choice.device, choice.probe
    parts = []
    if not device.is_gpu:
        parts.append(f"{choice.name} runs on {device.describe()}, not a GPU: the probe measured "
                     f"{result.speed()}; platform auto would choose CPU")
    if choice.minimize_platform:
        parts.append(f"its minimiser failed the probe ({result.failed_stage}: {result.reason}), so "
                     f"minimisation runs on the {choice.minimize_platform} platform")
    if parts:
        warnings.warn("; ".join(parts), PlatformDeviceWarning, stacklevel=4)


def select_platform(requested: str = "auto", precision: str = "mixed", allow_cpu_fallback: bool | None = None,
                    needs_minimizer: bool = False) -> PlatformChoice:
    """The platform to run on, and why (``SOLVMD_PLATFORM`` overrides ``requested``).

    Args:
        requested: ``auto`` or a platform name (CUDA, OpenCL, CPU, Reference).
        precision: single, mixed or double (``mixed`` default).
        allow_cpu_fallback: use the CPU (with a warning) when a requested GPU platform is
            unusable. None: no for an explicit GPU platform, yes for ``auto``. False with
            ``auto``: finding no usable GPU is an error.
        needs_minimizer: the caller minimises on the chosen platform itself (a platform
            whose minimiser failed the probe is then an error, not a CPU minimisation).
    """
    requested = os.environ.get("SOLVMD_PLATFORM", requested) or "auto"
    env = _env_flag(ENV_FALLBACK)
    allow = env if env is not None else allow_cpu_fallback
    names = available_platforms()
    check_name(requested, names)
    check_precision(precision)
    if requested == "auto":
        return _auto(precision, allow, names)
    if requested in GPU_PLATFORMS:
        return _explicit_gpu(requested, precision, allow, names, needs_minimizer)
    if requested not in names:
        raise SolvmdError(f"platform {requested!r} is not available; this OpenMM has {names}")
    _host_precision_ok(requested, precision)
    props = cpu_properties() if requested == "CPU" else {}
    return PlatformChoice(requested, props, f"requested {requested}", requested)


def choose_platform(requested: str = "auto", precision: str = "mixed",
                    allow_cpu_fallback: bool | None = None) -> tuple[openmm.Platform, dict[str, str]]:
    """``(Platform, properties)`` of :func:`select_platform` for callers that minimise on it."""
    choice = select_platform(requested, precision, allow_cpu_fallback, needs_minimizer=True)
    return choice.platform, dict(choice.properties)


@contextmanager
def locale_kept():
    """Restore the process locale after the block. PoCL's kernel compiler (LLVM) sets the whole C
    locale to "C" while OpenMM builds its OpenCL kernels; Python's default text encoding then turns
    to ASCII and the next read of a UTF-8 file (a recipe with a section sign, a JSON record) fails.
    Wrap every Context/Simulation creation on a GPU-kernel platform in it."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL) != saved:
            locale.setlocale(locale.LC_ALL, saved)
