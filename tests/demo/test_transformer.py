"""The demo's tiny transformer learns to reverse a sequence in a few seconds, and
`deepscope.attention` (SDPA path) finds a head whose argmax reads input n-1-i at output i."""

from __future__ import annotations

import torch

import deepscope
from deepscope.demo.transformer import (
    best_head,
    known_pattern,
    pattern_accuracy,
    train_transformer,
)


def test_known_pattern_is_the_anti_diagonal() -> None:
    p = known_pattern(4)
    assert p.tolist() == [[0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
    assert pattern_accuracy(torch.eye(4), p) == 0.0
    assert pattern_accuracy(p.flip(0) * 0.2 + p, p) == 1.0


def test_trained_head_attends_to_the_mirrored_position() -> None:
    model, example, letters = train_transformer(steps=100, seed=0)
    assert example.shape == (1, 8) and len(letters) == 8 and not model.training
    att = deepscope.attention(model, example, tokens=letters)
    assert att.meta["path"] == "sdpa" and att.layers == ["blocks.0.attn"]
    assert att.tokens == letters
    layer, head, acc = best_head(att)
    assert acc >= 0.9, (layer, head, acc)
    # the same head on 16 held-out sequences, and the model really reverses them
    gen = torch.Generator().manual_seed(123)
    held_out = torch.randint(0, 10, (16, 8), generator=gen)
    with torch.no_grad():
        assert (model(held_out).argmax(-1) == held_out.flip(-1)).float().mean() >= 0.95
    accs = [
        pattern_accuracy(
            deepscope.attention(model, held_out, item=i).head(layer, head), known_pattern()
        )
        for i in range(16)
    ]
    assert sum(accs) / len(accs) >= 0.9


def test_untrained_model_does_not_show_the_pattern() -> None:
    model, example, letters = train_transformer(steps=0, seed=0)
    _, _, acc = best_head(deepscope.attention(model, example, tokens=letters))
    assert acc < 0.9
