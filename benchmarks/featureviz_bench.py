"""Feature visualisation: all channels of a layer in one batch vs one channel at a time,
torch-lucent's status, and seconds per step of a ResNet-18-sized model.

1. The 64 channels of `layer1.1.conv2` of a ResNet-18-sized CNN (built here in plain torch,
   random weights, eval mode), 64×64 images, Fourier parameterisation, standard transforms:
   `visualize(model, channels(layer))` (one batch of 64) against `visualize(model,
   "layer:k")` for a sample of channels one at a time, interleaved for ROUNDS rounds,
   medians. The issue asks for 256 steps; both sides run STEPS (default 16) steps and the
   seconds per step are scaled to 256 steps × 64 channels (the per-step cost does not change
   with the step number; the one-at-a-time side is SAMPLE channels × 64 / SAMPLE). Both
   sides stop the forward pass after the hooked layer (the objective reads nothing later).
2. torch-lucent on the same objective: run only where it imports without torchvision;
   otherwise the reason is read from its wheel (`pip download --no-deps` into a temp dir,
   never installed): its requirements and the modules that import torchvision.
3. Seconds per optimisation step (batch 1, Fourier, standard transforms) for the
   ResNet-18-sized model at 128×128 on the CPU (and CUDA when available): a channel of
   the last conv (`layer4.1.conv2`) and a class logit (the whole network).

Threads are pinned (BENCH_THREADS, default 1): the machine this was written on has 2 cores
shared with other jobs, so ratios are the figures to read. Prints one JSON line at the end.
Run: ``.venv/bin/python benchmarks/featureviz_bench.py`` (a few minutes on 2 loaded cores).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepscope.analysis.featureviz import channels, visualize

THREADS = int(os.environ.get("BENCH_THREADS", "1"))
STEPS = int(os.environ.get("BENCH_STEPS", "16"))
SAMPLE = int(os.environ.get("BENCH_SAMPLE", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
GOAL_STEPS, CHANNELS, LAYER = 256, 64, "layer1.1.conv2"


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout (11.7 M parameters), 1000 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, cin = [64, 128, 256, 512], 64
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(Block(cin, w, stride), Block(w, w, 1)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(self.avgpool(x).flatten(1))


def per_step(model: nn.Module, objective: Any, steps: int, size: int, **kw: Any) -> float:
    start = time.perf_counter()
    visualize(model, objective, steps=steps, size=size, progress=False, **kw)
    return (time.perf_counter() - start) / steps


def batched_vs_single(model: nn.Module) -> dict[str, Any]:
    per_step(model, channels(LAYER), 1, 64)  # warm-up
    batched: list[float] = []
    single: list[float] = []
    sample = [round(i * (CHANNELS - 1) / max(SAMPLE - 1, 1)) for i in range(SAMPLE)]
    for _ in range(ROUNDS):  # interleaved: A, B, A, B, ...
        batched.append(per_step(model, channels(LAYER), STEPS, 64))
        single.append(
            statistics.median(per_step(model, f"{LAYER}:{k}", STEPS, 64, seed=k) for k in sample)
        )
    b, s = statistics.median(batched), statistics.median(single)
    batched_s, single_s = b * GOAL_STEPS, s * GOAL_STEPS * CHANNELS
    return {
        "layer": LAYER,
        "channels": CHANNELS,
        "size": 64,
        "steps_run": STEPS,
        "scaled_to_steps": GOAL_STEPS,
        "single_channels_sampled": sample,
        "batched_s_per_step": round(b, 4),
        "single_s_per_step": round(s, 4),
        "batched_total_s_scaled": round(batched_s, 1),
        "one_at_a_time_total_s_scaled": round(single_s, 1),
        "speedup": round(single_s / batched_s, 2),
        "goal_speedup": 10,
    }


def lucent_status() -> dict[str, Any]:
    try:
        import lucent  # noqa: F401
    except ImportError as exc:
        reason = f"not installed ({exc})"
    else:
        return {"runs": True}
    out: dict[str, Any] = {"runs": False, "import": reason}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            "torch-lucent",
            "-d",
            tmp,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            out["why"] = (
                "its wheel could not be downloaded to inspect: " + done.stderr.strip()[-200:]
            )
            return out
        with zipfile.ZipFile(wheels[0]) as z:
            meta = next(n for n in z.namelist() if n.endswith("METADATA"))
            requires = [
                line.split(":", 1)[1].strip()
                for line in z.read(meta).decode().splitlines()
                if line.startswith("Requires-Dist:")
            ]
            tv = sorted(
                n for n in z.namelist() if n.endswith(".py") and b"torchvision" in z.read(n)
            )
    out.update(
        wheel=wheels[0].name,
        requires=requires,
        imports_torchvision=tv,
        why=(
            "torch-lucent requires torchvision (lucent.optvis.transform imports "
            "torchvision.transforms.Normalize, and optvis.render imports that module) and "
            "kornia<=0.4.1; torchvision does not import beside torch "
            f"{torch.__version__.split('+')[0]} here, so it was not installed and cannot run"
        ),
    )
    return out


def resnet_step_seconds(model: nn.Module, device: str) -> dict[str, float]:
    m = model.to(device)
    res = {}
    for label, obj in (("last_conv_channel", "layer4.1.conv2:0"), ("class_logit", "logits:0")):
        per_step(m, obj, 1, 128)  # warm-up
        res[label] = round(statistics.median(per_step(m, obj, 3, 128) for _ in range(ROUNDS)), 4)
    return res


def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = ResNet18().eval()
    figures: dict[str, Any] = {
        "threads": THREADS,
        "machine": "2 cores shared with ~8 agents (loaded)",
    }
    figures["batched_vs_one_at_a_time"] = batched_vs_single(model)
    print("batched vs single:", figures["batched_vs_one_at_a_time"], flush=True)
    figures["lucent"] = lucent_status()
    print("lucent:", figures["lucent"].get("why", "runs"), flush=True)
    figures["resnet18_128px_s_per_step"] = {"cpu": resnet_step_seconds(model, "cpu")}
    if torch.cuda.is_available():
        figures["resnet18_128px_s_per_step"]["cuda"] = resnet_step_seconds(model, "cuda")
    else:
        figures["resnet18_128px_s_per_step"]["cuda"] = "no GPU on this machine"
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
