"""Rollout against a hand computation, and the heatmap picture of a layer/head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepscope.analysis.attention import Attention, rollout
from deepscope.errors import DeepscopeError

# two layers, two heads, three tokens; rows sum to 1
L0 = torch.tensor(
    [
        [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]],
        [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
    ]
)
L1 = torch.tensor(
    [
        [[0.6, 0.4, 0.0], [0.0, 1.0, 0.0], [0.1, 0.1, 0.8]],
        [[0.2, 0.8, 0.0], [0.5, 0.5, 0.0], [0.3, 0.3, 0.4]],
    ]
)


def _result() -> Attention:
    return Attention({"l0": L0, "l1": L1}, {"l0": [0, 1], "l1": [0, 1]}, ["a", "b", "c"], range(3))


def test_rollout_equals_hand_computation_two_layers() -> None:
    # mean of heads + I, rows renormalised, written out by hand:
    # l0: mean = [[1,0,0],[.75,.25,0],[.1,.15,.75]] → (+I)/2
    a0 = np.array([[1.0, 0, 0], [0.375, 0.625, 0], [0.05, 0.075, 0.875]])
    # l1: mean = [[.4,.6,0],[.25,.75,0],[.2,.2,.6]] → (+I)/2
    a1 = np.array([[0.7, 0.3, 0], [0.125, 0.875, 0], [0.1, 0.1, 0.8]])
    hand = a1 @ a0
    r = _result().rollout()
    np.testing.assert_allclose(r.numpy(), hand, atol=1e-12)
    np.testing.assert_allclose(r.sum(-1).numpy(), 1.0, atol=1e-12)
    # order matters: the later layer multiplies from the left
    assert not np.allclose(hand, a0 @ a1)


def test_rollout_max_fusion_and_three_layers() -> None:
    l2 = torch.full((2, 3, 3), 1 / 3)
    got = rollout([L0, L1, l2], head_fusion="max")
    mats = []
    for w in (L0, L1, l2):
        m = w.double().amax(0) + torch.eye(3, dtype=torch.float64)
        mats.append(m / m.sum(-1, keepdim=True))
    torch.testing.assert_close(got, mats[2] @ mats[1] @ mats[0])
    with pytest.raises(DeepscopeError, match="head_fusion"):
        rollout([L0], head_fusion="median")
    with pytest.raises(DeepscopeError, match="square"):
        rollout([L0[:, :2]])


def test_picture_of_a_head_and_of_fused_heads(tmp_path: Path) -> None:
    res = _result()
    pic = res.picture("l1", head=0)
    np.testing.assert_array_equal(pic.values, L1[0].numpy())
    assert pic.layer == "l1" and pic.index == 0
    x0, y0, x1, y1 = pic.boxes[0]
    img = res.image("l1", 0)
    cw, ch = (x1 - x0) // 3, (y1 - y0) // 3
    # the 1.0 cell (row 1, key 1) is the top of the colormap, the 0.0 cell the bottom
    top = img[y0 + ch + ch // 2, x0 + cw + cw // 2]
    low = img[y0 + ch + ch // 2, x0 + 2 * cw + cw // 2]
    assert tuple(top) != tuple(low) and int(top.sum()) > int(low.sum())
    fused = res.picture(0)
    np.testing.assert_allclose(fused.values, L0.mean(0).numpy(), atol=1e-7)
    out = res.save(tmp_path / "a.png", "l0", 1)
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > 3 * 8
    with pytest.raises(DeepscopeError, match="not captured"):
        Attention({"l0": L0[:1]}, {"l0": [1]}, ["a", "b", "c"], range(3)).head("l0", 0)
