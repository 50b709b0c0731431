"""SmoothGrad (Smilkov et al., 2017): average any attribution over noisy copies of the input.

The noise is Gaussian with std = `sigma` × (max − min) of each input, as in the paper.
The wrapped method sees `n` noisy copies, `batch_size` inputs' worth at a time.

Example:
    >>> import torch
    >>> from deepscope.analysis.attribution.saliency import Saliency
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    >>> r = smooth(Saliency(net), n=4).attribute(torch.rand(2, 3, 2, 2), target=0)
    >>> r.method, r.attributions.shape
    ('smooth_saliency', torch.Size([2, 3, 2, 2]))
"""

from __future__ import annotations

import torch

from deepscope.analysis.attribution.base import Attribution, Target, resolve_target
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.capture.hooks import first_tensor


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
                target = resolve_target(first_tensor(self.model(x)), target)
        flat = x.reshape(batch, -1).float()
        spread = (flat.max(1).values - flat.min(1).values).reshape(-1, *([1] * (x.ndim - 1)))
        std = self.sigma * spread
        generator = torch.Generator(device=x.device)
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
        generator.manual_seed(seed)
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
        assert total is not None and first is not None
        return AttributionResult(
            attributions=total / self.n,
            method=self.name,
            target=first.target[:batch] if isinstance(first.target, list) else first.target,
            layer=first.layer,
            inputs=x,
            meta={"n": self.n, "sigma": self.sigma},
        )


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
