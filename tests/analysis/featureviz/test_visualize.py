"""Feature visualisation on a small CNN trained here on 16×16 synthetic images (oriented
bars in colours): optimised images beat the dataset, channels differ, diversity differs,
batching does not leak between channels, hooks and modes are cleaned up."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepscope.analysis.featureviz import (
    Transforms,
    channel,
    channels,
    class_logit,
    direction,
    diversity,
    layer,
    neuron,
    visualize,
)

SIZE = 16


def make_data(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k in 0..3: a bar at angle 45k° in one of 4 colours decided by the class."""
    colours = torch.tensor([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0], [1.0, 1.0, 0.2]])
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    labels = torch.randint(0, 4, (n,), generator=g)
    images = 0.3 + 0.1 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    for i in range(n):
        k = int(labels[i])
        cy, cx = torch.randint(5, SIZE - 5, (2,), generator=g).tolist()
        angle = torch.tensor(k * np.pi / 4)
        dist = ((xx - cx) * torch.sin(angle) - (yy - cy) * torch.cos(angle)).abs()
        along = ((xx - cx) * torch.cos(angle) + (yy - cy) * torch.sin(angle)).abs()
        mask = (dist < 1.2) & (along < 5)
        images[i][:, mask] = colours[k][:, None]
    return images.clamp(0, 1), labels


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv1(x)))
        h = torch.relu(self.conv2(h))
        return self.fc(h.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def trained() -> tuple[SmallCNN, torch.Tensor]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = make_data(400, g)
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(4):
        for s in range(0, 400, 32):
            loss = nn.functional.cross_entropy(model(x[s : s + 32]), y[s : s + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval().zero_grad(set_to_none=True)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.8
    return model, x


def _channel_means(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    kept: list[torch.Tensor] = []
    handle = model.conv2.register_forward_hook(lambda _m, _i, o: kept.append(o))
    with torch.no_grad():
        model(x)
    handle.remove()
    return kept[0].mean(dim=(2, 3))  # (N, C)


def _corr(images: torch.Tensor) -> float:
    flat = images.reshape(images.shape[0], -1).double().numpy()
    r = np.corrcoef(flat)
    return float(r[~np.eye(len(r), dtype=bool)].mean())


@pytest.fixture(scope="module")
def all_channels(trained: tuple[SmallCNN, torch.Tensor]) -> object:
    model, _ = trained
    return visualize(model, channels("conv2"), steps=48, size=SIZE, lr=0.1, progress=False)


def test_optimised_images_beat_every_dataset_image(
    trained: tuple[SmallCNN, torch.Tensor], all_channels: object
) -> None:
    model, x = trained
    fv = all_channels
    assert fv.images.shape == (12, 3, SIZE, SIZE) and fv.values.shape == (48, 12)
    assert fv.labels == [str(i) for i in range(12)]
    best_data = _channel_means(model, x).max(dim=0).values
    ours = _channel_means(model, fv.images).diagonal()
    assert (ours > best_data).float().mean() >= 0.9
    assert (fv.values[-1] > fv.values[0]).all()  # every image climbed
    assert (fv.pixels >= 0).all() and (fv.pixels <= 1).all()


def test_channels_give_different_images(
    trained: tuple[SmallCNN, torch.Tensor], all_channels: object
) -> None:
    images = all_channels.images
    assert _corr(images) < 0.5
    # each image is about its own channel: channel c responds to image c more than to most
    # other channels' images (related channels may share a favourite image)
    acts = _channel_means(trained[0], images)  # (images, channels)
    own = acts.diagonal()
    rank = (acts > own[None, :]).sum(dim=0)  # how many other images beat image c on channel c
    assert (rank <= 2).float().mean() >= 0.9, rank
    assert (rank == 0).float().mean() >= 0.5, rank


def test_batched_equals_one_at_a_time(trained: tuple[SmallCNN, torch.Tensor]) -> None:
    model, _ = trained
    batched = visualize(model, channels("conv2"), steps=12, size=SIZE, seed=3, progress=False)
    for k in (0, 5, 11):
        alone = visualize(model, f"conv2:{k}", steps=12, size=SIZE, seed=3 + k, progress=False)
        # batched convolutions round differently; Adam carries that a little (measured ~4e-4)
        assert (alone.images[0] - batched.images[k]).abs().max() < 2e-3
    other = visualize(model, "conv2:5", steps=12, size=SIZE, seed=3, progress=False)
    assert (other.images[0] - batched.images[5]).abs().max() > 0.05  # seeds matter


def test_deterministic_for_a_seed(trained: tuple[SmallCNN, torch.Tensor]) -> None:
    model, _ = trained
    a = visualize(model, "conv2:1", steps=6, size=SIZE, seed=7, progress=False, param="pixels")
    b = visualize(model, "conv2:1", steps=6, size=SIZE, seed=7, progress=False, param="pixels")
    assert torch.equal(a.images, b.images) and np.array_equal(a.values, b.values)


def test_diversity_gives_different_images_for_one_channel(
    trained: tuple[SmallCNN, torch.Tensor],
) -> None:
    model, _ = trained
    obj = channel("conv2", 2) + 10.0 * diversity("conv2")
    fv = visualize(model, obj, steps=32, size=SIZE, batch=4, lr=0.1, progress=False)
    same = visualize(model, "conv2:2", steps=32, size=SIZE, batch=4, lr=0.1, progress=False)
    assert fv.images.shape[0] == 4
    assert _corr(fv.images) < 0.3 and _corr(fv.images) < _corr(same.images) - 0.1
    assert (_channel_means(model, fv.images)[:, 2] > 0).all()  # still about channel 2


def test_composed_objectives_and_their_parts(trained: tuple[SmallCNN, torch.Tensor]) -> None:
    model, _ = trained
    kwargs = {"steps": 24, "size": SIZE, "lr": 0.1, "progress": False, "transforms": "none"}
    up = visualize(model, class_logit(2), **kwargs)
    down = visualize(model, -class_logit(2), **kwargs)
    with torch.no_grad():
        assert model(up.images)[0, 2] > model(down.images)[0, 2]
    v = torch.zeros(12)
    v[4] = 1.0
    via_direction = visualize(model, direction("conv2", v), **kwargs)
    via_channel = visualize(model, "conv2:4", **kwargs)
    assert torch.allclose(via_direction.images, via_channel.images, atol=1e-5)
    mixed = visualize(
        model, 0.5 * layer("conv1") + neuron("conv2", 3, x=2, y=5) - channel("conv2", 0), **kwargs
    )
    assert np.isfinite(mixed.values).all() and mixed.values[-1, 0] > mixed.values[0, 0]
    with pytest.raises(ValueError, match="12 channels"):
        visualize(model, "conv2:12", **kwargs)


class _Spare(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.unused = nn.Conv2d(3, 2, 3), nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def test_hooks_removed_and_mode_restored_after_errors(
    trained: tuple[SmallCNN, torch.Tensor],
) -> None:
    model, _ = trained
    model.train()

    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("preprocess failed")

    with pytest.raises(RuntimeError, match="preprocess failed"):
        visualize(model, "conv2:1", steps=2, size=SIZE, progress=False, preprocess=broken)
    spare = _Spare()
    with pytest.raises(ValueError, match="did not run"):
        visualize(spare, "unused:0", steps=2, size=8, progress=False)
    assert not spare.unused._forward_hooks
    with pytest.raises(ValueError, match="12 channels"):
        visualize(model, "conv2:40", steps=2, size=SIZE, progress=False)
    assert model.training
    model.eval()
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_transforms_are_sized_to_the_input() -> None:
    small, big = Transforms.standard((8, 8)), Transforms.standard((224, 224))
    assert small.pad == 1 and small.jitter == 1
    assert big.pad >= 12 and big.jitter >= 8
    x = torch.rand(3, 1, 8, 8)
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    out = small(x, gens)
    assert out.shape == x.shape and not torch.equal(out, x)
    # an identity transform (no pad, jitter, scale or rotation) is exact
    assert torch.allclose(Transforms()(x, gens), x)


def test_normalisation_and_grid_png(trained: tuple[SmallCNN, torch.Tensor], tmp_path) -> None:
    model, _ = trained
    mean, std = [0.3, 0.3, 0.3], [0.2, 0.2, 0.2]
    fv = visualize(model, "conv2:3", steps=4, size=SIZE, mean=mean, std=std, progress=False)
    assert torch.allclose(fv.images, (fv.pixels - 0.3) / 0.2, atol=1e-6)
    from PIL import Image

    path = fv.save(tmp_path / "fv.png")
    png = Image.open(path)
    assert png.size[0] >= 64 and png.mode == "RGB"


def test_atlas_sets_each_image_beside_its_top_examples(
    trained: tuple[SmallCNN, torch.Tensor], tmp_path
) -> None:
    from PIL import Image

    import deepscope

    model, x = trained
    loader = [x[s : s + 50] for s in range(0, 200, 50)]
    with deepscope.init(logdir=tmp_path) as run:
        a = deepscope.atlas(
            model, "conv2", loader, top_k=3, steps=8, measure="max", run=run, progress=False
        )
    assert a.viz.images.shape == (12, 3, SIZE, SIZE) and len(a.rows) == 12
    with torch.no_grad():
        kept: list[torch.Tensor] = []
        h = model.conv2.register_forward_hook(lambda _m, _i, o: kept.append(o))
        model(x[:200])
        h.remove()
    best = kept[0].amax(dim=(2, 3))  # (items, channels): unit_stats scores an input by its max
    for c in range(12):
        assert len(a.examples[c]) == 3
        assert a.values[c][0] == pytest.approx(float(best[:, c].max()), rel=1e-5)
        assert a.values[c] == sorted(a.values[c], reverse=True)
    assert a.rows[0].shape[1] > 4 * 64  # the image and three examples, 64-px tiles
    assert len(a.scores) == 12 and a.scores[0] > 0
    saved = Image.open(a.save(tmp_path / "atlas.png"))
    assert saved.size[1] == sum(r.shape[0] for r in a.rows)
