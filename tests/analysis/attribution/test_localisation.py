"""On images whose class is decided by one stripe patch, attributions point at the patch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import PATCH, PatchData, Trained
from deepscope.analysis.attribution import GradCAM, Saliency, attribute, smooth
from deepscope.analysis.attribution.metrics import (
    deletion_auc,
    insertion_auc,
    randomization_check,
)


def _in_patch(rows: np.ndarray, cols: np.ndarray, corner: torch.Tensor, margin: int) -> np.ndarray:
    r, c = corner.tolist()
    return (
        (rows >= r - margin)
        & (rows < r + PATCH + margin)
        & (cols >= c - margin)
        & (cols < c + PATCH + margin)
    )


def test_model_learned_the_task(patch_model: Trained) -> None:
    assert patch_model.accuracy >= 0.95


def _with_patch(trained: Trained) -> PatchData:
    t = trained.test
    keep = t.labels < 2
    return PatchData(t.images[keep], t.labels[keep], t.corners[keep])


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_plus_plus", "layer_cam", "hires_cam"])
def test_cam_peak_falls_in_the_patch(patch_model: Trained, method: str) -> None:
    test = _with_patch(patch_model)
    result = attribute(patch_model.model, test.images, test.labels, method=method)
    assert result.layer == "features"  # found automatically: last spatial output
    heat = result.normalized
    peaks = heat.reshape(len(heat), -1).argmax(1)
    rows, cols = np.unravel_index(peaks, heat.shape[1:])
    hits = [_in_patch(rows[i], cols[i], test.corners[i], margin=3) for i in range(len(heat))]
    assert np.mean(hits) >= 0.9


def test_saliency_top_pixels_are_in_the_patch(patch_model: Trained) -> None:
    test = _with_patch(patch_model)
    heat = Saliency(patch_model.model).attribute(test.images, test.labels).normalized
    k = heat.shape[1] * heat.shape[2] // 100  # top 1 %
    shares = []
    for i in range(len(heat)):
        top = np.argsort(heat[i].ravel())[::-1][:k]
        rows, cols = np.unravel_index(top, heat.shape[1:])
        shares.append(_in_patch(rows, cols, test.corners[i], margin=1).mean())
    assert np.mean(shares) > 0.5


def test_smoothgrad_still_points_at_the_patch(patch_model: Trained) -> None:
    test = _with_patch(patch_model)
    x, y = test.images[:40], test.labels[:40]
    heat = smooth(Saliency(patch_model.model), n=16, sigma=0.1, seed=0).attribute(x, y).normalized
    rows, cols = np.indices(heat.shape[1:])
    mass = [
        (heat[i] * _in_patch(rows, cols, test.corners[i], 1)).sum() / heat[i].sum()
        for i in range(len(heat))
    ]
    area = (PATCH + 2) ** 2 / heat[0].size
    assert np.mean(mass) > 4 * area


def test_deletion_and_insertion_rank_grad_cam_above_a_random_map(patch_model: Trained) -> None:
    test = _with_patch(patch_model)
    x, y = test.images[:60], test.labels[:60]
    model = patch_model.model
    cam = GradCAM(model).attribute(x, y)
    random_map = torch.rand(len(x), 32, 32, generator=torch.Generator().manual_seed(0))
    gray = {"baseline": 0.5, "steps": 32}  # the background's mean: a "no patch" image
    deleted = deletion_auc(model, x, cam, y, **gray).mean()
    assert deleted < deletion_auc(model, x, random_map, y, **gray).mean() - 0.1
    inserted = insertion_auc(model, x, cam, y, **gray).mean()
    assert inserted > insertion_auc(model, x, random_map, y, **gray).mean() + 0.1


def test_randomising_the_weights_changes_grad_cam(patch_model: Trained) -> None:
    model = patch_model.model
    before = [p.clone() for p in model.parameters()]
    x, y = _with_patch(patch_model).images[:30], _with_patch(patch_model).labels[:30]
    scores = randomization_check(model, "grad_cam", x, y)
    assert list(scores) == ["fc", "features.5", "features.3", "features.0"]
    assert scores["features.0"] < 0.5  # every layer re-initialised
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    independent = randomization_check(model, "grad_cam", x, y, mode="independent")
    assert independent["fc"] < 0.8  # the head alone changes the channel weights


def test_spearman_of_identical_maps_is_one(patch_model: Trained) -> None:
    from deepscope.analysis.attribution.metrics import spearman

    a = np.random.default_rng(0).random((8, 8))
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
