"""Targets, coordinate frames, patch-wise segmentation and mean-shift clustering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from faket.errors import FaketError
from faket.evaluation import DeepFinder, Frame, TrainedModel, cluster, predict, segment
from faket.evaluation.data import reconstruction_frame
from faket.evaluation.inference import patch_starts
from faket.evaluation.targets import class_radii, mask_labels, sphere_labels
from faket.tomography.binning import bin_array


def test_sphere_labels_paint_lattice_points_within_the_radius():
    labels = sphere_labels(
        (20, 20, 20), np.array([[10.0, 9.5, 10.2]]), np.array([3]), np.array([3.2])
    )
    z, y, x = np.mgrid[:20, :20, :20]
    expected = (z - 10.0) ** 2 + (y - 9.5) ** 2 + (x - 10.2) ** 2 <= 3.2**2
    np.testing.assert_array_equal(labels == 3, expected)
    assert set(np.unique(labels)) == {0, 3}


def test_small_spheres_are_painted_over_large_ones_and_clipped_at_borders():
    centres = np.array([[5.0, 5.0, 5.0], [5.0, 5.0, 8.0], [0.0, 0.0, 0.0]])
    labels = sphere_labels((10, 10, 12), centres, np.array([1, 2, 2]), np.array([4.0, 1.0, 2.0]))
    assert labels[5, 5, 8] == 2 and labels[5, 5, 5] == 1
    assert (
        labels[:3, :3, :3] == 2
    ).sum() == 11  # octant of radius 2: 0, 3x(1,0,0), 3x(2,0,0), 3x(1,1,0), (1,1,1)


def test_mask_labels_map_ids_and_drop_unlisted_ones():
    mask = np.array([[[0, 1, 2, 3, 14]]])
    np.testing.assert_array_equal(mask_labels(mask, {1: 2, 14: 1}), [[[0, 2, 0, 0, 1]]])


def test_class_radii_from_diameters():
    table = pd.DataFrame({"name": ["a", "b"], "diameter_nm": [10.0, 4.0]})
    radii = class_radii(["a", "b", "c"], table, 5.0, scale=0.5, overrides={"b": 7.0})
    assert radii == {"a": 5.0, "b": 7.0, "c": 3.0}  # 0.5 * 100 Å / 5 Å / 2; override; fallback


def test_binned_frame_maps_block_centres():
    frame = reconstruction_frame((16, 16, 16), post_binning=2)
    volume = np.zeros((16, 16, 16), dtype=np.float32)
    volume[6:8, 2:4, 10:12] = 1.0  # truth block centred at (6.5, 2.5, 10.5)
    binned = bin_array(volume, 2, axes=(0, 1, 2))
    peak = np.argwhere(binned == binned.max())[0]
    np.testing.assert_allclose(frame.to_volume([[6.5, 2.5, 10.5]]), [peak])
    np.testing.assert_allclose(frame.to_truth(frame.to_volume([[1.0, 2.0, 3.0]])), [[1, 2, 3]])


def test_frame_of_a_thicker_cropped_reconstruction_keeps_the_centre():
    frame = reconstruction_frame((20, 8, 8), thickness=30, z_valid=(4, 26))
    # Truth centre slice 10 is reconstruction slice 15, then cropping removes 4.
    assert frame.to_volume([[10.0, 0.0, 0.0]])[0, 0] == pytest.approx(11.0)
    mask = np.arange(20)[:, None, None] * np.ones((1, 2, 2), dtype=int)
    resampled = frame.resample(mask, (22, 2, 2))
    assert resampled[11, 0, 0] == 10 and resampled[0, 0, 0] == 0 and resampled[-1, 0, 0] == 19


def test_patch_starts_cover_the_axis_and_assign_nearest_centres():
    starts, owner = patch_starts(37, 12, 2)
    assert starts == [0, 8, 16, 24, 25]
    assert owner.shape == (37,) and owner[0] == 0 and owner[-1] == len(starts) - 1
    centres = np.array(starts) + 5.5
    for voxel in range(37):
        assert abs(voxel - centres[owner[voxel]]) == np.min(np.abs(voxel - centres))
    with pytest.raises(FaketError, match="no stride"):
        patch_starts(37, 12, 6)


class _Local(torch.nn.Module):
    """A one-layer 'network' (receptive-field radius 1) to test tiling exactly."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv3d(1, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("shape", [(20, 37, 30), (8, 30, 25)])
def test_patch_segmentation_equals_whole_volume_inference(shape):
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    network = _Local()
    labels, scores = segment(
        volume, network, patch_size=12, margin=2, device="cpu", return_probabilities=True,
        normalise=False, batch_size=5,
    )  # fmt: skip
    with torch.no_grad():
        whole = torch.softmax(network(torch.from_numpy(volume)[None, None]), dim=1)[0].numpy()
    np.testing.assert_allclose(scores, whole, atol=1e-5)
    np.testing.assert_array_equal(labels, whole.argmax(axis=0))


def test_deepfinder_patches_agree_with_whole_volume_inference_away_from_patch_borders():
    # The network sees ~30 voxels around each voxel, more than a patch margin, so
    # patches and the whole volume differ slightly; most voxels keep their class.
    torch.manual_seed(1)
    network = DeepFinder(3, (4, 4, 4))
    volume = np.random.default_rng(1).normal(size=(16, 40, 40)).astype(np.float32)
    labels = segment(volume, network, patch_size=24, margin=6, device="cpu", normalise=False)
    with torch.no_grad():
        whole = network(torch.from_numpy(volume)[None, None])[0].argmax(0).numpy()
    assert np.mean(labels == whole) > 0.9


def _balls(shape, rows):
    """Label volume and particle table of balls (class label, z, y, x, radius)."""
    labels = sphere_labels(
        shape,
        np.array([r[1:4] for r in rows], dtype=float),
        np.array([r[0] for r in rows]),
        np.array([r[4] for r in rows], dtype=float),
    )
    return labels


def test_clustering_finds_the_centres_of_well_separated_balls():
    rows = [(1, 6, 8, 8, 3), (1, 6, 30, 10, 3), (2, 12, 10, 30, 4.5), (2, 5, 28, 28, 4.5)]
    labels = _balls((18, 40, 40), rows)
    found = cluster(labels, ["small", "large"], bandwidth={"small": 3.0, "large": 4.5})
    assert len(found) == 4
    assert list(found["class_name"][:2]) == ["large", "large"]  # largest clusters first
    got = found[["z", "y", "x"]].to_numpy()
    for label, z, y, x, _ in rows:
        distance = np.linalg.norm(got - [z, y, x], axis=1)
        assert distance.min() < 1e-6
        assert found["class_name"][int(distance.argmin())] == ["small", "large"][label - 1]


def test_cluster_size_threshold_joint_mode_and_suppression():
    rows = [(1, 8, 8, 8, 4), (2, 8, 8, 25, 1)]  # a big ball and a 7-voxel speck
    labels = _balls((16, 16, 34), rows)
    assert len(cluster(labels, ["a", "b"], min_cluster_size={"a": 1, "b": 8})) == 1
    # Joint mode: a ball whose voxels are mixed keeps its majority class.
    mixed = _balls((16, 16, 16), [(1, 8, 8, 8, 4)])
    mixed[8, 8, 4:8] = 2
    found = cluster(mixed, ["a", "b"], bandwidth=4.0, mode="joint")
    assert list(found["class_name"]) == ["a"]
    # Per class, the 4 'b' voxels form their own cluster, which suppression removes
    # because its centre lies within the larger 'a' cluster's bandwidth.
    assert len(cluster(mixed, ["a", "b"], bandwidth=4.0, mode="per_class", suppress=False)) == 2
    found = cluster(mixed, ["a", "b"], bandwidth=4.0, mode="per_class")
    assert list(found["class_name"]) == ["a"]


def test_predict_recovers_sphere_centres_from_a_label_map():
    # A stand-in network whose logits are a known label map: predict must return the
    # ball centres, converted to the truth frame.
    rows = [(1, 8, 8, 8, 3), (2, 20, 20, 24, 4)]
    labels = torch.from_numpy(_balls((32, 32, 32), rows).astype(np.int64))

    class Oracle(torch.nn.Module):
        def forward(self, x):
            return 10.0 * torch.nn.functional.one_hot(labels, 3).movedim(-1, 0)[None].float()

    model = TrainedModel(Oracle(), ["a", "b"], {"a": 3.0, "b": 4.0}, patch_size=32)
    frame = Frame(scale=(0.5, 0.5, 0.5), offset=(0.0, 0.0, 0.0))
    found = predict(np.zeros((32, 32, 32)), model, frame=frame, patch_size=32, device="cpu")
    np.testing.assert_allclose(found[["z", "y", "x"]].to_numpy(), [[40, 40, 48], [16, 16, 16]])
    assert list(found["class_name"]) == ["b", "a"]


def test_specks_are_dropped_and_a_flooded_class_is_skipped_with_a_warning():
    labels = _balls((16, 16, 30), [(1, 8, 8, 8, 3)])
    labels[8, 8, 13] = labels[2, 12, 25] = 1  # isolated voxels, one near the ball
    found = cluster(labels, ["a"], bandwidth=3.0, min_cluster_size=2)
    assert len(found) == 1 and found["cluster_size"][0] == (labels == 1).sum() - 2
    flooded = np.ones((8, 8, 8), dtype=np.uint8)
    with pytest.warns(RuntimeWarning, match="not a particle segmentation"):
        assert len(cluster(flooded, ["a"], bandwidth=3.0)) == 0


def test_segmentation_batches_follow_free_gpu_memory(monkeypatch):
    from faket.evaluation.inference import segment_batch_size

    free = {"bytes": 8 * 1024**3}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 80 << 30))
    cuda = torch.device("cuda")
    per_patch = 4 * 256 * 64**3  # bytes of one 64-voxel patch's activations
    # Half of the free memory is the budget: 4 GiB / 256 MiB = 16 patches.
    assert segment_batch_size(64, 1000, cuda) == 16
    free["bytes"] = 12 * 1024**3
    assert segment_batch_size(64, 1000, cuda) == 24  # 6 GiB / 256 MiB
    free["bytes"] = 80 * 1024**3
    # 160 patches would fit, but no tensor may exceed 2**31 elements: 31 patches of 64^3.
    assert segment_batch_size(64, 1000, cuda) == 31
    assert segment_batch_size(64, 20, cuda) == 20  # never more than there are patches
    free["bytes"] = per_patch  # nearly full: one patch at a time, never zero
    assert segment_batch_size(64, 1000, cuda) == 1
    # On the CPU a fixed budget (512 MiB) or the caller's.
    assert segment_batch_size(64, 1000, torch.device("cpu")) == 2
    assert segment_batch_size(64, 1000, torch.device("cpu"), budget_bytes=10 * per_patch) == 10
