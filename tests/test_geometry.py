"""solvmd.geometry (ground floor) against independent brute-force or closed-form answers; solvmd.log."""

import io
import logging

import numpy as np
import pytest

from solvmd import geometry as G
from solvmd.log import configure, get_logger, log_to


def _brute_pairs(ref, conf, cutoff, L):
    d = conf[None, :, :] - ref[:, None, :]
    d -= L * np.round(d / L)
    r = np.sqrt((d**2).sum(-1))
    i, j = np.nonzero(r <= cutoff)
    return set(zip(i.tolist(), j.tolist())), r


def test_minimum_image_wraps_into_half_box():
    L = np.array([10.0, 20.0, 30.0])
    d = np.array([[6.0, -11.0, 44.0], [-5.1, 9.9, -16.0]])
    out = G.minimum_image(d, L)
    np.testing.assert_allclose(out, [[-4.0, 9.0, 14.0], [4.9, 9.9, 14.0]])
    assert np.all(np.abs(out) <= L / 2)


def test_minimum_image_vectors_is_the_nearest_image():
    rng = np.random.default_rng(2)
    box = np.array([[30.0, 0, 0], [6.0, 28.0, 0], [-5.0, 4.0, 26.0]])  # OpenMM reduced form
    d = rng.uniform(-60, 60, (400, 3))
    out = G.minimum_image_vectors(d, box)
    shifts = np.array([(i, j, k) for i in range(-3, 4) for j in range(-3, 4) for k in range(-3, 4)]) @ box
    brute = np.linalg.norm((d[:, None, :] + shifts[None]), axis=-1).min(1)
    near = brute < 11.0  # OpenMM's guarantee: exact for images within the cutoff (< half the box width, 26 A)
    assert near.sum() > 30
    np.testing.assert_allclose(np.linalg.norm(out, axis=1)[near], brute[near], atol=1e-9)
    assert np.all(np.linalg.norm(out, axis=1) >= brute - 1e-9)
    np.testing.assert_allclose(G.minimum_image_vectors(d, np.diag([10.0, 20.0, 30.0])),
                               G.minimum_image(d, [10.0, 20.0, 30.0]), atol=1e-12)


@pytest.mark.parametrize("cutoff", [2.0, 4.5, 7.9])
def test_pairs_within_equals_brute_force(cutoff):
    rng = np.random.default_rng(3)
    L = np.array([24.0, 27.0, 33.0])
    ref = rng.uniform(-5, 30, (25, 3))
    conf = rng.uniform(0, 30, (700, 3))
    dims = np.array([*L, 90.0, 90.0, 90.0])
    pairs, dist = G.pairs_within(ref, conf, cutoff, dims)
    want, r = _brute_pairs(ref, conf, cutoff, L)
    assert set(map(tuple, pairs.tolist())) == want and len(want) > 20
    np.testing.assert_allclose(dist, r[pairs[:, 0], pairs[:, 1]], atol=1e-9)


def test_self_pairs_within_sorted_unique_and_min_cutoff():
    rng = np.random.default_rng(5)
    L = np.array([12.0, 14.0, 1000.0])
    xyz = np.column_stack([rng.uniform(0, 12, 80), rng.uniform(0, 14, 80), np.zeros(80)])
    pairs = G.self_pairs_within(xyz, 5.5, [*L, 90, 90, 90], min_cutoff=1.0)  # more than half of Lx
    _, r = _brute_pairs(xyz, xyz, 5.5, L)
    want = [(i, j) for i in range(80) for j in range(i + 1, 80) if 1.0 < r[i, j] <= 5.5]
    assert [tuple(p) for p in pairs.tolist()] == want and len(want) > 100


def test_box_volume_and_half_width_triclinic():
    dims = np.array([10.0, 10.0, 10.0, 90.0, 90.0, 60.0])  # a, b at 60 deg: base area 100 sin 60
    assert G.box_volume(dims) == pytest.approx(1000.0 * np.sin(np.pi / 3), rel=1e-6)
    assert G.min_half_width(dims) == pytest.approx(0.5 * 10.0 * np.sin(np.pi / 3), rel=1e-6)
    assert G.box_volume([3.0, 4.0, 5.0, 90, 90, 90]) == 60.0
    assert G.min_half_width([3.0, 4.0, 5.0, 90, 90, 90]) == 1.5


def test_first_min_after_peak():
    x = np.arange(0.25, 15.0, 0.5)
    y = np.exp(-((x - 3.0) ** 2)) * 5 + np.exp(-((x - 8.0) ** 2) / 2) * 2  # peak at 3, minimum near 6
    peak, minimum = G.first_min_after_peak(x, y, peak_max=5.0)
    assert peak == pytest.approx(2.75) or peak == pytest.approx(3.25)
    assert 5.0 < minimum < 7.0
    assert G.first_min_after_peak(x, np.zeros_like(x)) == (None, None)
    assert G.first_min_after_peak(x, np.exp(-x))[1] is None  # monotonic: a peak, no minimum


def test_rotations():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=3), rng.normal(size=3)
        R = G.rotation_to(a, b)
        np.testing.assert_allclose(R @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-12)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        Q = G.random_rotation(rng)
        np.testing.assert_allclose(Q @ Q.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(Q) == pytest.approx(1.0)
    np.testing.assert_allclose(G.rotation_to([1, 0, 0], [-1, 0, 0]) @ [1, 0, 0], [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(G.axis_rotation([0, 0, 2.0], np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_log_to_stream_and_levels():
    buf = io.StringIO()
    log = get_logger("build")
    with log_to(buf):
        log.info("wrote system.pdb")
        log.debug("not shown at INFO")
        log.warning("box small")
    log.info("after: not captured")
    assert buf.getvalue().splitlines() == ["[build] wrote system.pdb", "[build] warning: box small"]
    quiet = io.StringIO()
    try:
        configure(-1, quiet)
        log.info("silenced")
        log.warning("kept")
        assert quiet.getvalue().splitlines() == ["[build] warning: kept"]
    finally:
        root = logging.getLogger("solvmd")
        root.handlers, root.propagate = [], True
        root.setLevel(logging.NOTSET)
