"""The demo's two training runs: a healthy CNN and one whose learning rate diverges."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from deepscope.analysis.weights import weights
from deepscope.demo.atlas import log_digits_atlas
from deepscope.demo.attention import log_transformer_attention
from deepscope.demo.data import Digits
from deepscope.tracking.run import Run, init

ATTRIBUTION_METHODS = ("saliency", "integrated_gradients", "grad_cam", "grad_cam_plus_plus")


class DigitsCNN(nn.Module):
    """Three conv blocks and a two-layer classifier for 8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))
        return out


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
    model.train()
    return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def _prediction_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """16 test digits, 4 per row, upscaled 4x, framed green when right and red when wrong."""
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1)
    model.train()
    tiles = []
    for img, p, t in zip(x, pred, y, strict=True):
        big = img[0].repeat_interleave(4, 0).repeat_interleave(4, 1).numpy()
        tile = np.zeros((3, 36, 36), dtype=np.float32)
        tile[:, 2:34, 2:34] = big
        frame = (0.1, 0.8, 0.2) if int(p) == int(t) else (0.9, 0.1, 0.1)
        mask = np.ones((36, 36), dtype=bool)
        mask[2:34, 2:34] = False
        for c in range(3):
            tile[c][mask] = frame[c]
        tiles.append(tile)
    rows = [np.concatenate(tiles[i : i + 4], axis=2) for i in range(0, len(tiles), 4)]
    return np.concatenate(rows, axis=1)


def _log_attributions(
    run: Run, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int
) -> None:
    """Each method explains the predicted class of every digit in `x`; the dashboard shows a
    method x digit grid with the true and predicted classes."""
    import deepscope

    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1)
    for method in ATTRIBUTION_METHODS:
        try:
            result = deepscope.attribute(model, x, pred, method=method)
        except (ImportError, ValueError, NotImplementedError) as exc:  # a method not in this build
            run.log_text("demo/skipped", f"{method}: {exc}", step=step)
            continue
        result.log(run, f"attribution/{method}", step=step, labels=y, predictions=pred)
    model.train()


def _log_activations(
    run: Run, model: nn.Module, x: torch.Tensor, x_all: torch.Tensor, step: int
) -> None:
    """The feature maps of every conv layer for the digits in `x`, and each conv unit's
    statistics and top-6 digits over `x_all` (the test set): the Activations tab."""
    import deepscope

    model.eval()
    acts = deepscope.activations(model, x, nn.Conv2d)
    batches = [x_all[i : i + 128] for i in range(0, len(x_all), 128)]
    stats = deepscope.unit_stats(model, batches, nn.Conv2d, top_k=6, progress=False)
    model.train()
    run.log_activations("activations", acts, step=step)
    run.log_unit_stats("unit_stats", stats, step=step)


def _log_embedding(run: Run, model: DigitsCNN, x: torch.Tensor, y: torch.Tensor, step: int) -> None:
    """The penultimate layer (the 64 units after the first classifier layer's ReLU) of every
    test digit, with its class and its thumbnail: the Projector tab."""
    model.eval()
    with torch.no_grad():
        penultimate = model.classifier[:3](model.features(x))
    model.train()
    run.log_embedding("embedding/fc", penultimate, labels=y, images=x, step=step)


MODEL_FILE = "model.pt"  # the healthy run's trained state dict, in its run folder


def train_healthy(
    logdir: Path, data: Digits, *, epochs: int = 8, progress: bool = True
) -> tuple[str, float]:
    """Train `DigitsCNN` with Adam, watching it; return the run name and test accuracy."""
    torch.manual_seed(0)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    config = {"model": "DigitsCNN", "optimizer": "Adam", "lr": 2e-3, "epochs": epochs, "batch": 64}
    with init(logdir=logdir, name="digits-cnn", config=config) as run:
        run.log_graph(model, torch.zeros(1, 1, 8, 8))
        run.log_weights("weights", weights(model), step=0)  # filters, heatmaps, spectra
        run.watch(model, every=10)
        step = 0
        _log_embedding(run, model, data.x_test, data.y_test, step)  # untrained: to compare
        n = len(data.y_train)
        bar = tqdm(range(epochs), desc="digits-cnn", unit="epoch", disable=not progress)
        for epoch in bar:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
            for i in range(0, n, 64):
                idx = perm[i : i + 64]
                loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                run.log({"train/loss": loss}, step=step)
                step += 1
            acc, test_loss = _accuracy(model, data.x_test, data.y_test)
            train_acc, _ = _accuracy(model, data.x_train, data.y_train)
            run.log(
                {"test/accuracy": acc, "test/loss": test_loss, "train/accuracy": train_acc},
                step=step,
            )
            run.log_image(
                "predictions",
                _prediction_grid(model, data.x_test[:16], data.y_test[:16]),
                step=step,
            )
            bar.set_postfix(loss=f"{loss.item():.3f}", test_acc=f"{acc:.3f}")
        run.log_histogram("test/logits", model(data.x_test).detach(), step=step)
        _log_attributions(run, model, data.x_test[:8], data.y_test[:8], step)
        _log_activations(run, model, data.x_test[:4], data.x_test, step)
        log_digits_atlas(run, model, data.x_test, step)  # the Atlas tab
        _log_embedding(run, model, data.x_test, data.y_test, step)
        run.log_weights("weights", weights(model), step=step)  # the trained weights
        log_transformer_attention(run)  # the Attention tab: a tiny transformer learns to reverse
        run.log_text(
            "demo/about",
            "A CNN trained on scikit-learn's 8x8 digits by `deepscope demo`.",
            step=step,
        )
        name = run.name
    # the trained weights, for the demo's live workbench (`deepscope.commands.demo`)
    torch.save(model.state_dict(), Path(logdir) / name / MODEL_FILE)
    return name, acc


def train_diverging(logdir: Path, data: Digits, *, steps: int = 30, progress: bool = True) -> str:
    """The same CNN with plain SGD at lr=20: gradients explode from about step 3 and NaN
    appears a few steps later; return the run name."""
    torch.manual_seed(0)
    model = DigitsCNN()
    opt = torch.optim.SGD(model.parameters(), lr=20.0)
    config = {"model": "DigitsCNN", "optimizer": "SGD", "lr": 20.0, "batch": 64}
    with init(logdir=logdir, name="digits-cnn-lr20", config=config) as run:
        run.log_graph(model, torch.zeros(1, 1, 8, 8))
        run.watch(model, every=1)
        nonfinite_steps = 0
        for step in tqdm(range(steps), desc="digits-cnn-lr20", unit="step", disable=not progress):
            i = (step * 64) % (len(data.y_train) - 64)
            loss = F.cross_entropy(model(data.x_train[i : i + 64]), data.y_train[i : i + 64])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            run.log({"train/loss": loss}, step=step)
            nonfinite_steps += not math.isfinite(loss.item())
            if nonfinite_steps >= 3:
                break
        name = run.name
    return name
