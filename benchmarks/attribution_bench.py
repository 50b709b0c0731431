"""Attribution speed on CPU against captum and pytorch-grad-cam (not a test).

ResNet-18 built here in plain torch (random weights; speed does not depend on them).
Prints one line per measurement and, last, one JSON object. Medians of repetitions.

    .venv/bin/python benchmarks/attribution_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from collections.abc import Callable

import torch
from torch import nn

from deepscope.analysis.attribution import GradCAM, IntegratedGradients, Saliency, ScoreCAM


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (cin, cout, s) in enumerate(widths, 1):
            setattr(self, f"layer{i}", nn.Sequential(Block(cin, cout, s), Block(cout, cout, 1)))
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(x.mean(dim=(2, 3)))


def _fake_torchvision() -> None:
    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    fn = types.ModuleType("torchvision.transforms.functional")
    for name in ("Compose", "Normalize", "ToTensor"):
        setattr(tr, name, type(name, (), {}))
    fn.resize = None  # type: ignore[attr-defined]
    tr.functional = fn  # type: ignore[attr-defined]
    tv.transforms = tr  # type: ignore[attr-defined]
    tv.ops = types.ModuleType("torchvision.ops")  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "torchvision": tv,
            "torchvision.transforms": tr,
            "torchvision.transforms.functional": fn,
            "torchvision.ops": tv.ops,
        }
    )


def median_s(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions, smaller IG/Score-CAM"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    _fake_torchvision()
    import captum.attr as ca
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    reps = 3 if args.quick else 5
    model = ResNet18().eval()
    batch = 4 if args.quick else 8
    x = torch.rand(batch, 3, 224, 224)
    target = list(range(batch))
    figures: dict[str, float] = {}

    def rate(name: str, fn: Callable[[], object], n_images: int, r: int = reps) -> float:
        seconds = median_s(fn, r)
        figures[name] = n_images / seconds
        print(f"{name:32s} {figures[name]:9.2f} images/s  ({seconds:.3f} s)", flush=True)
        return figures[name]

    def forward() -> None:
        with torch.no_grad():
            model(x)

    rate("forward (limit)", forward, batch)
    ours_cam = GradCAM(model, layer="layer4")
    rate("grad_cam deepscope", lambda: ours_cam.attribute(x, target), batch)
    theirs_cam = pgc.GradCAM(model=model, target_layers=[model.layer4])
    targets = [ClassifierOutputTarget(t) for t in target]
    rate("grad_cam pytorch-grad-cam", lambda: theirs_cam(input_tensor=x, targets=targets), batch)
    captum_cam = ca.LayerGradCam(model, model.layer4)
    rate("grad_cam captum", lambda: captum_cam.attribute(x, target=target), batch)

    rate("saliency deepscope", lambda: Saliency(model).attribute(x, target), batch)
    rate("saliency captum", lambda: ca.Saliency(model).attribute(x, target=target), batch)

    ig_batch, steps = (1, 16) if args.quick else (2, 50)
    xi, ti = x[:ig_batch], target[:ig_batch]
    ours_ig = IntegratedGradients(
        model, n_steps=steps, internal_batch_size=25, convergence_delta=False
    )
    rate("ig deepscope", lambda: ours_ig.attribute(xi, ti), ig_batch, 2)
    captum_ig = ca.IntegratedGradients(model)
    rate(
        "ig captum",
        lambda: captum_ig.attribute(xi, target=ti, n_steps=steps, internal_batch_size=25),
        ig_batch,
        2,
    )
    sal = Saliency(model)
    rate(
        f"ig limit ({steps} saliency passes)",
        lambda: [sal.attribute(xi, ti) for _ in range(steps)],
        ig_batch,
        2,
    )

    size = 112 if not args.quick else 64
    xs, ts = torch.rand(1, 3, size, size), [3]
    ours_sc = ScoreCAM(model, layer="layer4", batch_size=32)
    rate(f"score_cam deepscope ({size}px)", lambda: ours_sc.attribute(xs, ts), 1, 2)
    theirs_sc = pgc.ScoreCAM(model=model, target_layers=[model.layer4])
    theirs_sc.batch_size = 32
    rate(
        f"score_cam pytorch-grad-cam ({size}px)",
        lambda: theirs_sc(input_tensor=xs, targets=[ClassifierOutputTarget(3)]),
        1,
        2,
    )

    keys = list(figures)
    ratios = {
        "grad_cam_vs_pytorch_grad_cam": figures["grad_cam deepscope"]
        / figures["grad_cam pytorch-grad-cam"],
        "grad_cam_vs_captum": figures["grad_cam deepscope"] / figures["grad_cam captum"],
        "grad_cam_vs_forward_limit": figures["grad_cam deepscope"] / figures["forward (limit)"],
        "saliency_vs_captum": figures["saliency deepscope"] / figures["saliency captum"],
        "ig_vs_captum": figures["ig deepscope"] / figures["ig captum"],
        "ig_vs_limit": figures["ig deepscope"] / figures[keys[-3]],
        "score_cam_vs_pytorch_grad_cam": figures[keys[-2]] / figures[keys[-1]],
    }
    print(json.dumps({"images_per_s": figures, "ratios": ratios, "batch": batch, "threads": 2}))


if __name__ == "__main__":
    main()
