"""The demo's neuron atlas: the digits CNN's last conv layer (`features.5`, 32 channels),
each channel's optimised 8x8 image beside the four test digits that excite it most."""

from __future__ import annotations

import torch
from torch import nn

from deepscope.tracking.run import Run

LAYER = "features.5"
# 48 Adam steps at lr 0.1 beat every test digit on all 32 channels (32 steps: 31 of 32);
# the atlas costs the demo ~0.6 s of CPU (tests/analysis/featureviz/test_atlas.py)
STEPS, LR, TOP_K = 48, 0.1, 4


def log_digits_atlas(run: Run, model: nn.Module, x_test: torch.Tensor, step: int) -> None:
    """Log the atlas of `model`'s last conv layer over the test digits: the Atlas tab, and
    the Atlas link on that layer's node in the Graph tab."""
    import deepscope

    # a hook-free copy: `run.watch`'s hooks on `model` would count the optimisation's
    # forward and backward passes as training iterations
    clone = type(model)()
    clone.load_state_dict(model.state_dict())
    batches = [x_test[i : i + 128] for i in range(0, len(x_test), 128)]
    # 32 images of 8x8 are too small to share between threads: on the busy 2-core machine
    # two threads spent ~9 s of CPU (~60 s wall) waiting on each other, one thread ~0.6 s
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = deepscope.atlas(
            clone, LAYER, batches, top_k=TOP_K, steps=STEPS, lr=LR, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    result.log(run, "atlas", step=step)
