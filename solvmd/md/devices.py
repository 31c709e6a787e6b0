"""Which compute devices this machine offers to OpenMM's GPU platforms, without creating a Context.

OpenMM does not say whether an OpenCL device is a GPU or a CPU (PoCL and Intel's CPU
runtime present the CPU itself as an OpenCL device), so the devices are read from the
vendor libraries directly through ``ctypes``:

- OpenCL: the ICD loader ``libOpenCL.so.1`` (``clGetPlatformIDs`` / ``clGetDeviceIDs`` /
  ``clGetDeviceInfo``). ``platform_index`` and ``index`` are the numbers OpenMM takes as
  ``OpenCLPlatformIndex`` and ``DeviceIndex`` (both count in the loader's order).
- CUDA: the driver ``libcuda.so.1`` (``cuDeviceGetCount`` / ``cuDeviceGetName``); every
  CUDA device is a GPU; ``index`` is OpenMM's CUDA ``DeviceIndex`` (after
  ``CUDA_VISIBLE_DEVICES``, as the driver numbers them).

No library, no devices: nothing here raises. Queries only list devices; no kernel is
compiled or run (that is the probe's job, :mod:`solvmd.md.probe`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from functools import lru_cache

PRECISION_ORDER = ("single", "mixed", "double")

# OpenCL constants (cl.h)
_CL_PLATFORM_NAME = 0x0902
_CL_DEVICE_TYPE = 0x1000
_CL_DEVICE_NAME = 0x102B
_CL_DEVICE_EXTENSIONS = 0x1030
_CL_DEVICE_DOUBLE_FP_CONFIG = 0x1032
_CL_DEVICE_TYPE_ALL = 0xFFFFFFFF
_CL_KINDS = ((4, "GPU"), (2, "CPU"), (8, "accelerator"))


@dataclass(frozen=True)
class Device:
    """One device of a GPU platform.

    Attributes:
        platform: OpenMM platform name (``CUDA`` or ``OpenCL``).
        index: OpenMM ``DeviceIndex`` (within the OpenCL platform, or the CUDA ordinal).
        name: device name as the runtime reports it.
        kind: ``GPU``, ``CPU``, ``accelerator`` or ``other``.
        precisions: OpenMM precisions the device can run (``single``; ``mixed`` and
            ``double`` need 64-bit floating point).
        platform_index: OpenMM ``OpenCLPlatformIndex`` (OpenCL only).
        runtime: the OpenCL platform's name (``Portable Computing Language``, ``NVIDIA CUDA``).
    """

    platform: str
    index: int
    name: str
    kind: str
    precisions: tuple[str, ...]
    platform_index: int | None = None
    runtime: str = ""

    @property
    def is_gpu(self) -> bool:
        return self.kind == "GPU"

    @property
    def label(self) -> str:
        """``OpenCL 0.1`` / ``CUDA 2``: how listings and messages name the device."""
        where = f"{self.platform_index}.{self.index}" if self.platform_index is not None else str(self.index)
        return f"{self.platform} {where}"

    def properties(self) -> dict[str, str]:
        """The OpenMM platform properties that select this device."""
        props = {"DeviceIndex": str(self.index)}
        if self.platform_index is not None:
            props["OpenCLPlatformIndex"] = str(self.platform_index)
        return props

    def describe(self) -> str:
        runtime = f", {self.runtime}" if self.runtime else ""
        return f"{self.label}: {self.name} ({self.kind}{runtime})"


def _load(name: str) -> ctypes.CDLL | None:
    for candidate in (f"lib{name}.so.1", ctypes.util.find_library(name)):
        if not candidate:
            continue
        try:
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    return None


def _cl_string(fn, handle, param: int) -> str:
    size = ctypes.c_size_t(0)
    if fn(handle, param, 0, None, ctypes.byref(size)) != 0 or size.value == 0:
        return ""
    buf = ctypes.create_string_buffer(size.value)
    if fn(handle, param, size, buf, None) != 0:
        return ""
    return buf.value.decode(errors="replace").strip()


def _cl_ulong(fn, handle, param: int) -> int:
    value = ctypes.c_uint64(0)
    if fn(handle, param, ctypes.sizeof(value), ctypes.byref(value), None) != 0:
        return 0
    return int(value.value)


def _cl_kind(type_bits: int) -> str:
    return next((kind for bit, kind in _CL_KINDS if type_bits & bit), "other")


def _cl_precisions(lib, device) -> tuple[str, ...]:
    fp64 = _cl_ulong(lib.clGetDeviceInfo, device, _CL_DEVICE_DOUBLE_FP_CONFIG) != 0
    fp64 = fp64 or "cl_khr_fp64" in _cl_string(lib.clGetDeviceInfo, device, _CL_DEVICE_EXTENSIONS).split()
    return PRECISION_ORDER if fp64 else ("single",)


def _cl_ids(getter, *args) -> list:
    count = ctypes.c_uint(0)
    if getter(*args, 0, None, ctypes.byref(count)) != 0 or count.value == 0:
        return []
    ids = (ctypes.c_void_p * count.value)()
    if getter(*args, count.value, ids, None) != 0:
        return []
    return list(ids)


def opencl_devices() -> list[Device]:
    """Every device of every OpenCL platform the ICD loader finds (empty without a loader)."""
    lib = _load("OpenCL")
    if lib is None:
        return []
    lib.clGetPlatformIDs.argtypes = [ctypes.c_uint, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint)]
    lib.clGetDeviceIDs.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint, ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.c_uint)]
    for fn in (lib.clGetPlatformInfo, lib.clGetDeviceInfo):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_size_t, ctypes.c_void_p,
                       ctypes.POINTER(ctypes.c_size_t)]
    found = []
    for p_index, platform in enumerate(_cl_ids(lib.clGetPlatformIDs)):
        runtime = _cl_string(lib.clGetPlatformInfo, platform, _CL_PLATFORM_NAME)
        for d_index, device in enumerate(_cl_ids(lib.clGetDeviceIDs, platform, _CL_DEVICE_TYPE_ALL)):
            found.append(Device("OpenCL", d_index, _cl_string(lib.clGetDeviceInfo, device, _CL_DEVICE_NAME),
                                _cl_kind(_cl_ulong(lib.clGetDeviceInfo, device, _CL_DEVICE_TYPE)),
                                _cl_precisions(lib, device), p_index, runtime))
    return found


def cuda_devices() -> list[Device]:
    """The CUDA driver's devices (empty without a driver or a GPU)."""
    lib = _load("cuda")
    if lib is None or lib.cuInit(0) != 0:
        return []
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    found = []
    for ordinal in range(count.value):
        handle = ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        if lib.cuDeviceGet(ctypes.byref(handle), ordinal) != 0:
            continue
        lib.cuDeviceGetName(name, 256, handle)
        found.append(Device("CUDA", ordinal, name.value.decode(errors="replace"), "GPU", PRECISION_ORDER))
    return found


@lru_cache(maxsize=1)
def list_devices() -> tuple[Device, ...]:
    """CUDA then OpenCL devices of this machine (queried once per process)."""
    return tuple(cuda_devices() + opencl_devices())
