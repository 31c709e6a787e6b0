"""GPU slot allocator (`solvmd gpu-slot`): distinct devices for concurrent jobs, released on exit.

Runs on the CPU: the slots are lock files, the "jobs" are small Python processes that
report the SOLVMD_CUDA_DEVICE they were given.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solvmd.errors import SolvmdError
from solvmd.gpu_slots import acquire_slot, resolve_devices, try_acquire

SOLVMD = [sys.executable, "-m", "solvmd.cli"]
# a job: write its device index, then hold the slot until the file `release` appears
HOLD = ("import os, pathlib, sys, time; d = pathlib.Path(sys.argv[1]); "
        "(d / f'dev_{os.getpid()}').write_text(os.environ.get('SOLVMD_CUDA_DEVICE', 'none')); "
        "[time.sleep(0.05) for _ in range(2000) if not (d / 'release').exists()]")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SOLVMD_GPU_DEVICES")}
    env.update(extra)
    return env


def _job(tmp: Path, locks: Path, *opts: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([*SOLVMD, "gpu-slot", "--lock-dir", str(locks), *opts, "--",
                             sys.executable, "-c", HOLD, str(tmp)],
                            env=env or _env(), stderr=subprocess.PIPE, text=True)


def _device_of(tmp: Path, proc: subprocess.Popen, timeout: float = 30.0) -> str:
    path = tmp / f"dev_{proc.pid}"  # exec keeps the pid: the job reports under the wrapper's pid
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < end, "the job never started"
        time.sleep(0.05)
    return path.read_text()


def test_concurrent_jobs_get_distinct_gpus_and_release_them(tmp_path):
    locks = tmp_path / "locks"
    a = _job(tmp_path, locks, "--count", "2")
    b = _job(tmp_path, locks, "--count", "2")
    try:
        devices = {_device_of(tmp_path, a), _device_of(tmp_path, b)}
        assert devices == {"0", "1"}
        # both GPUs held: a third job waits, and gives up after its timeout
        c = subprocess.run([*SOLVMD, "gpu-slot", "--lock-dir", str(locks), "--count", "2", "--timeout", "0.5", "--",
                            "true"], env=_env(), capture_output=True, text=True, timeout=60)
        assert c.returncode == 2 and "stayed busy" in c.stderr
        # kill -9 the holder of one GPU: the kernel drops its lock, the next job gets that GPU
        freed = _device_of(tmp_path, a)
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
        d = _job(tmp_path, locks, "--count", "2")
        assert _device_of(tmp_path, d) == freed
    finally:
        (tmp_path / "release").write_text("")
        for p in (a, b):
            p.wait(timeout=30)
    d.wait(timeout=30)
    assert d.returncode == 0 and b.returncode == 0
    # every job has exited: both slots are free again
    with acquire_slot(count=2, lock_dir=locks, timeout_s=0) as s0, acquire_slot(count=2, lock_dir=locks,
                                                                                 timeout_s=0) as s1:
        assert {s0.index, s1.index} == {0, 1}


def test_cuda_visible_devices_are_renumbered_and_locked_by_physical_id(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.delenv("SOLVMD_GPU_DEVICES", raising=False)
    assert resolve_devices(count=8) == [(0, "3"), (1, "5")]
    first = try_acquire(resolve_devices(), tmp_path)
    second = try_acquire(resolve_devices(), tmp_path)
    assert (first.index, first.device) == (0, "3") and (second.index, second.device) == (1, "5")
    assert try_acquire(resolve_devices(), tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-3.lock", "gpu-5.lock"]
    # another SLURM job on the same node sees only its own GPU as index 0: no clash
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    third = try_acquire(resolve_devices(), tmp_path)
    assert (third.index, third.device) == (0, "7")


def test_job_without_gpu_runs_unchanged_and_missing_gpu_runs_unpinned(tmp_path):
    show = [sys.executable, "-c", "import os; print(os.environ.get('SOLVMD_CUDA_DEVICE', 'unset'))"]
    env = _env(SOLVMD_CUDA_DEVICE="9", PATH=f"{tmp_path}:/usr/bin:/bin")  # no nvidia-smi on this PATH
    out = subprocess.run([*SOLVMD, "gpu-slot", "--need", "0", "--lock-dir", str(tmp_path), "--", *show],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "9"  # need 0: environment untouched
    out = subprocess.run([*SOLVMD, "gpu-slot", "--lock-dir", str(tmp_path), "--", *show],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "unset"
    assert "no GPU found" in out.stderr


def test_no_devices_to_wait_for_is_an_error(tmp_path):
    with pytest.raises(SolvmdError, match="no GPU devices"):
        with acquire_slot(devices=[], lock_dir=tmp_path):
            pass


def test_eight_gpu_workstation_gives_every_job_its_own_gpu(tmp_path):
    """A fake 8-GPU box (`--count 8`, what `--resources gpu=8` passes): 8 concurrent jobs hold
    the 8 devices, one each; a 9th waits (and here gives up after its timeout)."""
    locks = tmp_path / "locks"
    jobs = [_job(tmp_path, locks, "--count", "8") for _ in range(8)]
    try:
        assert sorted(_device_of(tmp_path, j) for j in jobs) == [str(i) for i in range(8)]
        ninth = subprocess.run([*SOLVMD, "gpu-slot", "--lock-dir", str(locks), "--count", "8", "--timeout", "0.5",
                                "--", "true"], env=_env(), capture_output=True, text=True, timeout=60)
        assert ninth.returncode == 2 and "all 8 GPU(s)" in ninth.stderr and "stayed busy" in ninth.stderr
    finally:
        (tmp_path / "release").write_text("")
        for j in jobs:
            j.wait(timeout=30)
    assert [j.returncode for j in jobs] == [0] * 8


def test_explicit_device_lists_keep_physical_indices(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SOLVMD_GPU_DEVICES", raising=False)
    assert resolve_devices(["2", "5"]) == [(2, "2"), (5, "5")]  # --devices: CUDA indices as given
    monkeypatch.setenv("SOLVMD_GPU_DEVICES", "1,3")
    assert resolve_devices() == [(1, "1"), (3, "3")]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "6,7")  # an explicit list wins over the visible devices
    assert resolve_devices(count=1) == [(1, "1"), (3, "3")]
    held = [try_acquire(resolve_devices(), tmp_path) for _ in range(2)]
    assert [s.index for s in held] == [1, 3] and try_acquire(resolve_devices(), tmp_path) is None
