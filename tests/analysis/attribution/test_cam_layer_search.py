"""The automatic CAM layer: never a layer whose grid gets no gradient (a ViT's final norm,
where only the CLS token reaches the head), and never an all-zero map in silence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from deepscope.analysis.attribution import AttributionWarning, attribute, find_cam_layer


class TinyViT(nn.Module):
    """Patch conv, CLS token, a pre-norm torch transformer encoder, a head on the CLS token."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, 2, 32, 0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.norm(self.encoder(tokens))[:, 0])


def test_hugging_face_vit_gets_the_last_block_input_norm(tiny_vit: nn.Module) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert find_cam_layer(tiny_vit, x) == "vit.layers.1.layernorm_before"
    varied = torch.zeros(2, dtype=torch.bool)
    for target in range(3):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            result = attribute(tiny_vit, x, target, method="grad_cam")
        assert result.layer == "vit.layers.1.layernorm_before"
        assert result.layer_map is not None and result.layer_map.shape == (2, 4, 4)
        grid = result.layer_map.flatten(1)
        varied |= (grid.amax(1) > 0) & (grid.std(1) > 0)
        # an untrained head may argue against a class everywhere (ReLU → 0), never "no gradient"
        assert all("no gradient" not in str(w.message) for w in seen)
    assert bool(varied.all()), "each input needs a non-zero map that varies over the patch grid"


def test_torch_transformer_encoder_gets_its_last_norm1() -> None:
    torch.manual_seed(0)
    model = TinyViT().eval()
    assert find_cam_layer(model, torch.rand(1, 3, 16, 16)) == "encoder.layers.1.norm1"


def test_a_layer_without_gradient_on_its_grid_warns_with_the_layer_to_pass(
    tiny_vit: nn.Module,
) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with pytest.warns(AttributionWarning, match="layer='vit.layers.1.layernorm_before'") as seen:
        result = attribute(tiny_vit, x, 0, method="grad_cam", layer="vit.layernorm")
    assert "no gradient" in str(seen[0].message)
    assert float(result.attributions.abs().max()) == 0.0
    assert "vit.layers.1.layernorm_before" in result.meta["warning"]


class DeadBranch(nn.Module):
    """An auxiliary conv runs last but does not reach the output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.aux = nn.Conv2d(8, 4, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(x))
        self.aux(features)  # e.g. a hook-fed probe head; its output is discarded
        return self.fc(features.mean(dim=(2, 3)))


def test_a_layer_that_does_not_reach_the_output_is_skipped() -> None:
    torch.manual_seed(0)
    model = DeadBranch().eval()
    x = torch.rand(2, 3, 8, 8)
    assert find_cam_layer(model, x) == "conv"
    result = attribute(model, x, 1, method="layer_cam")
    assert result.layer == "conv" and np.isfinite(result.raw).all()


def test_an_all_negative_map_warns_too() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 1, 1)
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(16, 2)).eval()
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        model[2].weight.fill_(-1.0)  # every position argues against both classes
    with pytest.warns(AttributionWarning, match="≤ 0 everywhere"):
        result = attribute(model, torch.rand(1, 1, 4, 4) + 0.1, 0, method="grad_cam", layer="0")
    assert float(result.attributions.max()) == 0.0
