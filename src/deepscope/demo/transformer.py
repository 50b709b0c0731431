"""The demo's tiny transformer: it learns to reverse a sequence of 8 letters in a few
seconds on a CPU, so its attention has a known right answer: output position i must read
input position n-1-i (the anti-diagonal).

One pre-norm encoder layer (d = 32, 2 heads) computes attention with
``F.scaled_dot_product_attention``, so `deepscope.attention` recomputes its weights on the
SDPA path. Training is deterministic for a seed.

Example:
    >>> import deepscope
    >>> from deepscope.demo.transformer import train_transformer, best_head
    >>> model, tokens, names = train_transformer()          # doctest: +SKIP
    >>> att = deepscope.attention(model, tokens, tokens=names)         # doctest: +SKIP
    >>> best_head(att)                        # (layer, head, accuracy)  # doctest: +SKIP
    ('blocks.0.attn', 0, 1.0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepscope.analysis.attention.result import Attention

LETTERS = "abcdefghijklmnop"


class SelfAttention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = (
            u.view(n, t, self.heads, d // self.heads).transpose(1, 2)
            for u in self.qkv(x).chunk(3, dim=-1)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))  # type: ignore[no-any-return]


class Block(nn.Module):
    """Pre-norm attention and MLP with residual connections."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = SelfAttention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))  # type: ignore[no-any-return]


class TinyTransformer(nn.Module):
    """Token and learned position embeddings, `layers` blocks, a linear read-out per position:
    (batch, length) ids → (batch, length, vocab) logits."""

    def __init__(
        self, vocab: int = 10, length: int = 8, d: int = 32, heads: int = 2, layers: int = 1
    ) -> None:
        super().__init__()
        self.length = length
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(length, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[-1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x))  # type: ignore[no-any-return]


def known_pattern(length: int = 8) -> torch.Tensor:
    """The right attention for reversing: a (length, length) 0/1 matrix with query i → key
    length-1-i."""
    pattern = torch.zeros(length, length)
    pattern[torch.arange(length), torch.arange(length - 1, -1, -1)] = 1.0
    return pattern


def pattern_accuracy(weights: torch.Tensor, pattern: torch.Tensor) -> float:
    """Share of query rows whose largest attention weight falls on the pattern's key."""
    return float((weights.argmax(-1) == pattern.argmax(-1)).float().mean())


def best_head(result: Attention, length: int | None = None) -> tuple[str, int, float]:
    """(layer, head, accuracy) of the head whose argmax best matches `known_pattern`."""
    best = ("", -1, -1.0)
    for layer in result.layers:
        w = result[layer]
        pattern = known_pattern(length or w.shape[-1])
        for i, h in enumerate(result.heads[layer]):
            acc = pattern_accuracy(w[i], pattern)
            if acc > best[2]:
                best = (layer, h, acc)
    return best


def _adam_step(
    params: list[nn.Parameter],
    grads: tuple[torch.Tensor, ...],
    moments: list[tuple[torch.Tensor, torch.Tensor]],
    lr: float,
    step: int,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """Adam, written out: ``torch.optim`` imports torch._dynamo on first use (~10 s)."""
    b1, b2 = betas
    with torch.no_grad():
        for p, g, (m, v) in zip(params, grads, moments, strict=True):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / (1 - b2**step)).sqrt_().add_(eps)
            p.addcdiv_(m, denom, value=-lr / (1 - b1**step))


def train_transformer(
    steps: int = 150,
    seed: int = 0,
    *,
    length: int = 8,
    vocab: int = 10,
    batch: int = 64,
    lr: float = 3e-3,
) -> tuple[TinyTransformer, torch.Tensor, list[str]]:
    """Train `TinyTransformer` to reverse random sequences of `length` tokens out of
    `vocab` letters for `steps` Adam steps on one thread (the default 150 take about 3 s
    on a loaded CPU; 60 already reverse every test sequence). Returns the model in eval mode, one held-out example (1, length) of ids, and its
    tokens as letters (label the attention with them)."""
    if length < 2 or not 1 < vocab <= len(LETTERS):
        raise ValueError(f"length must be > 1 and vocab at most {len(LETTERS)}")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyTransformer(vocab=vocab, length=length)
    params = list(model.parameters())
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small: threads only add overhead (10x, loaded)
    try:
        for step in range(1, steps + 1):
            x = torch.randint(0, vocab, (batch, length), generator=gen)
            loss = F.cross_entropy(model(x).reshape(-1, vocab), x.flip(-1).reshape(-1))
            grads = torch.autograd.grad(loss, params)
            _adam_step(params, grads, moments, lr, step)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    example = torch.randperm(vocab, generator=gen)[:length]
    if length > vocab:
        example = torch.randint(0, vocab, (length,), generator=gen)
    return model, example[None], [LETTERS[i] for i in example.tolist()]
