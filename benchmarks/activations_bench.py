"""Activations: capture cost against a plain forward and torchlens, and unit-stats streaming.

1. Capture every leaf module's output of a ResNet-18-sized CNN (built here in plain torch),
   batch 1×3×224×224: median time over interleaved runs of a plain forward, of
   `deepscope.activations` and of torchlens (`log_forward_pass`, or `trace` in torchlens
   2.x, which saves every layer by default), each in its own child process so that
   torchlens' wrapping of torch functions cannot slow the other two. Extra memory: the RSS
   a call leaves held by its result (and deepscope's exact bytes).
2. Unit stats over 10k MNIST-sized inputs (generated batch by batch, never held): median
   time against the plain forward passes over the same batches, and peak RSS of a fresh
   process at 1k and at 10k inputs (memory must not grow with the dataset).

Prints one JSON line at the end. Run: ``.venv/bin/python benchmarks/activations_bench.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

REPS = int(os.environ.get("BENCH_REPS", "3"))  # timed calls per child process
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))  # child processes per tool, interleaved


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
        skip = x if self.down is None else self.down(x)
        return torch.relu(out + skip)


def resnet18() -> nn.Module:
    """ResNet-18's layout (11.7 M parameters), built without torchvision."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers).eval()


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    ).eval()


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    # VmHWM, not ru_maxrss: ru_maxrss keeps the parent's peak across fork+exec
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) * 1024


def torchlens_fn() -> Any:
    import torchlens

    if hasattr(torchlens, "log_forward_pass"):
        return torchlens.log_forward_pass, "log_forward_pass"
    return torchlens.trace, f"trace (torchlens {getattr(torchlens, '__version__', '?')})"


def child_capture(tool: str) -> dict[str, Any]:
    """One tool, REPS timed calls (after one warm-up), in this process."""
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    net = resnet18()
    x = torch.randn(1, 3, 224, 224)
    import deepscope

    name = tool
    if tool == "plain":

        def call() -> Any:
            with torch.no_grad():
                return net(x)
    elif tool == "deepscope":

        def call() -> Any:
            return deepscope.activations(net, x)
    else:
        fn, name = torchlens_fn()

        def call() -> Any:
            with torch.no_grad():
                return fn(net, x)

    held = call()  # warm-up
    del held
    times = []
    extra = []
    for _ in range(REPS):
        before = rss()
        t0 = time.perf_counter()
        held = call()
        times.append(time.perf_counter() - t0)
        extra.append(rss() - before)
        del held
    out: dict[str, Any] = {"tool": name, "times": times, "extra_rss": statistics.median(extra)}
    if tool == "deepscope":
        acts = deepscope.activations(net, x)
        out["layers"] = len(acts.layers)
        out["bytes"] = sum(t.numel() * t.element_size() for t in acts.tensors.values())
    return out


def batches(n: int, size: int = 100) -> Iterator[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    for start in range(0, n, size):
        yield torch.rand(min(size, n - start), 1, 28, 28, generator=g)


def child_stats(tool: str, n: int) -> dict[str, Any]:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    torch.manual_seed(0)
    net = small_cnn()
    from deepscope.analysis.activations import unit_stats

    t0 = time.perf_counter()
    if tool == "plain":
        with torch.no_grad():
            for x in batches(n):
                net(x)
    else:
        unit_stats(net, batches(n), ["1", "4", "7"], top_k=9, progress=False)
    return {"time": time.perf_counter() - t0, "peak_rss": peak_rss()}


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    try:
        torchlens_fn()
        tools = ["plain", "deepscope", "torchlens"]
    except ImportError:
        tools = ["plain", "deepscope"]
    capture: dict[str, dict[str, Any]] = {t: {"times": []} for t in tools}
    for _ in range(ROUNDS):  # interleaved: each round runs every tool once
        for t in tools:
            if "error" in capture[t]:
                continue
            res = run_child("capture", t)
            if "error" in res:
                capture[t] = res
                continue
            times = capture[t]["times"] + res.pop("times")
            capture[t].update(res, times=times)
    med = {t: statistics.median(r["times"]) for t, r in capture.items() if "times" in r}
    report: dict[str, Any] = {
        "capture_plain_s": med.get("plain"),
        "capture_deepscope_s": med.get("deepscope"),
        "capture_ratio_to_plain": med["deepscope"] / med["plain"],
        "capture_goal_ratio": 1.3,
        "captured_layers": capture["deepscope"].get("layers"),
        "captured_bytes": capture["deepscope"].get("bytes"),
        "deepscope_extra_rss": capture["deepscope"].get("extra_rss"),
    }
    if "torchlens" in med:
        report.update(
            torchlens_api=capture["torchlens"]["tool"],
            capture_torchlens_s=med["torchlens"],
            speedup_vs_torchlens=med["torchlens"] / med["deepscope"],
            speedup_goal=8.0,
            torchlens_extra_rss=capture["torchlens"]["extra_rss"],
        )
    else:
        report["torchlens"] = capture.get("torchlens", {}).get("error", "not installed")
    plain, stats = [], []
    for _ in range(ROUNDS):
        plain.append(run_child("stats", "plain", "10000")["time"])
        stats.append(run_child("stats", "deepscope", "10000")["time"])
    report.update(
        unit_stats_plain_s=statistics.median(plain),
        unit_stats_s=statistics.median(stats),
        unit_stats_ratio=statistics.median(stats) / statistics.median(plain),
        unit_stats_goal_ratio=1.5,
        unit_stats_peak_rss_1k=run_child("stats", "deepscope", "1000")["peak_rss"],
        unit_stats_peak_rss_10k=run_child("stats", "deepscope", "10000")["peak_rss"],
    )
    print(json.dumps(report))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind = sys.argv[2]
        if kind == "capture":
            print(json.dumps(child_capture(sys.argv[3])))
        else:
            print(json.dumps(child_stats(sys.argv[3], int(sys.argv[4]))))
    else:
        main()
