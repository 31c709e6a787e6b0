"""Platform policy: `auto` takes a GPU platform only on a GPU device that passed its probe; an
explicit GPU platform is probed too (CPU device: a warning with the measured speed; failed
minimiser: minimisation on the CPU); a requested GPU platform that is unusable stops the run
unless CPU fallback is allowed; bad input is one error listing what is available.

Most tests run on fake device lists and fake probe results (no GPU needed); the probe's
child process is exercised for real on the Reference platform and with crashing children."""

import logging
import os
import signal
import sys

import pytest

from solvmd.errors import SolvmdError
from solvmd.md import devices as devmod
from solvmd.md import platforms
from solvmd.md import probe as probemod
from solvmd.md.devices import Device
from solvmd.md.platforms import (PlatformDeviceWarning, PlatformFallbackWarning, available_platforms,
                                 choose_platform, select_platform)
from solvmd.md.platform_report import report
from solvmd.md.probe import ProbeResult, parse_child, run_child
from solvmd.md.protocol import load_protocol

ALL = ("single", "mixed", "double")
H100 = [Device("CUDA", 0, "NVIDIA H100", "GPU", ALL), Device("CUDA", 1, "NVIDIA H100", "GPU", ALL)]
POCL = Device("OpenCL", 0, "pthread-skylake-avx512", "CPU", ALL, 0, "Portable Computing Language")
AMD = Device("OpenCL", 0, "gfx1100", "GPU", ALL, 1, "AMD Accelerated Parallel Processing")
STAGES_OK = {"build": {"n_atoms": 400, "cpu_ms_per_step": 1.5}, "context": {"device_name": "x"},
             "energy": {"force_err_rel": 1e-4}, "steps": {"ms_per_step": 3.0}, "minimize": {}}


def _passed(platform, props):
    return ProbeResult(platform, props, True, dict(STAGES_OK), wall_s=2.0)


def _segfault_in_minimize(platform, props):
    stages = {k: v for k, v in STAGES_OK.items() if k != "minimize"}
    return ProbeResult(platform, props, False, stages, "minimize", "the process crashed (SIGSEGV)", 2.0)


def _segfault_at_context(platform, props):
    return ProbeResult(platform, props, False, {"build": STAGES_OK["build"]}, "context",
                       "the process crashed (SIGSEGV)", 2.0)


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for name in ("SOLVMD_PLATFORM", "SOLVMD_ALLOW_CPU_FALLBACK", "SOLVMD_CUDA_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    probemod.clear_cache()
    platforms._SHOWN.clear()
    yield
    probemod.clear_cache()


def _machine(monkeypatch, devices, probe=_passed, names=("Reference", "CPU", "CUDA", "OpenCL")):
    """A fake machine: its device list, installed platforms and probe outcome; returns the probe calls."""
    calls = []

    def fake_child(platform, props):
        calls.append((platform, dict(props)))
        return probe(platform, props)

    monkeypatch.setattr(devmod, "list_devices", lambda: tuple(devices))
    monkeypatch.setattr(platforms, "available_platforms", lambda: list(names))
    monkeypatch.setattr(probemod, "run_child", fake_child)
    return calls


# --------------------------------------------------------------------------- auto


def test_auto_never_takes_an_opencl_cpu_device_and_does_not_probe_it(monkeypatch):
    calls = _machine(monkeypatch, [POCL], names=("Reference", "CPU", "OpenCL"))
    choice = select_platform("auto")
    assert choice.name == "CPU" and calls == []
    assert choice.skipped == ["OpenCL 0.0: pthread-skylake-avx512 (CPU, Portable Computing Language): "
                              "a CPU device, never faster than the CPU platform"]
    assert "CPU devices of OpenCL are not considered" in choice.reason


def test_auto_takes_the_first_gpu_that_passes_and_reports_a_crash_once(monkeypatch, caplog):
    calls = _machine(monkeypatch, [*H100, POCL, AMD],
                     probe=lambda p, props: (_segfault_at_context if p == "CUDA" else _passed)(p, props))
    with caplog.at_level(logging.WARNING, logger="solvmd"):
        first = select_platform("auto")
        second = select_platform("auto")
    assert first.name == second.name == "OpenCL" and first.device == AMD
    assert first.properties == {"Precision": "mixed", "DeviceIndex": "0", "OpenCLPlatformIndex": "1"}
    # both CUDA devices probed once each (cached for the second choice), PoCL never
    assert [c[1]["DeviceIndex"] for c in calls] == ["0", "1", "0"] and [c[0] for c in calls] == ["CUDA"] * 2 + ["OpenCL"]
    assert len(first.skipped) == 2 and all("SIGSEGV" in s for s in first.skipped)  # GPUs first: PoCL not reached
    crash_lines = [r for r in caplog.records if "SIGSEGV" in r.getMessage()]
    assert len(crash_lines) == 2  # one per skipped CUDA device, not repeated by the second choice
    assert first.record()["probe"]["ok"] is True and "SIGSEGV" in first.record()["skipped"][1]


def test_auto_pinned_cuda_device_is_the_only_cuda_candidate(monkeypatch):
    calls = _machine(monkeypatch, H100)
    monkeypatch.setenv("SOLVMD_CUDA_DEVICE", "1")
    choice = select_platform("auto")
    assert choice.name == "CUDA" and choice.properties["DeviceIndex"] == "1" and len(calls) == 1


def test_auto_minimiser_crash_on_a_gpu_skips_it(monkeypatch):
    _machine(monkeypatch, H100[:1], probe=_segfault_in_minimize)
    choice = select_platform("auto")
    assert choice.name == "CPU" and "no GPU device passed its probe" in choice.reason
    with pytest.raises(SolvmdError, match="no usable GPU platform.*SIGSEGV.*allow_cpu_fallback is false"):
        select_platform("auto", allow_cpu_fallback=False)


# --------------------------------------------------------------------------- explicit


def test_explicit_opencl_on_a_cpu_device_runs_with_the_measured_speed(monkeypatch):
    _machine(monkeypatch, [POCL], probe=_segfault_in_minimize, names=("Reference", "CPU", "OpenCL"))
    with pytest.warns(PlatformDeviceWarning) as record:
        choice = select_platform("OpenCL")
    message = str(record[0].message)
    assert "3.00 ms/step (CPU platform 1.50 ms/step), 400 atoms" in message and "auto would choose CPU" in message
    assert "minimisation runs on the CPU platform" in message
    assert choice.name == "OpenCL" and choice.minimize_platform == "CPU"
    # a caller that minimises on the platform itself (PMF placement) gets an error, not a crash
    with pytest.raises(SolvmdError, match="minimiser failed the probe.*use platform CPU"):
        choose_platform("OpenCL")


def test_explicit_gpu_platform_that_crashes_is_an_error_or_a_warned_fallback(monkeypatch):
    _machine(monkeypatch, H100, probe=_segfault_at_context)
    with pytest.raises(SolvmdError, match=r"CUDA on CUDA 0: NVIDIA H100 \(GPU\) failed its probe: failed in stage "
                                          r"context: the process crashed \(SIGSEGV\).*CPU fallback is off"):
        select_platform("CUDA")
    with pytest.warns(PlatformFallbackWarning, match="failed its probe"):
        assert select_platform("CUDA", allow_cpu_fallback=True).name == "CPU"


@pytest.mark.skipif("CUDA" in available_platforms(), reason="OpenMM's CUDA platform is installed here")
def test_missing_cuda_is_an_error_or_a_warned_cpu_fallback(monkeypatch):
    with pytest.raises(SolvmdError, match="CPU fallback is off.*allow_cpu_fallback: true"):
        choose_platform("CUDA")
    with pytest.warns(PlatformFallbackWarning, match="falling back to the CPU platform"):
        platform, props = choose_platform("CUDA", allow_cpu_fallback=True)
    assert platform.getName() == "CPU" and "Threads" in props
    monkeypatch.setenv("SOLVMD_ALLOW_CPU_FALLBACK", "1")  # the environment overrides the argument
    with pytest.warns(PlatformFallbackWarning):
        assert choose_platform("CUDA", allow_cpu_fallback=False)[0].getName() == "CPU"


def test_auto_on_this_machine_is_cpu_unless_a_gpu_device_exists():
    gpus = [d for d in devmod.list_devices() if d.is_gpu and d.platform in available_platforms()]
    if gpus:
        pytest.skip(f"a GPU device is present: {gpus[0].describe()}")
    assert select_platform("auto").name == "CPU"
    with pytest.raises(SolvmdError, match="no usable GPU platform.*allow_cpu_fallback is false"):
        choose_platform("auto", allow_cpu_fallback=False)


# --------------------------------------------------------------------------- bad input


def test_unknown_platform_name_lists_the_known_ones(monkeypatch):
    _machine(monkeypatch, [])
    with pytest.raises(SolvmdError, match=r"unknown platform 'cuda': choose auto or one of CUDA, OpenCL, CPU, "
                                          r"Reference \(names are case-sensitive; installed here: Reference, CPU"):
        select_platform("cuda")
    monkeypatch.setenv("SOLVMD_PLATFORM", "Metal")
    with pytest.raises(SolvmdError, match="unknown platform 'Metal'"):
        select_platform("auto")


@pytest.mark.parametrize("value, message", [("5", "SOLVMD_CUDA_DEVICE=5: no such CUDA device"),
                                            ("first", "SOLVMD_CUDA_DEVICE='first' is not a device index")])
def test_nonexistent_cuda_device_lists_the_devices(monkeypatch, value, message):
    _machine(monkeypatch, H100)
    monkeypatch.setenv("SOLVMD_CUDA_DEVICE", value)
    for requested in ("CUDA", "auto"):
        with pytest.raises(SolvmdError, match=message + r".*CUDA devices here: CUDA 0: NVIDIA H100 \(GPU\); "
                                                        r"CUDA 1: NVIDIA H100 \(GPU\)"):
            select_platform(requested)


def test_precision_the_platform_lacks_lists_what_it_offers(monkeypatch):
    single_only = Device("OpenCL", 0, "old iGPU", "GPU", ("single",), 0, "Intel")
    calls = _machine(monkeypatch, [single_only], names=("Reference", "CPU", "OpenCL"))
    with pytest.raises(SolvmdError, match=r"OpenCL lacks precision 'mixed' on this machine: "
                                          r"OpenCL 0.0: old iGPU \(GPU, Intel\) offers single"):
        select_platform("OpenCL", "mixed")
    assert select_platform("OpenCL", "single").properties["Precision"] == "single"
    # auto passes over a GPU without the precision (never probed) and takes the CPU
    choice = select_platform("auto", "mixed")
    assert choice.name == "CPU" and "lacks precision 'mixed'" in choice.skipped[0] and len(calls) == 1
    with pytest.raises(SolvmdError, match=r"platform CPU lacks precision 'double': it offers single, mixed"):
        select_platform("CPU", "double")
    with pytest.raises(SolvmdError, match="unknown precision 'half': choose one of single, mixed, double"):
        select_platform("CPU", "half")
    assert select_platform("Reference", "double").name == "Reference"


def test_fallback_flag_is_policy_not_protocol():
    strict = load_protocol(None, {"platform": "CUDA", "allow_cpu_fallback": False})
    lenient = load_protocol(None, {"platform": "CUDA", "allow_cpu_fallback": True})
    assert strict.allow_cpu_fallback is False and lenient.allow_cpu_fallback is True
    # not part of the recorded protocol: changing it never invalidates a partial or finished run
    assert strict.model_dump(mode="json") == lenient.model_dump(mode="json")
    assert "allow_cpu_fallback" not in strict.model_dump(mode="json")


def test_platforms_report_lists_devices_choice_and_probe(monkeypatch):
    _machine(monkeypatch, [H100[0], POCL], probe=lambda p, props: (_passed if p == "CUDA" else _segfault_in_minimize)(
        p, props))
    text = report(probe_all=True)
    assert "CUDA 0       NVIDIA H100" in text and "OpenCL 0.0   pthread-skylake-avx512 (Portable Computing Language)" in text
    assert "auto picks: CUDA {'Precision': 'mixed', 'DeviceIndex': '0'}" in text
    assert "probe of the auto choice: passed in 2 s: 3.00 ms/step (CPU platform 1.50 ms/step)" in text
    assert "OpenCL 0.0: failed in stage minimize: the process crashed (SIGSEGV)" in text


# --------------------------------------------------------------------------- the probe child


def _fake_child(code: str) -> list[str]:
    return [sys.executable, "-c", "import json, os, signal, time\n"
            "def emit(**d): print('PROBE ' + json.dumps(d), flush=True)\n" + code]


def test_probe_child_crash_is_attributed_to_its_stage():
    result = run_child("OpenCL", {}, _fake_child(
        "emit(begin='build'); emit(stage='build', n_atoms=400, cpu_ms_per_step=1.0)\n"
        "emit(begin='context'); emit(stage='context', device_name='d')\n"
        "emit(begin='energy'); emit(stage='energy', force_err_rel=1e-4)\n"
        "emit(begin='steps'); emit(stage='steps', ms_per_step=2.0)\n"
        "emit(begin='minimize'); os.kill(os.getpid(), signal.SIGSEGV)"))
    assert not result.ok and result.steps_ok and not result.minimize_ok
    assert (result.failed_stage, result.reason) == ("minimize", "the process crashed (SIGSEGV)")
    assert result.summary() == ("failed in stage minimize: the process crashed (SIGSEGV) (passed: build, context, "
                                "energy, steps; 2.00 ms/step (CPU platform 1.00 ms/step), 400 atoms, 4 fs)")


def test_probe_child_error_and_timeout_are_reasons():
    err = run_child("CUDA", {}, _fake_child("emit(begin='build'); emit(stage='build', error='OpenMMException: boom')\n"
                                            "raise SystemExit(1)"))
    assert (err.failed_stage, err.reason) == ("build", "OpenMMException: boom")
    slow = run_child("CUDA", {}, _fake_child("emit(begin='build'); time.sleep(30)"), timeout_s=1.0)
    assert slow.failed_stage == "build" and slow.reason.startswith("timed out after 1 s") and slow.wall_s < 10
    silent = parse_child("CUDA", {}, "", -signal.SIGABRT)
    assert (silent.failed_stage, silent.reason) == ("build", "the process crashed (SIGABRT)")


def test_probe_child_on_the_reference_platform_passes_with_numbers():
    env_threads = os.environ.get("SOLVMD_CPU_THREADS")
    result = run_child("Reference", {})
    assert result.ok, result.summary()
    assert result.stages["build"]["n_atoms"] == 400 and result.stages["steps"]["steps"] == 50
    assert result.stages["energy"]["force_err_rel"] < 1e-3  # Reference (double) vs CPU (single) forces
    assert result.stages["minimize"]["energy_after_kJ_mol"] <= result.stages["minimize"]["energy_before_kJ_mol"]
    assert env_threads == os.environ.get("SOLVMD_CPU_THREADS")
