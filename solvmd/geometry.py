"""Ground-floor geometry: periodic minimum image, neighbour pairs, box measures, peak/minimum, rotations.

One implementation of each, used by build, analysis (and, once wired, pmf). Lengths are in
whatever unit the caller's coordinates use (Angstrom in analysis, nm in build); box
``dims`` are MDAnalysis-style ``[a, b, c, alpha, beta, gamma]`` (lengths, degrees).
Imports nothing from solvmd. MDAnalysis (neighbour search, triclinic boxes) is imported where
it is used, so the MD path runs where MDAnalysis is not installed (the GPU check's minimal install).
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- periodic boxes


def minimum_image(d: np.ndarray, lengths) -> np.ndarray:
    """Displacements ``d`` (..., k) wrapped into [-L/2, L/2] per axis of an orthorhombic box.

    ``lengths`` broadcasts against ``d`` (a scalar for one axis, (3,) for xyz); give a non-periodic
    axis a length far beyond any displacement (not ``inf``: that yields NaN). Returns a new array.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    return d - lengths * np.rint(d / lengths)


def minimum_image_vectors(d: np.ndarray, box_vectors: np.ndarray) -> np.ndarray:
    """Minimum-image displacements ``d`` (n, 3) for an OpenMM reduced triclinic box (rows a, b, c:
    a along x, b in the xy plane, as ``State.getPeriodicBoxVectors`` gives them), c then b then a
    removed, as OpenMM does. Returns a new (n, 3) array."""
    box = np.asarray(box_vectors, dtype=np.float64)
    d = np.array(d, dtype=np.float64, copy=True).reshape(-1, 3)
    for k in (2, 1, 0):
        d -= np.outer(np.round(d[:, k] / box[k, k]), box[k])
    return d


def is_orthorhombic(dims) -> bool:
    """All three box angles are 90 degrees (to 1e-4)."""
    return bool(np.all(np.abs(np.asarray(dims[3:6], dtype=np.float64) - 90.0) < 1e-4))


def box_volume(dims) -> float:
    """Volume of the (triclinic) box, in length units cubed."""
    if is_orthorhombic(dims):
        return float(np.prod(np.asarray(dims[:3], dtype=np.float64)))
    from MDAnalysis.lib.mdamath import triclinic_vectors

    a, b, c = triclinic_vectors(dims).astype(np.float64)
    return float(abs(np.dot(a, np.cross(b, c))))


def min_half_width(dims) -> float:
    """Half the smallest perpendicular width of the (triclinic) box: the largest safe pair range."""
    if is_orthorhombic(dims):
        return 0.5 * float(np.min(np.asarray(dims[:3], dtype=np.float64)))
    from MDAnalysis.lib.mdamath import triclinic_vectors

    a, b, c = triclinic_vectors(dims).astype(np.float64)
    vol = abs(np.dot(a, np.cross(b, c)))
    return 0.5 * float(min(vol / np.linalg.norm(np.cross(u, v)) for u, v in ((b, c), (c, a), (a, b))))


# --------------------------------------------------------------------------- neighbour pairs


_OFFSETS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.int64)


def capped_pairs(ref: np.ndarray, conf: np.ndarray, cutoff: float, dims) -> tuple[np.ndarray, np.ndarray]:
    """``MDAnalysis.lib.distances.capped_distance`` (any box): (n, 2) pairs, float64 distances."""
    if len(ref) == 0 or len(conf) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    from MDAnalysis.lib.distances import capped_distance

    pairs, dist = capped_distance(ref, conf, cutoff, box=dims, return_distances=True)
    return pairs, np.asarray(dist, dtype=np.float64)


def pairs_within(ref: np.ndarray, conf: np.ndarray, cutoff: float, dims) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with minimum-image |conf[j] - ref[i]| <= cutoff, and their distances (float64).

    Orthorhombic boxes at least three cutoffs wide: a vectorised numpy cell list (cells >=
    cutoff, candidates from the 27 neighbouring cells of each reference atom). Otherwise
    :func:`capped_pairs`. Same pairs as ``capped_distance`` (checked on every frame of the
    benchmark); kept because it is faster for a few cations against many donors. Measured
    on the five real Li+ electrolytes shipped with solvation-analysis 0.4.2 (7.1-8.6k atoms,
    49-73 cations, 1.6-4.8k donors, one thread), benchmarks/results/neighbour_search.csv:
    1.3-1.5x faster at 3 A, 1.8-2.5x at 8 A (solvmd's usual RDF range).
    """
    L = np.asarray(dims[:3], dtype=np.float64)
    n = np.floor(L / cutoff).astype(np.int64)
    if not is_orthorhombic(dims) or np.any(n < 3) or len(ref) == 0 or len(conf) == 0:
        return capped_pairs(ref, conf, cutoff, dims)
    cs = L / n
    ref64, conf64 = np.asarray(ref, dtype=np.float64), np.asarray(conf, dtype=np.float64)
    cc = np.floor(conf64 / cs).astype(np.int64) % n
    cid = (cc[:, 0] * n[1] + cc[:, 1]) * n[2] + cc[:, 2]
    order = np.argsort(cid, kind="stable")
    counts = np.bincount(cid, minlength=int(np.prod(n)))
    starts = np.cumsum(counts) - counts
    nb = (np.floor(ref64 / cs).astype(np.int64)[:, None, :] % n + _OFFSETS[None, :, :]) % n
    nbid = ((nb[..., 0] * n[1] + nb[..., 1]) * n[2] + nb[..., 2]).ravel()
    cnt = counts[nbid]
    first = np.cumsum(cnt) - cnt  # position of each cell's block in the candidate list
    j = order[np.arange(int(cnt.sum())) - np.repeat(first - starts[nbid], cnt)]
    i = np.repeat(np.repeat(np.arange(len(ref64)), _OFFSETS.shape[0]), cnt)
    # component by component: 1-D gathers are much faster than (n, 3) ones
    d2 = sum(minimum_image(conf64[:, k][j] - ref64[:, k][i], L[k]) ** 2 for k in range(3))
    keep = d2 <= cutoff * cutoff
    return np.stack([i[keep], j[keep]], axis=1), np.sqrt(d2[keep])


def self_pairs_within(xyz: np.ndarray, cutoff: float, dims, min_cutoff: float | None = None) -> np.ndarray:
    """Sorted (i < j) pairs of ``xyz`` with ``min_cutoff`` < minimum-image distance <= ``cutoff``.

    Brute force over all pairs (``self_capped_distance(method="bruteforce")``): exact minimum
    image even when the cutoff exceeds half the box, for the few hundred to few thousand atoms
    of a sheet. Returns an (n, 2) int array, rows in lexicographic order.
    """
    from MDAnalysis.lib.distances import self_capped_distance

    pairs = self_capped_distance(np.asarray(xyz, dtype=np.float64), cutoff, min_cutoff=min_cutoff,
                                 box=np.asarray(dims, dtype=np.float64), method="bruteforce",
                                 return_distances=False)
    pairs = np.sort(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


# --------------------------------------------------------------------------- profiles


def first_min_after_peak(x: np.ndarray, y: np.ndarray, peak_max: float | None = None, smooth_pts: int = 3,
                         depth: float = 0.8) -> tuple[float | None, float | None]:
    """(x of the peak, x of the first minimum after it) of a sampled profile ``y(x)``.

    ``y`` is smoothed by a ``smooth_pts`` running mean; the peak is the highest smoothed point
    at x <= ``peak_max``; the minimum is the first local minimum after it that is below
    ``depth`` times the peak. None where there is no positive peak or no such minimum.
    """
    if len(y) < 5 or not np.any(y > 0):
        return None, None
    ys = np.convolve(y, np.ones(smooth_pts) / smooth_pts, mode="same")
    lim = len(ys) if peak_max is None else int(np.searchsorted(x, peak_max, side="right"))
    if lim < 1:
        return None, None
    ip = int(np.argmax(ys[:lim]))
    if ys[ip] <= 0:
        return None, None
    for j in range(ip + 1, len(ys) - 1):
        if ys[j] <= ys[j - 1] and ys[j] <= ys[j + 1] and ys[j] < depth * ys[ip]:
            return float(x[ip]), float(x[j])
    return float(x[ip]), None


# --------------------------------------------------------------------------- rotations


def _cross_matrix(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def rotation_to(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix turning the direction of ``a`` onto the direction of ``b``."""
    a, b = np.asarray(a, float) / np.linalg.norm(a), np.asarray(b, float) / np.linalg.norm(b)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1.0 + 1e-9:  # antiparallel: a half turn about any axis perpendicular to a
        perp = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        perp /= np.linalg.norm(perp)
        return 2.0 * np.outer(perp, perp) - np.eye(3)
    vx = _cross_matrix(v)
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """3x3 rotation matrix by ``angle`` (radians) about ``axis`` (Rodrigues)."""
    kx = _cross_matrix(np.asarray(axis, float) / np.linalg.norm(axis))
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * kx @ kx


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random 3x3 rotation matrix (from a random unit quaternion)."""
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
    ])
