"""Activation grids and heatmaps: the pixels are the colormap's, small maps are drawn big."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepscope.analysis.activations import activations
from deepscope.render.colormap import lut
from deepscope.render.grid import render_grid, render_heatmap


def _tile(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return pixels[y0:y1, x0:x1]


def test_constant_maps_are_drawn_in_the_colormaps_colours() -> None:
    maps = np.stack([np.zeros((8, 8)), np.ones((8, 8)), np.full((8, 8), 0.5)])
    for cmap in ("viridis", "inferno"):
        g = render_grid(maps, cmap=cmap)
        table = lut(cmap)
        for i, expected in enumerate((table[0], table[255], table[128])):
            tile = _tile(g.pixels, g.boxes[i])
            assert (tile == expected).all(), (cmap, i)


def test_an_8x8_map_is_drawn_at_least_64_px_with_crisp_pixels() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((4, 8, 8))
    g = render_grid(maps)
    for box in g.boxes:
        assert box[2] - box[0] >= 64 and box[3] - box[1] >= 64
    tile = _tile(g.pixels, g.boxes[1])
    f = tile.shape[0] // 8
    blocks = tile.reshape(8, f, 8, f, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # each source pixel is one flat square
    expected = lut("viridis")[np.rint((maps[1] - maps.min()) / np.ptp(maps) * 255).astype(int)]
    assert (blocks[:, 0, :, 0] == expected).all()


def test_per_channel_scale_stretches_each_tile() -> None:
    maps = np.stack([np.linspace(0, 1, 16).reshape(4, 4), np.linspace(0, 100, 16).reshape(4, 4)])
    shared = render_grid(maps, scale="shared")
    own = render_grid(maps, scale="channel")
    table = lut("viridis")
    # shared: the first tile is nearly flat at the low end; per channel: it spans the map
    assert (_tile(shared.pixels, shared.boxes[0])[-1, -1] == table[3]).all()
    assert (_tile(own.pixels, own.boxes[0])[-1, -1] == table[255]).all()
    assert own.ranges == [(0.0, 1.0), (0.0, 100.0)]
    with pytest.raises(ValueError, match="scale"):
        render_grid(maps, scale="global")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        render_grid(np.zeros((4, 4)))


def test_grid_has_a_colorbar_and_distinct_tiles() -> None:
    maps = np.stack([np.eye(6), np.eye(6)[::-1], np.zeros((6, 6))])
    g = render_grid(maps)
    right = max(b[2] for b in g.boxes)
    bar = g.pixels[g.boxes[0][1] : g.boxes[0][1] + 32, right + 8 :]
    table = lut("viridis")
    assert (bar == table[255]).all(axis=-1).any() and (bar == table[252]).all(axis=-1).any()
    tiles = [_tile(g.pixels, b) for b in g.boxes]
    assert not np.array_equal(tiles[0], tiles[1]) and not np.array_equal(tiles[1], tiles[2])


def test_heatmap_cells_are_large_and_labelled_space_is_reserved() -> None:
    g = render_heatmap(
        np.arange(12.0).reshape(3, 4), row_labels=["a", "b", "c"], col_labels=["w", "x", "y", "z"]
    )
    x0, y0, x1, y1 = g.boxes[0]
    assert x1 - x0 >= 64 and y1 - y0 >= 24
    assert (g.pixels[y0, x0] == lut("viridis")[0]).all()
    assert (g.pixels[y1 - 1, x1 - 1] == lut("viridis")[255]).all()


def test_feature_maps_of_a_layer_save_and_read_back(tmp_path: object) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten(), torch.nn.Linear(108, 5))
    acts = activations(net, torch.rand(2, 1, 8, 8))
    pic = acts.feature_maps("0", index=1)
    assert pic.kind == "grid" and pic.values.shape == (3, 6, 6)
    assert np.array_equal(pic.values, acts["0"][1].numpy())
    from pathlib import Path

    from PIL import Image

    path = pic.save(Path(str(tmp_path)) / "maps.png")
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), pic.image())
    strip = acts.feature_maps("2")
    assert strip.kind == "strip" and strip.values.shape == (1, 5)
    with pytest.raises(IndexError):
        acts.feature_maps("0", index=2)


def test_a_grid_saves_the_pixels_it_holds(tmp_path: Path) -> None:
    from PIL import Image

    from deepscope.render.grid import Grid

    pixels = np.zeros((3, 5, 3), dtype=np.uint8)
    pixels[1, 2] = (200, 10, 30)
    grid = Grid(pixels, [(0, 0, 5, 3)], [(0.0, 1.0)])
    out = grid.save(tmp_path / "g.png")
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), pixels)
    assert grid._repr_png_().startswith(b"\x89PNG")
