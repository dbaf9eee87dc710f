"""Mean shift: equal to scikit-learn's, and the grouping never splits what it could join."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist
from sklearn.cluster import MeanShift

from faket.evaluation.clustering import _close_groups, _mean_shift


def _random_blobs(seed: int, shape=(24, 40, 40), n=14) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int64)
    z, y, x = np.indices(shape)
    for _ in range(n):
        centre = rng.uniform(0, shape)
        radius = rng.uniform(1.0, 3.5)
        labels[(z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2] = 1
    return labels


def test_groups_are_farther_apart_than_the_bandwidth() -> None:
    for seed in range(3):
        labels = _random_blobs(seed)
        components, _ = ndimage.label(labels)
        voxels = np.argwhere(labels)
        owner = components[tuple(voxels.T)]
        width = 3.0
        groups = list(_close_groups(voxels, owner, width))
        assert np.array_equal(np.sort(np.concatenate(groups)), np.arange(len(voxels)))
        assert len(groups) > 1
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                # Every component lies in exactly one group, far from all other groups.
                assert not set(owner[a]) & set(owner[b])
                assert cdist(voxels[a], voxels[b]).min() >= width


@pytest.mark.parametrize("seed", [7, 11])
def test_grouped_mean_shift_equals_scikit_learns_on_the_whole_volume(seed) -> None:
    # 30 blobs in a small volume: several groups hold touching blobs with two or more modes.
    labels = _random_blobs(seed, n=30)
    components, _ = ndimage.label(labels)
    voxels = np.argwhere(labels)
    owner = components[tuple(voxels.T)]
    width = 2.5
    clusters = _mean_shift(labels, voxels, owner, width)
    grouped = sorted((size, tuple(np.round(centre, 6))) for _, size, centre in clusters)
    found = MeanShift(bandwidth=width, bin_seeding=True, n_jobs=1).fit_predict(voxels)
    whole = sorted(
        (int((found == k).sum()), tuple(np.round(voxels[found == k].mean(axis=0), 6)))
        for k in np.unique(found)
    )
    assert grouped == whole
    assert len(whole) > len(list(_close_groups(voxels, owner, width)))


@pytest.mark.parametrize("seed", [7, 11])
def test_tree_windows_equal_dense_windows(seed, monkeypatch) -> None:
    # Large groups find their windows with a k-d tree; forced here on a small case, the
    # clusters must equal scikit-learn's exactly as the dense path's do.
    from faket.evaluation import clustering

    monkeypatch.setattr(clustering, "DENSE_POINTS", 10)
    labels = _random_blobs(seed, n=30)
    components, _ = ndimage.label(labels)
    voxels = np.argwhere(labels)
    owner = components[tuple(voxels.T)]
    clusters = _mean_shift(labels, voxels, owner, 2.5)
    grouped = sorted((size, tuple(np.round(centre, 6))) for _, size, centre in clusters)
    found = MeanShift(bandwidth=2.5, bin_seeding=True, n_jobs=1).fit_predict(voxels)
    whole = sorted(
        (int((found == k).sum()), tuple(np.round(voxels[found == k].mean(axis=0), 6)))
        for k in np.unique(found)
    )
    assert grouped == whole


def test_suppression_radius_merges_a_split_particle_but_not_two_particles() -> None:
    from faket.evaluation.clustering import cluster

    # One particle of radius 8 segmented as two blobs 6 voxels apart (a split), and a
    # second particle 20 voxels away. Bandwidth 2: mean shift finds three clusters.
    labels = np.zeros((40, 40, 60), np.int64)
    z, y, x = np.indices(labels.shape)
    for centre, radius in (((20, 20, 14), 2.5), ((20, 20, 20), 2.0), ((20, 20, 40), 2.5)):
        inside = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2
        labels[inside] = 1
    plain = cluster(labels, ["p"], bandwidth=2.0)
    assert len(plain) == 3
    merged = cluster(labels, ["p"], bandwidth=2.0, suppression_radius=8.0)
    assert len(merged) == 2
    # The larger blob of the split particle is kept, the distant particle too.
    assert sorted(np.round(merged["x"]).astype(int)) == [14, 40]
