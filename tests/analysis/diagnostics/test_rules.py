"""The diagnosis rules on hand-made statistics: each fires when it should and not before."""

from __future__ import annotations

import math

from deepscope.analysis.diagnostics import Diagnoser, StepStats


def test_exploding_gradients_fire_against_their_own_history() -> None:
    d = Diagnoser()
    kinds = []
    for step, scale in enumerate([1.0, 1.2, 0.9, 1.1, 40.0]):
        norms = {"a.weight": scale, "b.weight": scale / 2, "c.weight": scale}
        kinds += [(x.kind, x.step) for x in d.check(StepStats(step=step, grad_norms=norms))]
    assert kinds == [("exploding_gradients", 4)]


def test_vanishing_needs_two_logged_steps_in_a_row() -> None:
    d = Diagnoser()
    norms = {"l0.weight": 1e-7, "l1.weight": 1e-5, "l2.weight": 1e-2, "l3.weight": 1.0}
    first = d.check(StepStats(step=0, grad_norms=norms))
    second = d.check(StepStats(step=1, grad_norms=norms))
    assert first == []
    assert [(x.kind, x.layer) for x in second] == [("vanishing_gradients", "l0.weight")]
    assert "l1.weight" in second[0].message


def test_dead_units_and_saturation_report_once_per_layer() -> None:
    d = Diagnoser()
    out = []
    for step in range(4):
        out += d.check(
            StepStats(step=step, dead_frac={"relu": 1.0, "ok": 0.1}, sat_frac={"tanh": 0.95})
        )
    assert sorted((x.kind, x.layer) for x in out) == [
        ("dead_units", "relu"),
        ("saturated_units", "tanh"),
    ]


def test_update_ratio_far_from_1e_3_in_both_directions() -> None:
    d = Diagnoser()
    out = []
    for step in range(2):
        ratios = {"big.weight": 0.5, "fine.weight": 1e-3, "frozen.weight": 1e-8}
        out += d.check(StepStats(step=step, update_ratios=ratios))
    assert sorted((x.kind, x.layer, x.severity) for x in out) == [
        ("update_ratio_high", "big.weight", "warning"),
        ("update_ratio_low", "frozen.weight", "info"),
    ]


def test_loss_spike_and_divergence() -> None:
    d = Diagnoser()
    out = []
    losses = [1.0 - 0.01 * i for i in range(20)] + [9.0] + [0.8] * 5 + [4.0, 5.0, 6.0]
    for step, v in enumerate(losses):
        out += d.observe_loss("train/loss", v, step)
    assert [(x.kind, x.step) for x in out] == [
        ("loss_spike", 20),
        ("loss_spike", 26),
        ("loss_spike", 27),
        ("loss_spike", 28),
        ("divergence", 28),
    ]
    nan = d.observe_loss("val_loss", math.nan, 3)
    assert [x.kind for x in nan] == ["divergence"]


def test_noisy_but_healthy_loss_raises_nothing() -> None:
    import random

    rng = random.Random(0)
    d = Diagnoser()
    out = []
    for step in range(300):
        v = 2.3 * math.exp(-step / 60) + 0.05 + rng.uniform(0, 0.3)
        out += d.observe_loss("loss", v, step)
    assert out == []
