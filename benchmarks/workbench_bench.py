"""Live-model workbench speed (issue 18), one run, one JSON line printed last.

A ResNet-18-sized CNN (plain torch BasicBlocks, 11.7 M parameters, 224 × 224 inputs) on the
CPU, served by `deepscope.explore`. Each figure is the median of ``--reps`` runs, each
interleaved with its peer, the same computation called directly through the Python API
(``ratio`` = server / direct: the server's overhead, HTTP included).

- ``maps_cold_s``: click-to-picture for a conv node's feature maps on an input not seen
  yet: the HTTP view request (one forward pass capturing every module, so later clicks on
  that input are slices) plus the array bytes received. Peers: ``direct_maps_cold_all_s``,
  the same capture called directly (`deepscope.activations(model, x, every_module)` and
  `item_array`; ``maps_cold_ratio`` is against it), and ``direct_maps_cold_s``, one
  layer only (`deepscope.activations(model, x, [layer])`).
- ``maps_warm_s`` (goal ≤ 0.3 s): the same for another conv node of an input already seen
  (after the first forward). Peer ``direct_maps_warm_s``: `item_array` of the captured
  result (what the server does then).
- ``gradcam_s`` (goal ≤ 1 s): Grad-CAM at a conv node for a class not asked yet, request to
  PNG bytes received. Peer ``direct_gradcam_s``: `deepscope.attribute(..., "grad_cam",
  layer)` and its overlay PNG.
- ``overlay``: `benchmarks/_workbench_overlay.measure()` (graph recolouring per scrubber
  step on a 100k-op graph) when that file exists.

Run: ``python benchmarks/workbench_bench.py [--reps 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.down(x))


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(3, 2, 1)
        widths = [64, 128, 256, 512]
        layers = []
        cin = 64
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.bn1(self.conv1(x))))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return self.fc(self.avg(h).flatten(1))


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as r:
        data: bytes = r.read()
    return data


def click(base: str, view: str, node: str, index: int, target: int | None, part: str) -> float:
    """Seconds from the view request to its part's bytes received."""
    q = {"view": view, "node": node, "input": index, "target": -1 if target is None else target}
    t0 = time.perf_counter()
    answer = json.loads(_get(f"{base}/api/workbench/view?{urllib.parse.urlencode(q)}"))
    key = urllib.parse.quote(answer["key"])
    body = _get(f"{base}/api/workbench/part?key={key}&part={part}")
    took = time.perf_counter() - t0
    assert len(body) > 100
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-overlay", action="store_true", help="skip the overlay figures")
    args = parser.parse_args()
    import deepscope
    from deepscope.views.kinds.activations import item_array

    torch.manual_seed(0)
    model = ResNet18().eval()
    n = 2 * args.reps + 2
    x = torch.rand(n, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    t0 = time.perf_counter()
    ex = deepscope.explore(model, x)
    start_s = time.perf_counter() - t0
    base = ex.url.rstrip("/")
    convs = [nid for nid, i in ex.workbench.nodes.nodes.items()
             if i.module_type == "Conv2d" and nid.startswith("ns:")]  # fmt: skip
    modules = {nid: ex.workbench.nodes.nodes[nid].module for nid in convs}
    first_s = click(base, "activations", convs[0], n - 1, None, "maps")  # the first request ever
    out: dict[str, Any] = {"bench": "workbench", "params": sum(p.numel() for p in model.parameters()),
                           "input": [3, 224, 224], "reps": args.reps, "explore_start_s": start_s,
                           "first_request_s": first_s, "loaded_machine": True}  # fmt: skip
    every = ex.workbench.nodes.module_names
    cold, dcold, dall, warm, dwarm, cam, dcam = [], [], [], [], [], [], []
    for r in range(args.reps):
        node = convs[(3 * r + 5) % len(convs)]
        other = convs[(3 * r + 9) % len(convs)]
        layer = modules[node]
        # cold: a new input (one forward capturing every layer), then warm: another node
        cold.append(click(base, "activations", node, r, None, "maps"))
        warm.append(click(base, "activations", other, r, None, "maps"))
        t = time.perf_counter()
        acts = deepscope.activations(model, x[r : r + 1], [layer])
        item_array(acts[layer], 1, 0)
        dcold.append(time.perf_counter() - t)
        t = time.perf_counter()  # what the server's cold click does: capture every module
        everything = deepscope.activations(model, x[r : r + 1], every)
        item_array(everything[layer], 1, 0)
        dall.append(time.perf_counter() - t)
        t = time.perf_counter()
        item_array(acts[layer], 1, 0)
        dwarm.append(time.perf_counter() - t)
        cam_node = convs[-1 - (r % 4)]
        cam.append(click(base, "gradcam", cam_node, r, r % 1000, "image"))
        t = time.perf_counter()
        res = deepscope.attribute(model, x[r : r + 1], r % 1000, method="grad_cam",
                                  layer=modules[cam_node])  # fmt: skip
        res.png_bytes()
        dcam.append(time.perf_counter() - t)
    med = statistics.median
    out.update(
        maps_cold_s=med(cold), direct_maps_cold_s=med(dcold), direct_maps_cold_all_s=med(dall),
        maps_cold_ratio=med(cold) / med(dall),
        maps_warm_s=med(warm), direct_maps_warm_s=med(dwarm),
        maps_warm_overhead_s=med(warm) - med(dwarm),
        gradcam_s=med(cam), direct_gradcam_s=med(dcam), gradcam_ratio=med(cam) / med(dcam),
        goals={"maps_warm_s": 0.3, "gradcam_s": 1.0},
    )  # fmt: skip
    out["meets"] = {"maps_warm": out["maps_warm_s"] <= 0.3, "gradcam": out["gradcam_s"] <= 1.0}
    ex.close()
    print(json.dumps(out), file=sys.stderr)  # the workbench figures, before the overlay's
    out["overlay"] = None
    if not args.no_overlay:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        try:
            from _workbench_overlay import measure  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            try:
                out["overlay"] = measure()
            except Exception as exc:  # noqa: BLE001 - report it, keep the other figures
                out["overlay"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
