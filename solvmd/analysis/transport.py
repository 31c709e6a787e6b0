"""Transport: self-diffusion, the Onsager transport matrix L_ij, conductivity, transference numbers.

Molecule centres of mass are unwrapped frame to frame (minimum image of each displacement;
the input may be wrapped by atom or by molecule, or already unwrapped), the system
centre-of-mass drift removed (the barycentric frame) unless ``remove_com_drift`` is off.
MSDs use the FFT algorithm over all time origins (:func:`msd_fft`). Formal charges z
(charge scaling undone), e the elementary charge, V the mean volume, T the temperature.

* Self-diffusion: D_i = slope/6 of the particle-averaged MSD of species i.
* Onsager matrix, Einstein form, with the cross terms (Fong, Self, McCloskey & Persson,
  Macromolecules 53, 9503 (2020); 54, 2575 (2021))::

      L_ij = 1/(6 V kB T) d/dt < dR_i(t) . dR_j(t) >,   R_i = sum over molecules of i of r

  with dR over all time origins; reported per mole (mol^2 J^-1 m^-1 s^-1: L / N_A^2).
  Reference frames: *barycentric* (the system centre of mass at rest; what MD gives with
  the drift removed) and *solvent-fixed* (R_i - N_i r_0, r_0 the centre of mass of the
  neutral molecules: the solvent velocity is the reference, as in concentrated-solution
  theory, Newman; Fong et al. 2020 eq. for t+^0).
* Conductivity sigma = e^2 sum_ij z_i z_j L_ij (number-based L): algebraically the
  Einstein-Helfand sigma = e^2/(6 V kB T) d/dt <|sum_i z_i dR_i|^2>, the same numbers,
  and frame-independent for an electroneutral system. Nernst-Einstein
  sigma_NE = e^2/(V kB T) sum_i N_i z_i^2 D_i; ionicity sigma/sigma_NE.
* Transference numbers (fraction of the current carried by species i, any number of
  ion species, e.g. LiTFSI + LiNO3): t_i = z_i sum_j z_j L_ij / sum_kl z_k z_l L_kl; for
  one binary 1:1 salt t+ = (L++ - L+-)/(L++ - 2 L+- + L--). Ideal (no correlations, from
  self-diffusion): t_i = z_i^2 N_i D_i / sum_k z_k^2 N_k D_k.

Fit window (``window: auto``): the local log-log slope beta = d ln MSD / d ln t of the
ions' self MSDs (over a factor SPAN in time) must stay within 1 +- ``diffusive_tolerance``
from the window start up to the longest trusted lag (``max_lag_frac`` of a block); the
start is the latest such onset over the ion species, and the window must span a factor
MIN_SPAN in time. Otherwise the run is too short: the longest lags are fitted and every
row says so (``diffusive`` False, ``warning``). Neutral species get their own window.

Errors count correlated motion: the run is cut into ``n_blocks`` contiguous blocks
(independent time origins, each a short run of its own); the same window is fitted in each
and the standard error of every number, ratios included, is the jackknife over blocks.
Independent runs (packings) are combined by :func:`combine_runs` (jackknife over runs).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.fft import next_fast_len

from solvmd.analysis import columns as C
from solvmd.analysis.contacts import AnalysisWarning
from solvmd.analysis.spec import TransportSettings
from solvmd.errors import SolvmdError
from solvmd.units import AVOGADRO, BOLTZMANN_J_K, ELEMENTARY_CHARGE_C

E_CHARGE = ELEMENTARY_CHARGE_C  # C
K_B = BOLTZMANN_J_K  # J/K
N_A = AVOGADRO  # 1/mol
A2_PS_TO_M2_S = 1e-8  # 1 A^2/ps = 1e-20 m^2 / 1e-12 s
SPAN = 2.0  # the local log-log slope is measured over a factor 2 in time
PER_DECADE = 10  # local slopes on a log grid, 10 per decade
MIN_SPAN = 2.0  # a diffusive fit window spans at least a factor 2 in time
MIN_BLOCK_FRAMES = 10  # fewer frames per block: fewer blocks
MIN_DETECT = 5  # ion species with fewer molecules do not steer the window (single-particle noise)
FFT_CHUNK_BYTES = 256 * 2**20  # msd_fft transforms at most this much complex data at once
UNWRAP_SAFE = 0.5  # largest frame-to-frame step allowed, as a fraction of the smallest box half-width

COLUMNS = [C.SPECIES, C.SPECIES_J, C.METHOD, C.REF_FRAME, C.N_MOLECULES, C.CHARGE, C.D, C.D_STD, C.L, C.L_STD,
           C.SIGMA, C.SIGMA_STD, C.SIGMA_MS_CM, C.TRANSFERENCE, C.TRANSFERENCE_STD, C.TRANSFERENCE_IDEAL,
           C.TRANSFERENCE_IDEAL_STD, C.IONICITY, C.IONICITY_STD, C.FIT_START, C.FIT_STOP, C.LOGLOG_SLOPE,
           C.DIFFUSIVE, C.N_BLOCKS, C.ERROR_METHOD, C.WARNING, C.TEMPERATURE, C.VOLUME]  # fmt: skip
CURVE_COLUMNS = [C.SPECIES, C.SPECIES_J, C.CURVE, C.REF_FRAME, C.TIME, C.MSD]


def msd_fft(x: np.ndarray) -> np.ndarray:
    """Mean-squared displacement over all time origins, averaged over particles.

    ``x``: unwrapped positions, shape (frames, particles, 3). Returns MSD(k), k = 0..frames-1.
    The FFT algorithm of Calandrini, Pellegrini, Calligari, Hinsen & Kneller, Collection
    SFN 12, 201 (2011) (nMoldyn; also behind tidynamics and MDAnalysis' EinsteinMSD):
    MSD(k) = S1(k) - 2 S2(k), S2 the autocorrelation by FFT, O(F log F).
    """
    x = np.asarray(x, dtype=np.float64)
    F = x.shape[0]
    if F == 0:
        return np.zeros(0)
    flat = x.reshape(F, -1)
    d = np.square(flat).sum(1)  # sum over particles and xyz of r^2 per frame
    # S1(m) = (sum_{k=0}^{F-1-m} d_k + sum_{k=m}^{F-1} d_k) / (F - m), by cumulative sums
    head = np.concatenate([[0.0], np.cumsum(d)])  # head[j] = sum of the first j
    m = np.arange(F)
    s1 = (head[F - m] + (head[F] - head[m])) / (F - m)
    nfft = next_fast_len(2 * F, real=True)  # zero padding against circular wrap-around
    ac = np.zeros(F)
    step = max(1, FFT_CHUNK_BYTES // (16 * nfft))  # columns per FFT: bounded memory for long runs
    for c in range(0, flat.shape[1], step):
        spec = np.fft.rfft(flat[:, c : c + step], n=nfft, axis=0)
        ac += np.fft.irfft(spec.real**2 + spec.imag**2, n=nfft, axis=0)[:F].sum(1)
    s2 = ac / (F - np.arange(F))
    n_particles = x.shape[1] if x.ndim == 3 else 1
    return (s1 - 2.0 * s2) / n_particles


def cross_msd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """<(a(t0+k) - a(t0)) . (b(t0+k) - b(t0))> over all origins t0, for two (frames, 3) series.

    By polarisation of :func:`msd_fft` (a quadratic form): (MSD(a+b) - MSD(a) - MSD(b)) / 2.
    """
    m = lambda y: msd_fft(np.asarray(y, dtype=np.float64)[:, None, :])  # noqa: E731
    return 0.5 * (m(a + b) - m(a) - m(b))


def fit_slope(t: np.ndarray, y: np.ndarray, start: float, stop: float) -> tuple[float, float, float]:
    """Least-squares slope of y(t) inside [start, stop]; returns slope, actual window start, stop."""
    sel = (t >= start - 1e-9) & (t <= stop + 1e-9)
    if sel.sum() < 2 or not np.all(np.isfinite(y[sel])):
        return float("nan"), float("nan"), float("nan")
    slope = np.polyfit(t[sel], y[sel], 1)[0]
    return float(slope), float(t[sel][0]), float(t[sel][-1])


def loglog_fit(t: np.ndarray, y: np.ndarray, start: float, stop: float) -> float:
    """Slope of ln y against ln t inside [start, stop] (NaN where y <= 0 there)."""
    sel = (t >= start - 1e-9) & (t <= stop + 1e-9) & (t > 0)
    if sel.sum() < 2 or not np.all(y[sel] > 0):
        return float("nan")
    return float(np.polyfit(np.log(t[sel]), np.log(y[sel]), 1)[0])


def loglog_slope(t: np.ndarray, msd: np.ndarray, t_max: float, span: float = SPAN,
                 per_decade: int = PER_DECADE) -> tuple[np.ndarray, np.ndarray]:
    """Local slope beta(t) = d ln MSD / d ln t on a log grid of centres t (lags up to ``t_max``).

    beta at centre t is the secant of ln MSD between t/sqrt(span) and t*sqrt(span) (MSD
    interpolated linearly in log-log); 2 ballistic, 1 diffusive, < 1 caged. NaN where the
    MSD is not positive."""
    t, msd = np.asarray(t, float), np.asarray(msd, float)
    ok = (t > 0) & (t <= t_max * (1 + 1e-9))
    if ok.sum() < 2:
        return np.zeros(0), np.zeros(0)
    tt, yy = t[ok], msd[ok]
    h = math.sqrt(span)
    lo, hi = tt[0] * h, tt[-1] / h
    if hi < lo:
        return np.zeros(0), np.zeros(0)
    n = max(1, int(math.floor(math.log10(hi / lo) * per_decade)) + 1)
    tc = np.geomspace(lo, hi, n) if n > 1 else np.array([lo])
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.where(yy > 0, np.log(np.where(yy > 0, yy, 1.0)), np.nan)
        lt = np.log(tt)
        y_lo = np.interp(np.log(tc / h), lt, ly)
        y_hi = np.interp(np.log(tc * h), lt, ly)
        beta = (y_hi - y_lo) / math.log(span)
    return tc, beta


@dataclass
class Window:
    """The fit window (ps) and the regime check behind it."""

    start: float
    stop: float
    diffusive: bool
    reason: str = ""  # why not diffusive (empty when diffusive)
    onset: float = float("nan")  # where the diffusive regime starts (auto)


def diffusive_onset(t: np.ndarray, msd: np.ndarray, t_max: float, tol: float) -> tuple[float, float, float]:
    """(onset, beta at the longest lag, lag of that beta): the onset is the first centre from
    which every local slope up to ``t_max`` lies in 1 +- tol (NaN if the last one does not)."""
    tc, beta = loglog_slope(t, msd, t_max)
    if tc.size == 0:
        return float("nan"), float("nan"), float("nan")
    ok = np.abs(beta - 1.0) <= tol  # NaN compares False
    if not ok[-1]:
        return float("nan"), float(beta[-1]), float(tc[-1])
    bad = np.flatnonzero(~ok)
    return float(tc[bad[-1] + 1] if bad.size else tc[0]), float(beta[-1]), float(tc[-1])


def find_window(t: np.ndarray, curves: dict[str, np.ndarray], t_max: float, tol: float) -> Window:
    """The common diffusive fit window of several self MSDs (auto mode; see the module doc)."""
    onsets, ends = {}, {}
    for name, msd in curves.items():
        on, b_end, t_end = diffusive_onset(t, msd, t_max, tol)
        onsets[name], ends[name] = on, (b_end, t_end)
    fallback = (0.5 * t_max, t_max)
    if not curves:
        return Window(*fallback, False, "no MSD to test")
    missing = [n for n, on in onsets.items() if not np.isfinite(on)]
    if missing:
        parts = []
        for n in missing:
            b, te = ends[n]
            parts.append(f"{n} log-log MSD slope {b:.2f} at {te:.4g} ps" if np.isfinite(b) else f"{n}: too few lags")
        return Window(*fallback, False, f"run too short for the diffusive regime ({'; '.join(parts)}; "
                      f"needs 1 +- {tol:g} up to the longest trusted lag {t_max:.4g} ps)")  # fmt: skip
    onset = max(onsets.values())
    if t_max < MIN_SPAN * onset * (1 - 1e-9):
        return Window(*fallback, False, f"run too short for the diffusive regime (it starts at {onset:.4g} ps, "
                      f"the longest trusted lag is {t_max:.4g} ps: less than a factor {MIN_SPAN:g} to fit)", onset)
    return Window(onset, t_max, True, "", onset)


def check_window(t: np.ndarray, curves: dict[str, np.ndarray], start: float, stop: float, tol: float) -> Window:
    """Regime check of a given window (fraction mode): every local slope inside it in 1 +- tol."""
    bad = []
    for name, msd in curves.items():
        tc, beta = loglog_slope(t, msd, stop)
        inside = tc >= start * math.sqrt(SPAN) * (1 - 1e-9)
        if not inside.any():
            bad.append(f"{name}: window too narrow to test")
        elif not np.all(np.abs(beta[inside] - 1.0) <= tol):
            b = beta[inside]
            bad.append(f"{name} log-log MSD slope {np.nanmin(b):.2f}..{np.nanmax(b):.2f}")
    if bad:
        return Window(start, stop, False, f"fit window {start:.4g}-{stop:.4g} ps not diffusive ({'; '.join(bad)}; "
                      f"needs 1 +- {tol:g})")  # fmt: skip
    return Window(start, stop, True)


def check_uniform_times(times_ps: np.ndarray, rtol: float = 1e-3) -> None:
    """MSDs over all time origins need equally spaced frames: raise on steps that differ.

    Times that do not advance at all (formats without times) are not checked."""
    t = np.asarray(times_ps, dtype=np.float64)
    if t.size < 3:
        return
    d = np.diff(t)
    if np.all(d == 0):
        return
    ref = float(np.median(d))
    off = np.flatnonzero(~(np.abs(d - ref) <= rtol * abs(ref)))
    if ref <= 0 or off.size:
        k = int(off[0]) if off.size else 0
        raise SolvmdError(
            f"trajectory: time steps between analysed frames are not uniform (analysed frame {k} -> {k + 1}: "
            f"{d[k]:.6g} ps, typical {ref:.6g} ps; {off.size} irregular step(s)); transport needs equally spaced "
            "frames - remove overlapping restart segments (MDAnalysis ChainReader continuous=True), choose "
            "frames.start/stop inside one segment, or switch transport off (transport.enabled: false / --no-transport)"
        )


# --------------------------------------------------------------------------- physics


def physical(D: np.ndarray, L: dict[str, np.ndarray], n_ion: np.ndarray, z_ion: np.ndarray, ion_idx: np.ndarray,
             V_A3: float, T: float) -> dict[str, np.ndarray]:
    """Everything that follows from D (m^2/s, all species) and L (mol^2/(J m s), per frame, ions x ions).

    Keys: ``D``, ``L:<frame>``, ``sigma:<frame>`` (S/m), ``sigma_ij:<frame>`` (per pair, S/m),
    ``t:<frame>``, ``ne_terms`` (S/m per ion species), ``sigma_ne``, ``t_ideal``, ``ionicity``."""
    out: dict[str, np.ndarray] = {"D": np.asarray(D, float)}
    F2 = (E_CHARGE * N_A) ** 2  # Faraday constant squared, C^2/mol^2
    first = None
    for f, Lf in L.items():
        Lf = np.asarray(Lf, float)
        zz = np.outer(z_ion, z_ion)
        s_ij = F2 * zz * Lf
        sigma = float(s_ij.sum())
        out[f"L:{f}"] = Lf
        out[f"sigma_ij:{f}"] = s_ij
        out[f"sigma:{f}"] = np.array(sigma)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"t:{f}"] = z_ion * (Lf @ z_ion) * F2 / sigma
        first = first or f
    pref = E_CHARGE**2 / (V_A3 * 1e-30 * K_B * T)
    ne = pref * n_ion * z_ion**2 * np.asarray(D, float)[ion_idx]
    out["ne_terms"] = ne
    out["sigma_ne"] = np.array(ne.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        out["t_ideal"] = ne / ne.sum()
        out["ionicity"] = np.array(out[f"sigma:{first}"] / ne.sum()) if first else np.array(np.nan)
    return out


def jackknife(samples: list[dict[str, np.ndarray]], fn) -> dict[str, np.ndarray]:
    """Jackknife standard error of every output of ``fn`` over independent samples (blocks or runs).

    ``fn`` maps the mean of the samples' primary quantities to derived ones; for a linear
    ``fn`` the result is the standard error of the mean, std/sqrt(n)."""
    n = len(samples)
    keys = list(samples[0]) if samples else []
    if n < 2:
        return {k: np.full(np.shape(v), np.nan) for k, v in fn(samples[0]).items()} if samples else {}
    stacked = {k: np.array([s[k] for s in samples], dtype=float) for k in keys}
    total = {k: v.sum(0) for k, v in stacked.items()}
    reps = [fn({k: (total[k] - stacked[k][b]) / (n - 1) for k in keys}) for b in range(n)]
    out = {}
    for k in reps[0]:
        arr = np.array([r[k] for r in reps], dtype=float)
        out[k] = np.sqrt((n - 1) / n * np.sum((arr - arr.mean(0)) ** 2, axis=0))
    return out


# --------------------------------------------------------------------------- the table


@dataclass
class _System:
    species: list[str]
    n_mol: np.ndarray  # per species
    z: np.ndarray  # per species (NaN unknown)
    ion_idx: np.ndarray  # species indices of the ions
    T: float

    @property
    def n_ion(self) -> np.ndarray:
        return self.n_mol[self.ion_idx]

    @property
    def z_ion(self) -> np.ndarray:
        return self.z[self.ion_idx]

    def derived(self, theta: dict[str, np.ndarray], frames: list[str]) -> dict[str, np.ndarray]:
        """From primary slopes (A^2/ps) and the volume to physical quantities."""
        V = float(theta["V"])
        D = theta["self"] / 6.0 * A2_PS_TO_M2_S
        to_L = A2_PS_TO_M2_S / (6.0 * V * 1e-30 * K_B * self.T) / N_A**2
        L = {f: theta[f"cross:{f}"] * to_L for f in frames}
        out = physical(D, L, self.n_ion, self.z_ion, self.ion_idx, V, self.T)
        out["sigma_eh"] = np.array(E_CHARGE**2 * theta["eh"] * A2_PS_TO_M2_S / (6.0 * V * 1e-30 * K_B * self.T))
        return out


def transport_table(
    com_A: np.ndarray,
    mol_species: np.ndarray,
    species: list[str],
    charges: list[float | None],
    times_ps: np.ndarray,
    volumes_A3: np.ndarray,
    temperature_K: float,
    settings: TransportSettings | None = None,
    masses: np.ndarray | None = None,
    barycentric: bool = True,
    max_step_A: float | None = None,
    min_half_box_A: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Self-diffusion, Onsager matrix, conductivities and transference numbers with errors.

    ``com_A``: unwrapped molecule centres (frames, molecules, 3), A, equally spaced in time;
    ``mol_species``: species index of each molecule; ``charges``: formal charge per species
    (None: unknown), e; ``masses``: molecule masses (the solvent-fixed frame; None: no such
    frame); ``barycentric``: the system centre-of-mass drift was removed (else the frame is
    the lab frame). Returns (transport table, MSD curves, info for analysis.json).
    """
    s = settings or TransportSettings()
    com = np.asarray(com_A, dtype=np.float64)
    mol_species = np.asarray(mol_species)
    F = com.shape[0]
    t = np.asarray(times_ps, float) - (times_ps[0] if F else 0.0)
    n_mol = np.array([int((mol_species == k).sum()) for k in range(len(species))])
    z = np.array([np.nan if q is None else float(q) for q in charges], dtype=float)
    ion_idx = np.flatnonzero(np.isfinite(z) & (z != 0))
    sysd = _System(list(species), n_mol, z, ion_idx, float(temperature_K))
    notes: list[str] = []

    def warn(msg: str) -> str:
        warnings.warn(f"transport: {msg}", AnalysisWarning, stacklevel=3)
        notes.append(msg)
        return msg

    global_w = []
    if max_step_A is not None and min_half_box_A is not None and max_step_A > UNWRAP_SAFE * min_half_box_A:
        global_w.append(warn(
            f"a molecule moved {max_step_A:.2f} A between two analysed frames "
            f"(half the box is {min_half_box_A:.2f} A): "
            "frames too far apart to unwrap without ambiguity; use a shorter frame interval (frames.step)"))
    if ion_idx.size == 0:
        warn("no formal charges known (spec field `charges`), conductivity not computed")
    for k in ion_idx:
        if n_mol[k] == 1:
            warn(f"species {species[k]} has one molecule: its D and L terms are single-particle estimates "
                 "(noisy; errors from the blocks only), and it does not set the fit window")
    if ion_idx.size and abs(float(np.sum(n_mol[ion_idx] * z[ion_idx]))) > 1e-6:
        warn(f"the followed ions carry a net charge {float(np.sum(n_mol[ion_idx] * z[ion_idx])):+g} e: "
             "transference numbers depend on the reference frame beyond the usual")
    frame0 = C.BARYCENTRIC if barycentric else C.LAB
    neutral = [k for k in range(len(species)) if np.isfinite(z[k]) and z[k] == 0]  # the solvent
    others = [k for k in range(len(species)) if k not in set(ion_idx.tolist())]
    frames = [frame0]
    if masses is not None and neutral and ion_idx.size:
        frames.append(C.SOLVENT_FIXED)
    elif ion_idx.size:
        unknown = [species[k] for k in range(len(species)) if not np.isfinite(z[k])]
        warn("no neutral (solvent) molecules followed: the solvent-fixed frame is not computed"
             + (f" (charge unknown for {', '.join(unknown)}: give 0 in `charges` for a solvent)" if unknown else ""))
    info: dict = {"reference_frames": frames, "solvent_species": [species[k] for k in neutral]
                  if C.SOLVENT_FIXED in frames else [], "warnings": notes}  # fmt: skip

    if F < 3:
        warn(f"{F} frame(s): an MSD fit needs at least 3 frames; nothing fitted")
        df = _empty_rows(sysd, frames, "; ".join(notes))
        return _finish(df, temperature_K, volumes_A3), pd.DataFrame(columns=CURVE_COLUMNS), info

    B = max(1, min(s.n_blocks, F // MIN_BLOCK_FRAMES))
    if B < s.n_blocks:
        warn(f"{F} frames: {B} block(s) of >= {MIN_BLOCK_FRAMES} frames instead of n_blocks = {s.n_blocks}"
             + ("; no error bars" if B == 1 else ""))
    Lb = F // B
    T_block = float(t[Lb - 1])
    lag = t  # equally spaced: lag k has time t[k]

    # self MSDs (full run) and the windows
    self_msd = [msd_fft(com[:, mol_species == k]) for k in range(len(species))]
    steer = [k for k in ion_idx if n_mol[k] >= MIN_DETECT] or list(ion_idx)
    tol = s.diffusive_tolerance

    def window_for(keys) -> Window:
        curves = {species[k]: self_msd[k] for k in keys}
        if s.window == "auto":
            return find_window(lag, curves, s.max_lag_frac * T_block, tol)
        return check_window(lag, curves, s.fit_start_frac * T_block, s.fit_stop_frac * T_block, tol)

    win_ion = window_for(steer) if ion_idx.size else None
    win = {k: (win_ion if k in set(ion_idx) else window_for([k])) for k in range(len(species))}
    if win_ion is not None and not win_ion.diffusive:
        warn(f"ions: {win_ion.reason}; D, L_ij, sigma and t+ are NOT FINAL")
    for k in others:
        if not win[k].diffusive:
            warn(f"{species[k]}: {win[k].reason}")
    info["window"] = {species[k]: {"start_ps": win[k].start, "stop_ps": win[k].stop, "diffusive": win[k].diffusive,
                                   "reason": win[k].reason} for k in range(len(species))}  # fmt: skip
    info["n_blocks"], info["block_ps"] = B, T_block

    # collective displacements per frame
    R0 = {k: com[:, mol_species == k].sum(1) for k in ion_idx}
    series = {frame0: R0}
    if C.SOLVENT_FIXED in frames:
        sel = np.isin(mol_species, neutral)
        w = np.asarray(masses, float)[sel]
        r0 = np.einsum("fmx,m->fx", com[:, sel], w / w.sum())
        series[C.SOLVENT_FIXED] = {k: R0[k] - n_mol[k] * r0 for k in ion_idx}

    def primary(sl: slice, keep_curves: bool = False):
        """Slopes (A^2/ps) of one stretch of frames over the fixed windows."""
        tt = lag[: sl.stop - sl.start]
        theta = {"V": np.array(float(np.mean(volumes_A3[sl]))) if len(volumes_A3) else np.array(np.nan)}
        msds = self_msd if keep_curves else [msd_fft(com[sl, mol_species == k]) for k in range(len(species))]
        theta["self"] = np.array([fit_slope(tt, msds[k], win[k].start, win[k].stop)[0] for k in range(len(species))])
        curves = {}
        for f, Rs in series.items():
            I = len(ion_idx)
            cross = np.full((I, I), np.nan)
            for a in range(I):
                for b in range(a, I):
                    ka, kb = ion_idx[a], ion_idx[b]
                    c = cross_msd(Rs[ka][sl], Rs[kb][sl])
                    cross[a, b] = cross[b, a] = fit_slope(tt, c, win_ion.start, win_ion.stop)[0]
                    if keep_curves:
                        curves[(f, a, b)] = c
            theta[f"cross:{f}"] = cross
        if ion_idx.size:
            M = sum(z[k] * R0[k][sl] for k in ion_idx)  # charge dipole (frame-independent if neutral)
            mM = msd_fft(M[:, None, :])
            theta["eh"] = np.array(fit_slope(tt, mM, win_ion.start, win_ion.stop)[0])
            if keep_curves:
                curves["dipole"] = mM
        else:
            theta["eh"] = np.array(np.nan)
        return theta, curves

    theta_full, curves = primary(slice(0, F), keep_curves=True)
    blocks = [primary(slice(b * Lb, (b + 1) * Lb))[0] for b in range(B)] if B > 1 else []
    def fn(th):
        return sysd.derived(th, list(series)) if ion_idx.size else {"D": th["self"] / 6.0 * A2_PS_TO_M2_S}

    est = fn(theta_full)
    err = jackknife(blocks, fn) if blocks else {k: np.full(np.shape(v), np.nan) for k, v in est.items()}
    err_method = f"jackknife over {B} time blocks of {T_block:.4g} ps" if B > 1 else "none (one block)"

    rows = _rows(sysd, list(series), est, err, win, win_ion, lag, self_msd, curves, B, err_method, global_w)
    df = _finish(pd.DataFrame(rows), temperature_K, volumes_A3)
    return df, _curve_table(sysd, frame0, lag, self_msd, curves, win_ion, T_block), info


def _warn_text(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _not_final(w: Window) -> str:
    """The table's warning for a window outside the diffusive regime (empty inside it)."""
    return "" if w.diffusive else f"NOT DIFFUSIVE: {w.reason} - not final"


def _rows(sysd: _System, frames, est, err, win, win_ion, lag, self_msd, curves, B, err_method, global_w):
    """One row per species (self-diffusion), pair and frame (L_ij), ion species and frame (t),
    and the summary rows (Nernst-Einstein, Einstein-Helfand, sigma from L_ij, ionicity)."""
    sp, z, ions = sysd.species, sysd.z, list(sysd.ion_idx)
    gw = _warn_text(*global_w)
    not_final = _not_final(win_ion) if win_ion is not None else ""
    common = {C.N_BLOCKS: B, C.ERROR_METHOD: err_method}
    rows = []
    for k, name in enumerate(sp):
        w = win[k]
        i = ions.index(k) if k in ions else None
        single = "one molecule: single-particle estimate" if sysd.n_mol[k] == 1 else ""
        regime = not_final if i is not None else _not_final(w)
        rows.append({C.SPECIES: name, C.METHOD: C.MSD_SELF, C.REF_FRAME: frames[0], C.N_MOLECULES: int(sysd.n_mol[k]),
                     C.CHARGE: z[k], C.D: est["D"][k], C.D_STD: err["D"][k],
                     C.SIGMA: est["ne_terms"][i] if i is not None else np.nan,
                     C.SIGMA_STD: err["ne_terms"][i] if i is not None else np.nan,
                     C.TRANSFERENCE_IDEAL: est["t_ideal"][i] if i is not None else np.nan,
                     C.TRANSFERENCE_IDEAL_STD: err["t_ideal"][i] if i is not None else np.nan,
                     C.FIT_START: w.start, C.FIT_STOP: w.stop,
                     C.LOGLOG_SLOPE: loglog_fit(lag, self_msd[k], w.start, w.stop), C.DIFFUSIVE: w.diffusive,
                     C.WARNING: _warn_text(regime, single, gw), **common})  # fmt: skip
    if not ions:
        return rows
    wi = {C.FIT_START: win_ion.start, C.FIT_STOP: win_ion.stop, C.DIFFUSIVE: win_ion.diffusive}
    I = len(ions)
    for f in frames:
        for a in range(I):
            for b in range(a, I):
                mult = 1.0 if a == b else 2.0  # sigma_ij + sigma_ji
                single = "one molecule" if 1 in (sysd.n_mol[ions[a]], sysd.n_mol[ions[b]]) else ""
                rows.append({C.SPECIES: sp[ions[a]], C.SPECIES_J: sp[ions[b]], C.METHOD: C.ONSAGER, C.REF_FRAME: f,
                             C.N_MOLECULES: int(sysd.n_mol[ions[a]]), C.CHARGE: z[ions[a]],
                             C.L: est[f"L:{f}"][a, b], C.L_STD: err[f"L:{f}"][a, b],
                             C.SIGMA: mult * est[f"sigma_ij:{f}"][a, b], C.SIGMA_STD: mult * err[f"sigma_ij:{f}"][a, b],
                             C.LOGLOG_SLOPE: loglog_fit(lag, curves[(f, a, b)], win_ion.start, win_ion.stop),
                             C.WARNING: _warn_text(not_final, single, gw), **wi, **common})  # fmt: skip
        for a in range(I):
            k = ions[a]
            rows.append({C.SPECIES: sp[k], C.METHOD: C.TRANSFERENCE_ROW, C.REF_FRAME: f,
                         C.N_MOLECULES: int(sysd.n_mol[k]), C.CHARGE: z[k],
                         C.TRANSFERENCE: est[f"t:{f}"][a], C.TRANSFERENCE_STD: err[f"t:{f}"][a],
                         C.TRANSFERENCE_IDEAL: est["t_ideal"][a], C.TRANSFERENCE_IDEAL_STD: err["t_ideal"][a],
                         C.WARNING: _warn_text(not_final, gw), **wi, **common})  # fmt: skip
        rows.append({C.SPECIES: C.ALL_IONS, C.METHOD: C.ONSAGER_SIGMA, C.REF_FRAME: f,
                     C.N_MOLECULES: int(sysd.n_ion.sum()), C.SIGMA: float(est[f"sigma:{f}"]),
                     C.SIGMA_STD: float(err[f"sigma:{f}"]), C.WARNING: _warn_text(not_final, gw), **wi, **common})
    n_ions = int(sysd.n_ion.sum())
    rows.append({C.SPECIES: C.ALL_IONS, C.METHOD: C.NERNST_EINSTEIN, C.N_MOLECULES: n_ions,
                 C.SIGMA: float(est["sigma_ne"]), C.SIGMA_STD: float(err["sigma_ne"]),
                 C.WARNING: _warn_text(not_final, gw), **wi, **common})
    rows.append({C.SPECIES: C.ALL_IONS, C.METHOD: C.EINSTEIN_HELFAND, C.N_MOLECULES: n_ions,
                 C.SIGMA: float(est["sigma_eh"]), C.SIGMA_STD: float(err["sigma_eh"]),
                 C.LOGLOG_SLOPE: loglog_fit(lag, curves["dipole"], win_ion.start, win_ion.stop),
                 C.WARNING: _warn_text(not_final, gw), **wi, **common})
    rows.append({C.SPECIES: C.ALL_IONS, C.METHOD: C.IONICITY_ROW, C.REF_FRAME: frames[0], C.N_MOLECULES: n_ions,
                 C.IONICITY: float(est["ionicity"]), C.IONICITY_STD: float(err["ionicity"]),
                 C.WARNING: _warn_text(not_final, gw), **wi, **common})
    return rows


def _empty_rows(sysd: _System, frames, warning: str) -> pd.DataFrame:
    rows = [{C.SPECIES: n, C.METHOD: C.MSD_SELF, C.REF_FRAME: frames[0], C.N_MOLECULES: int(sysd.n_mol[k]),
             C.CHARGE: sysd.z[k], C.DIFFUSIVE: False, C.WARNING: warning} for k, n in enumerate(sysd.species)]
    if sysd.ion_idx.size:
        rows += [{C.SPECIES: C.ALL_IONS, C.METHOD: m, C.N_MOLECULES: int(sysd.n_ion.sum()), C.DIFFUSIVE: False,
                  C.WARNING: warning} for m in (C.NERNST_EINSTEIN, C.EINSTEIN_HELFAND)]
    return pd.DataFrame(rows)


def _finish(df: pd.DataFrame, temperature_K: float, volumes_A3) -> pd.DataFrame:
    df = df.reindex(columns=COLUMNS)
    df[C.SIGMA_MS_CM] = df[C.SIGMA] * 10.0
    df[C.TEMPERATURE] = temperature_K
    df[C.VOLUME] = float(np.mean(volumes_A3)) if len(volumes_A3) else float("nan")
    df[C.DIFFUSIVE] = df[C.DIFFUSIVE].astype("boolean")
    df[C.WARNING] = df[C.WARNING].fillna("")
    return df


def _curve_table(sysd: _System, frame0, lag, self_msd, curves, win_ion, T_block) -> pd.DataFrame:
    """msd.csv: self MSDs, collective <dR_i . dR_j> per frame, and the charge-dipole MSD (A^2)."""
    parts = [pd.DataFrame({C.SPECIES: n, C.SPECIES_J: "", C.CURVE: "self", C.REF_FRAME: frame0, C.TIME: lag,
                           C.MSD: self_msd[k]}) for k, n in enumerate(sysd.species)]  # fmt: skip
    ions = list(sysd.ion_idx)
    for key, c in curves.items():
        if key == "dipole":
            parts.append(pd.DataFrame({C.SPECIES: C.ALL_IONS, C.SPECIES_J: "", C.CURVE: "charge dipole",
                                       C.REF_FRAME: frame0, C.TIME: lag, C.MSD: c}))
        else:
            f, a, b = key
            parts.append(pd.DataFrame({C.SPECIES: sysd.species[ions[a]], C.SPECIES_J: sysd.species[ions[b]],
                                       C.CURVE: "collective", C.REF_FRAME: f, C.TIME: lag, C.MSD: c}))
    return pd.concat(parts, ignore_index=True)[CURVE_COLUMNS]


# --------------------------------------------------------------------------- independent runs


def combine_runs(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Combine the transport tables of independent runs (packings) of one system.

    D and L_ij are averaged over runs; conductivities, transference numbers and the
    ionicity follow from the averages; every standard error is the jackknife over runs
    (leave one run out), which counts whatever makes runs differ (packing, slow modes).
    Needs >= 2 runs with the same species and charges."""
    if len(tables) < 2:
        raise SolvmdError(f"combine_runs: needs at least 2 independent runs, got {len(tables)}")
    parsed = [_parse(tb, k) for k, tb in enumerate(tables)]
    ref = parsed[0]
    for k, p in enumerate(parsed[1:], 2):
        if p["species"] != ref["species"] or not np.array_equal(p["z"], ref["z"], equal_nan=True) \
                or p["frames"] != ref["frames"]:
            raise SolvmdError(f"combine_runs: run {k} has other species, charges or reference frames than run 1 "
                              f"({p['species']} vs {ref['species']})")
    sysd = _System(ref["species"], ref["n_mol"], ref["z"], ref["ion_idx"], ref["T"])
    frames = ref["frames"]
    samples = [{"D": p["D"], "V": np.array(p["V"]), **{f"L:{f}": p["L"][f] for f in frames}} for p in parsed]

    def fn(th):
        return physical(th["D"], {f: th[f"L:{f}"] for f in frames}, sysd.n_ion, sysd.z_ion, sysd.ion_idx,
                        float(th["V"]), sysd.T)

    mean = {k: np.mean([s[k] for s in samples], axis=0) for k in samples[0]}
    est, err = fn(mean), jackknife(samples, fn)
    if frames:
        est["sigma_eh"], err["sigma_eh"] = est[f"sigma:{frames[0]}"], err[f"sigma:{frames[0]}"]
    R = len(tables)
    win = {k: Window(float(np.mean([p["win"][k][0] for p in parsed])), float(np.mean([p["win"][k][1] for p in parsed])),
                     all(p["win"][k][2] for p in parsed), "at least one run is not diffusive")
           for k in range(len(sysd.species))}  # fmt: skip
    win_ion = win[int(sysd.ion_idx[0])] if sysd.ion_idx.size else None
    nan_curves = {(f, a, b): np.full(1, np.nan) for f in frames for a in range(len(sysd.ion_idx))
                  for b in range(len(sysd.ion_idx))}
    nan_curves["dipole"] = np.full(1, np.nan)
    warn = sorted({w for p in parsed for w in p["warnings"] if w})
    rows = _rows(sysd, frames, est, err, win, win_ion, np.full(1, np.nan), [np.full(1, np.nan)] * len(sysd.species),
                 nan_curves, R, f"jackknife over {R} independent runs", warn)
    df = _finish(pd.DataFrame(rows), sysd.T, [np.mean([p["V"] for p in parsed])])
    df[C.N_RUNS] = R
    return df


def _parse(tb: pd.DataFrame, k: int) -> dict:
    """Per-run primary numbers (D, L per frame, V, T, windows) from one transport table."""
    self_rows = tb[tb[C.METHOD] == C.MSD_SELF]
    if self_rows.empty:
        raise SolvmdError(f"combine_runs: run {k + 1} has no self-diffusion rows (not a transport.csv?)")
    species = [str(x) for x in self_rows[C.SPECIES]]
    z = self_rows[C.CHARGE].to_numpy(dtype=float)
    ion_idx = np.flatnonzero(np.isfinite(z) & (z != 0))
    pair = tb[tb[C.METHOD] == C.ONSAGER]
    frames = list(dict.fromkeys(pair[C.REF_FRAME])) if len(pair) else []
    L = {}
    for f in frames:
        I = len(ion_idx)
        M = np.full((I, I), np.nan)
        sub = pair[pair[C.REF_FRAME] == f]
        pos = {species[j]: a for a, j in enumerate(ion_idx)}
        for _, r in sub.iterrows():
            if str(r[C.SPECIES]) not in pos or str(r[C.SPECIES_J]) not in pos:
                raise SolvmdError(f"combine_runs: run {k + 1}: an L_ij row names {r[C.SPECIES]}/{r[C.SPECIES_J]}, "
                                  f"not an ion species of its self-diffusion rows ({species})")
            a, b = pos[str(r[C.SPECIES])], pos[str(r[C.SPECIES_J])]
            M[a, b] = M[b, a] = float(r[C.L])
        L[f] = M
    win = [(float(r[C.FIT_START]), float(r[C.FIT_STOP]), bool(r[C.DIFFUSIVE]) if pd.notna(r[C.DIFFUSIVE]) else False)
           for _, r in self_rows.iterrows()]
    return {"species": species, "z": z, "ion_idx": ion_idx, "n_mol": self_rows[C.N_MOLECULES].to_numpy(dtype=int),
            "D": self_rows[C.D].to_numpy(dtype=float), "L": L, "frames": frames, "V": float(tb[C.VOLUME].iloc[0]),
            "T": float(tb[C.TEMPERATURE].iloc[0]), "win": win,
            "warnings": [w for w in tb[C.WARNING].fillna("").astype(str).unique() if "NOT DIFFUSIVE" not in w]}


def read_tables(paths) -> list[pd.DataFrame]:
    """transport.csv files of independent runs, checked to exist."""
    from pathlib import Path

    out = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise SolvmdError(f"{p}: no such transport table (run `solvmd analyze` on that run first)")
        out.append(pd.read_csv(p, keep_default_na=True))
    return out
