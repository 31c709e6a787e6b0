"""SSIP / CIP / AGG (two definitions, labelled) and ion clusters, from the contact table.

Only partners listed as ``anions`` enter; a cation and an anion are in contact when any
donor atom of the anion lies within the anion's first-shell cutoff of the cation.

* anion-centric (the seed/Raman definition): an anion touched by 0 cations is SSIP,
  by exactly 1 cation CIP, by >= 2 cations AGG.
* cation-centric, network definition (as in MD analysis packages): build the
  cation-anion contact graph per frame; a cation with no anion is SSIP, a cation whose
  connected cluster is exactly one cation + one anion is CIP, a cation in any larger
  cluster is AGG.

Clusters are the connected components of that graph, free ions included (size 1).
All frames are handled in one ``connected_components`` call on a block-diagonal graph.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from solvmd.analysis import columns as C
from solvmd.analysis.contacts import ContactTable

SSIP_CODE, CIP_CODE, AGG_CODE = 0, 1, 2
CLASSES = (C.SSIP, C.CIP, C.AGG)
MEANING = {
    (C.ANION_CENTRIC, C.SSIP): "anion in contact with no cation",
    (C.ANION_CENTRIC, C.CIP): "anion in contact with exactly one cation",
    (C.ANION_CENTRIC, C.AGG): "anion in contact with two or more cations",
    (C.CATION_CENTRIC, C.SSIP): "cation with no anion in its first shell",
    (C.CATION_CENTRIC, C.CIP): "cation in an isolated cation-anion pair (cluster of 1 cation + 1 anion)",
    (C.CATION_CENTRIC, C.AGG): "cation in any larger cation-anion cluster",
}


def _anion_index(ct: ContactTable) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Map molecule code -> anion index (-1 if not an anion); anion species names; species of each anion."""
    lut = np.full(ct.molecules.size, -1, dtype=np.int64)
    species = []
    start = 0
    offset = 0
    for k, n in enumerate(ct.partner_names):
        size = ct.partner_res[n].size
        if n in ct.anions:
            lut[start : start + size] = np.arange(offset, offset + size)
            species.append(np.full(size, len([a for a in ct.partner_names[:k] if a in ct.anions])))
            offset += size
        start += size
    names = [n for n in ct.partner_names if n in ct.anions]
    return lut, names, (np.concatenate(species) if species else np.zeros(0, dtype=np.int64))


def ion_contacts(ct: ContactTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Unique (frame index, cation index, anion index) contacts and the number of anions."""
    lut, _, sp = _anion_index(ct)
    k = ct.codes
    a = lut[k["m"]]
    sel = a >= 0
    A = int(sp.size)
    key = np.unique((k["f"][sel] * ct.n_cations + k["c"][sel]) * max(A, 1) + a[sel])
    a_u = key % max(A, 1)
    fc = key // max(A, 1)
    return fc // ct.n_cations, fc % ct.n_cations, a_u, A


def cations_per_anion(ct: ContactTable) -> np.ndarray:
    """Number of distinct cations touching each anion, shape (frames, anions)."""
    f, _, a, A = ion_contacts(ct)
    return np.bincount(f * A + a, minlength=ct.n_frames * A).reshape(ct.n_frames, A)


def cluster_labels(ct: ContactTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Connected components of the cation-anion contact graph, all frames at once.

    Returns ``labels`` of shape (frames, cations + anions) (cations first, globally unique
    component ids) and, per component id, its number of cations and anions.
    """
    return ct.memo("cluster_labels", lambda: _cluster_labels(ct))


def _cluster_labels(ct: ContactTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f, c, a, A = ion_contacts(ct)
    Cn = ct.n_cations
    n = Cn + A
    N = ct.n_frames * n
    rows = f * n + c
    cols = f * n + Cn + a
    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(N, N)).tocsr()
    _, labels = connected_components(graph, directed=False)
    labels = labels.reshape(ct.n_frames, n)
    n_cat = np.bincount(labels[:, :Cn].ravel(), minlength=labels.max() + 1 if N else 0)
    n_an = np.bincount(labels[:, Cn:].ravel(), minlength=labels.max() + 1 if N else 0)
    return labels, n_cat, n_an


def cation_classes(ct: ContactTable) -> np.ndarray:
    """Cation-centric (network) class code per (frame, cation): 0 SSIP, 1 CIP, 2 AGG."""
    labels, n_cat, n_an = cluster_labels(ct)
    lab = labels[:, : ct.n_cations]
    cls = np.full(lab.shape, AGG_CODE, dtype=np.int64)
    cls[n_an[lab] == 0] = SSIP_CODE
    cls[(n_an[lab] == 1) & (n_cat[lab] == 1)] = CIP_CODE
    return cls


def anion_classes(ct: ContactTable) -> np.ndarray:
    """Anion-centric class code per (frame, anion): 0 SSIP, 1 CIP, 2 AGG."""
    return np.minimum(cations_per_anion(ct), AGG_CODE)


def speciation_table(ct: ContactTable) -> pd.DataFrame:
    """SSIP/CIP/AGG fractions under both definitions, clearly labelled."""
    cols = [C.DEFINITION, C.SPECIES, C.CLASS, C.FRACTION, C.MEAN_COUNT, C.MEANING]
    if not ct.anions:
        return pd.DataFrame(columns=cols)
    rows = []
    _, names, sp = _anion_index(ct)
    acls = anion_classes(ct)
    groups = [(n, sp == k) for k, n in enumerate(names)]
    if len(names) > 1:
        groups.append((C.ALL_ANIONS, np.ones(sp.size, bool)))
    for name, mask in groups:
        x = acls[:, mask]
        for code, cls in enumerate(CLASSES):
            hit = (x == code).sum()
            rows.append(
                {
                    C.DEFINITION: C.ANION_CENTRIC,
                    C.SPECIES: name,
                    C.CLASS: cls,
                    C.FRACTION: hit / x.size if x.size else np.nan,
                    C.MEAN_COUNT: hit / ct.n_frames,
                    C.MEANING: MEANING[(C.ANION_CENTRIC, cls)],
                }
            )
    ccls = cation_classes(ct)
    for code, cls in enumerate(CLASSES):
        hit = (ccls == code).sum()
        rows.append(
            {
                C.DEFINITION: C.CATION_CENTRIC,
                C.SPECIES: C.CATIONS,
                C.CLASS: cls,
                C.FRACTION: hit / ccls.size if ccls.size else np.nan,
                C.MEAN_COUNT: hit / ct.n_frames,
                C.MEANING: MEANING[(C.CATION_CENTRIC, cls)],
            }
        )
    return pd.DataFrame(rows, columns=cols)


def cluster_table(ct: ContactTable) -> pd.DataFrame:
    """Size distribution of cation-anion clusters (free ions are clusters of size 1)."""
    cols = [C.N_CATIONS, C.N_ANIONS, C.CLUSTER_SIZE, C.COUNT, C.MEAN_CLUSTERS, C.FRAC_CLUSTERS, C.FRAC_IONS]
    if not ct.anions:
        return pd.DataFrame(columns=cols)
    labels, n_cat, n_an = cluster_labels(ct)
    if n_cat.size == 0:
        return pd.DataFrame(columns=cols)
    comp = np.stack([n_cat, n_an], axis=1)
    uniq, counts = np.unique(comp, axis=0, return_counts=True)
    size = uniq.sum(1)
    n_ions_total = labels.size
    df = pd.DataFrame(
        {
            C.N_CATIONS: uniq[:, 0],
            C.N_ANIONS: uniq[:, 1],
            C.CLUSTER_SIZE: size,
            C.COUNT: counts,
            C.MEAN_CLUSTERS: counts / ct.n_frames,
            C.FRAC_CLUSTERS: counts / counts.sum(),
            C.FRAC_IONS: counts * size / n_ions_total,
        }
    )
    return df.sort_values([C.CLUSTER_SIZE, C.N_CATIONS]).reset_index(drop=True)[cols]
