"""SmoothGrad (Smilkov et al., 2017): average any attribution over noisy copies of the input.

The noise is Gaussian with std = `sigma` × (max − min) of each input, as in the paper.
The wrapped method sees `n` noisy copies, `batch_size` inputs' worth at a time. Token ids
cannot take noise: for them the noise is added to the output of the embedding layer that
reads them (std from each input's embeddings), the same noise in every pass of a copy.

Example:
    >>> import torch
    >>> from deepscope.analysis.attribution.saliency import Saliency
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    >>> r = smooth(Saliency(net), n=4).attribute(torch.rand(2, 3, 2, 2), target=0)
    >>> r.method, r.attributions.shape
    ('smooth_saliency', torch.Size([2, 3, 2, 2]))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from deepscope.analysis.attribution.base import Attribution, Target, resolve_target
from deepscope.analysis.attribution.layer_search import embedding_layer, is_token_ids
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.capture.hooks import HookSet, _replace_first, first_tensor, forward_from_layer


class SmoothGrad(Attribution):
    """Mean of `method`'s attributions over `n` noisy copies of each input."""

    def __init__(
        self,
        method: Attribution,
        n: int = 25,
        sigma: float = 0.15,
        batch_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(method.model)
        if n < 1:
            raise ValueError("n must be at least 1")
        self.method = method
        self.n = n
        self.sigma = sigma
        self.batch_size = batch_size
        self.seed = seed
        self.name = f"smooth_{method.name}"

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        x = inputs.detach()
        batch = x.shape[0]
        if target is None:
            with torch.no_grad():
                target = resolve_target(self.method.forward(x), target)
        if is_token_ids(x):
            return self._attribute_tokens(x, target)
        flat = x.reshape(batch, -1).float()
        spread = (flat.max(1).values - flat.min(1).values).reshape(-1, *([1] * (x.ndim - 1)))
        std = self.sigma * spread
        generator = self._generator(x.device)
        copies_per_pass = max(1, (self.batch_size or batch * self.n) // batch)
        total: torch.Tensor | None = None
        first: AttributionResult | None = None
        done = 0
        while done < self.n:
            k = min(copies_per_pass, self.n - done)
            noise = torch.randn((k, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
            noisy = (x[None] + noise * std[None]).flatten(0, 1)
            part = self.method.attribute(noisy, _tile(target, k))
            summed = part.attributions.reshape(k, batch, *part.attributions.shape[1:]).sum(0)
            total = summed if total is None else total + summed
            first = first or part
            done += k
        return self._mean(total, first, x)

    def _generator(self, device: torch.device) -> torch.Generator:
        generator = torch.Generator(device=device)
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
        generator.manual_seed(seed)
        return generator

    def _attribute_tokens(self, ids: torch.Tensor, target: Target) -> AttributionResult:
        batch = ids.shape[0]
        layer, _ = embedding_layer(self.model, ids)
        with torch.no_grad():
            _, embedded = forward_from_layer(self.model, layer, ids, track=False)
        flat = embedded.reshape(batch, -1).float()
        spread = flat.max(1).values - flat.min(1).values
        std = (self.sigma * spread).reshape(-1, *([1] * (embedded.ndim - 1)))
        generator = self._generator(ids.device)
        copies_per_pass = max(1, (self.batch_size or batch * self.n) // batch)
        total: torch.Tensor | None = None
        first: AttributionResult | None = None
        done = 0
        while done < self.n:
            k = min(copies_per_pass, self.n - done)
            shape = (k, *embedded.shape)
            noise = (torch.randn(shape, generator=generator, device=ids.device) * std[None]).to(
                embedded.dtype
            )
            noise = noise.flatten(0, 1)
            tiled = ids.repeat(k, *([1] * (ids.ndim - 1)))
            with HookSet() as hooks:
                hooks.forward(layer, _add_noise(noise))
                part = self.method.attribute(tiled, _tile(target, k))
            summed = part.attributions.reshape(k, batch, *part.attributions.shape[1:]).sum(0)
            total = summed if total is None else total + summed
            first = first or part
            done += k
        return self._mean(total, first, ids)

    def _mean(
        self, total: torch.Tensor | None, first: AttributionResult | None, x: torch.Tensor
    ) -> AttributionResult:
        assert total is not None and first is not None
        return AttributionResult(
            attributions=total / self.n,
            method=self.name,
            target=first.target[: x.shape[0]] if isinstance(first.target, list) else first.target,
            layer=first.layer,
            inputs=x,
            meta={**first.meta, "n": self.n, "sigma": self.sigma},
        )


def _add_noise(noise: torch.Tensor) -> Callable[[nn.Module, tuple[Any, ...], Any], Any]:
    """A forward hook adding `noise` to a layer's output; a pass over r rows (r a multiple of
    the copies, as integrated gradients tiles them, or fewer, as layer searches) takes row
    i's noise from copy i mod n."""

    def hook(_m: nn.Module, _i: tuple[Any, ...], out: Any) -> Any:
        value = first_tensor(out)
        index = torch.arange(value.shape[0], device=value.device) % noise.shape[0]
        return _replace_first(out, value + noise[index].to(value.device))

    return hook


def _tile(target: Target, k: int) -> Target:
    if callable(target) and not isinstance(target, torch.Tensor):
        return target
    if isinstance(target, int):
        return target
    return torch.as_tensor(target).reshape(-1).repeat(k)


def smooth(
    method: Attribution,
    n: int = 25,
    sigma: float = 0.15,
    batch_size: int | None = None,
    seed: int | None = None,
) -> SmoothGrad:
    """SmoothGrad around any attribution method; see `SmoothGrad`."""
    return SmoothGrad(method, n=n, sigma=sigma, batch_size=batch_size, seed=seed)
