"""Progress lines for long PMF steps: simulated time done, ns/day and ETA (logged at INFO)."""

from __future__ import annotations

import logging
import math
import time

log = logging.getLogger("solvmd.pmf")


def hms(seconds: float) -> str:
    """h:mm:ss of ``seconds`` ('-:--:--' when unknown: no rate measured yet, or nothing left to time)."""
    if not math.isfinite(seconds):
        return "-:--:--"
    s = max(0, int(round(seconds)))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Rate and ETA of ``total_steps`` MD steps of ``dt_fs`` each; :meth:`update` logs every ``every_s``."""

    def __init__(self, label: str, total_steps: int, dt_fs: float, every_s: float = 30.0, done: int = 0):
        self.label, self.total, self.dt_ps, self.every_s = label, int(total_steps), dt_fs / 1000.0, every_s
        self.t0, self.done0, self.done, self.last = time.perf_counter(), int(done), int(done), 0.0

    def ns_per_day(self) -> float:
        el = time.perf_counter() - self.t0
        return (self.done - self.done0) * self.dt_ps / 1000.0 / el * 86400.0 if el > 0 else float("nan")

    def eta_s(self) -> float:
        rate = self.ns_per_day()
        return (self.total - self.done) * self.dt_ps / 1000.0 / rate * 86400.0 if rate and rate > 0 else float("nan")

    def update(self, done_steps: int, extra: str = "", force: bool = False) -> None:
        self.done = int(done_steps)
        now = time.perf_counter()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        log.info("[%s] %.1f/%.1f ps  %.2f ns/day  ETA %s%s", self.label, self.done * self.dt_ps,
                 self.total * self.dt_ps, self.ns_per_day(), hms(self.eta_s()), f"  {extra}" if extra else "")


def plan(label: str, n_steps: int, dt_fs: float, ns_per_day_guess: float | None, what: str) -> None:
    """Log the planned MD length before it starts, with a time estimate when a rate is known."""
    ps = n_steps * dt_fs / 1000.0
    est = f", about {hms(ps / 1000.0 / ns_per_day_guess * 86400.0)} at {ns_per_day_guess:.3g} ns/day" \
        if ns_per_day_guess else ""
    log.info("[%s] plan: %s: %.1f ps (%d steps of %g fs)%s", label, what, ps, n_steps, dt_fs, est)


def measure_ns_per_day(context, dt_fs: float, steps: int = 20) -> float:
    """ns/day of ``context`` from a short timed run of ``steps`` steps (they are real MD steps)."""
    t0 = time.perf_counter()
    context.getIntegrator().step(steps)
    context.getState(getEnergy=False)  # sync the GPU queue
    el = time.perf_counter() - t0
    return steps * dt_fs / 1e6 / el * 86400.0 if el > 0 else float("nan")
