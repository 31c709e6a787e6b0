"""packmol packing: counts, minimum distances under periodic images, clear failures."""

import numpy as np
import pytest
from MDAnalysis.lib.distances import self_capped_distance

from solvmd import species
from solvmd.assembly.packing import pack
from solvmd.errors import SolvmdError


def test_pack_respects_tolerance_and_box():
    counts = {"Li": 4, "TFSI": 4, "DME": 30}
    box = 22.0
    xyz = pack(counts, box, seed=7, tolerance_A=2.0)
    n_atoms = sum(species.get(n).n_atoms * k for n, k in counts.items())
    assert xyz.shape == (n_atoms, 3)
    assert xyz.min() >= 0.0 and xyz.max() <= box
    mol_id = np.repeat(np.arange(sum(counts.values())),
                       [species.get(n).n_atoms for n, k in counts.items() for _ in range(k)])
    pairs, d = self_capped_distance(xyz.astype(np.float32), 1.9, box=np.array([box] * 3 + [90] * 3, np.float32))
    inter = mol_id[pairs[:, 0]] != mol_id[pairs[:, 1]]
    assert not inter.any(), f"{inter.sum()} intermolecular pairs closer than 1.9 A (periodic images included)"


def test_pack_is_deterministic_with_seed():
    a = pack({"DME": 10}, 20.0, seed=3)
    b = pack({"DME": 10}, 20.0, seed=3)
    np.testing.assert_allclose(a, b)


def test_pack_failure_names_species_and_fix():
    with pytest.raises(SolvmdError) as err:
        pack({"TFSI": 60}, 12.0, seed=1, nloop=3, timeout_s=60)
    msg = str(err.value)
    assert "packmol failed" in msg and "TFSI x60" in msg and "tolerance" in msg
