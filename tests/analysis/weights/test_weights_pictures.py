"""Heatmap pixels (centre colour at 0, sign, pooling keeps the extreme), filter grids and
spectra with the power-law alpha (issue 15)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import deepscope
from deepscope.analysis.weights.heatmap import maxabs_pool
from deepscope.analysis.weights.spectra import fit_alpha, spectrum
from deepscope.render.colormap import lut


def _cell(g, row: int, col: int, rows: int, cols: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    x0, y0, x1, y1 = g.boxes[0]
    cy = y0 + int((row + 0.5) * (y1 - y0) / rows)
    cx = x0 + int((col + 0.5) * (x1 - x0) / cols)
    return g.pixels[cy, cx].astype(int)


def test_heatmap_centre_colour_is_zero_and_signs_differ() -> None:
    m = np.array([[-2.0, 0.0, 6.0], [1.0, np.nan, -1.0]])
    g = deepscope.weights({"w": m}).heatmap("w")
    table = lut("rdbu").astype(int)
    assert g.ranges == [(-6.0, 6.0)]  # symmetric: 0 is the middle even when min != -max
    zero, neg, pos = _cell(g, 0, 1, 2, 3), _cell(g, 0, 0, 2, 3), _cell(g, 0, 2, 2, 3)
    assert np.abs(zero - table[128]).max() <= 1 and min(zero) > 230  # near-white at 0
    assert np.array_equal(pos, table[255])
    assert np.array_equal(_cell(g, 1, 2, 2, 3), table[round(255 * (0.5 - 1 / 12))])
    assert np.array_equal(neg, table[round(255 * (0.5 - 2 / 12))])
    assert neg[2] > neg[0] and pos[0] > pos[2]  # negative blue, positive red
    small_pos = _cell(g, 1, 0, 2, 3)
    assert small_pos[0] > small_pos[2]
    assert np.array_equal(_cell(g, 1, 1, 2, 3), zero)  # NaN draws as the centre


def test_pooling_keeps_the_extreme_with_its_sign() -> None:
    m = np.full((3000, 40), 0.01)
    m[1234, 7] = -9.0  # one extreme in a sea of small values
    m[10, 30] = 5.0
    pooled = maxabs_pool(m, 10, 4)
    assert pooled.shape == (300, 10)
    assert pooled[123, 1] == -9.0 and pooled[1, 7] == 5.0
    assert np.count_nonzero(pooled != 0.01) == 2
    g = deepscope.weights({"emb": m}).heatmap("emb", max_size=300)
    assert g.ranges == [(-9.0, 9.0)]
    table = lut("rdbu").astype(int)
    x0, y0, x1, y1 = g.boxes[0]
    assert (y1 - y0, x1 - x0) == (300, 80)  # 3000 rows pooled by 10; 40 columns upscaled 2x
    blue = np.all(g.pixels[y0:y1, x0:x1] == table[0], axis=2)
    assert blue.any() and blue.sum() < 40  # exactly the one block, nothing else saturated


def test_filter_grid_draws_rgb_filters_normalised_each() -> None:
    conv = torch.nn.Conv2d(3, 4, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0  # filter 0: pure red
        conv.weight[1, 2] = -3.0  # filter 1: everything but blue
    g = deepscope.weights(conv).filters()
    assert len(g.boxes) == 4
    x0, y0, _, _ = g.boxes[0]
    assert g.pixels[y0 + 1, x0 + 1].tolist() == [255, 0, 0]
    x0, y0, _, _ = g.boxes[1]
    assert g.pixels[y0 + 1, x0 + 1].tolist() == [255, 255, 0]
    deep = deepscope.weights(torch.nn.Conv2d(5, 2, 3)).filters()
    assert len(deep.boxes) == 10  # one tile per (filter, input channel)


def test_alpha_of_a_pareto_sample_is_its_exponent() -> None:
    rng = np.random.default_rng(3)
    x = rng.pareto(1.5, 4000) + 1.0  # density ∝ x^-2.5 for x ≥ 1
    fit = fit_alpha(x)
    assert fit.alpha == pytest.approx(2.5, abs=0.1)
    assert fit.xmin < 2.0 and fit.n_tail > 1000


def test_spectrum_figures() -> None:
    w = np.diag([3.0, 2.0, 1.0, 1.0])
    s = spectrum(w)
    assert s.singular_values.tolist() == [3.0, 2.0, 1.0, 1.0]
    assert s.spectral_norm == 3.0 and s.stable_rank == pytest.approx(15 / 9)
    conv = np.random.default_rng(0).standard_normal((6, 4, 3, 3))
    sc = spectrum(conv)  # WeightWatcher: one (out, in) matrix per kernel position
    assert sc.singular_values.size == 9 * 4
    assert sc.spectral_norm == pytest.approx(
        max(np.linalg.norm(conv[:, :, i, j], 2) for i in range(3) for j in range(3))
    )


def test_alpha_agrees_with_the_powerlaw_package() -> None:
    powerlaw = pytest.importorskip("powerlaw")  # test-only oracle (dev extra)
    rng = np.random.default_rng(4)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(256, 64), torch.randint(0, 8, (256,))
    for _ in range(30):  # a briefly trained model
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    matrices = [rng.standard_normal((120, 80)), rng.standard_normal((60, 60)) ** 3]
    matrices += [p.detach().numpy() for n, p in model.named_parameters() if p.ndim == 2]
    for m in matrices:
        s = spectrum(m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # WeightWatcher fits without powerlaw 2.0's default alpha range (0, 3)
            ref = powerlaw.Fit(s.evals, verbose=False, parameter_ranges={"alpha": [None, None]})
        assert s.alpha == pytest.approx(ref.alpha, abs=0.05)
        assert s.fit.xmin == pytest.approx(ref.xmin)


def test_esd_picture_marks_xmin_and_save_writes_everything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(16, 30)
    )
    w = deepscope.weights(model)
    s = w.spectra()["2.weight"]
    g = w.esd("2.weight")
    x0, y0, x1, y1 = g.boxes[0]
    lo, hi = g.ranges[0]
    assert lo == pytest.approx(np.log10(s.evals.min())) and hi == pytest.approx(
        np.log10(s.evals.max())
    )
    xm = x0 + int((np.log10(s.fit.xmin) - lo) / (hi - lo) * (x1 - x0))
    assert g.pixels[y0 + 2, xm].tolist() == [200, 30, 30]  # the xmin line
    assert (g.pixels[y0:y1, x0:x1] == [70, 110, 180]).all(axis=2).any()  # bars drawn
    files = {p.name for p in w.save(tmp_path / "out")}
    assert {"stats.csv", "spectra.csv", "filters.png", "2.weight.png", "2.weight.esd.png"} <= files
    assert {"0.weight.png", "0.bias.png"} <= files and "0.weight.esd.png" not in files  # in=1
    spectra_csv = (tmp_path / "out" / "spectra.csv").read_text().splitlines()
    assert spectra_csv[0] == "name,spectral_norm,stable_rank,alpha,xmin,D" and len(spectra_csv) == 2
