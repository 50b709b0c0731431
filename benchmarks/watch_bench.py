"""Watch benchmark: the cost of ``run.watch(model)`` in a training loop, against TensorBoard.

Run: ``.venv/bin/python benchmarks/watch_bench.py [--quick] [--device auto|cpu|cuda]``.
Prints a table, then as the last line one JSON object with every figure.

A ResNet-18 (plain torch, 10 classes) trains on one batch of 32 random 3x64x64 images
(SGD, momentum 0.9, cross-entropy). Four variants, each on its own copy of the model:

  A. plain step;
  B. ``run.watch(model, every=1)``: every step logged (weight and gradient histograms and
     norms, activation statistics, update ratios, the non-finite guard, the rules);
  C. ``run.watch(model, every=100)``;
  D. TensorBoard: ``SummaryWriter.add_histogram`` of every parameter and every gradient,
     each step (what people do today).

Goals (DESIGN.md): every=100 overhead <= 1% of a plain step; every=1 overhead <= 1/5 of
TensorBoard's.

Timing. The machine may be shared, so the variants are interleaved (A, B, C, D, A, B, C,
D, ...) in rounds, so that contention hits all of them alike, and each figure is the
median over rounds. In a round each variant runs a block of K steps, every step timed on
its own (on CUDA the device is synchronised before each clock read), then its logger is
flushed (``run.flush()`` / ``writer.flush()``) and that flush is timed too. Two figures
come out of a block:

* seconds/step = (sum of the K step times + flush time) / K: everything the logging
  costs, the background commit included as if it ran serially (conservative: in a real
  loop it overlaps with training on another core);
* training-thread seconds/step = median of the K step times (no flush): what the training
  thread itself waits for.

every=100 (C) is measured at its true logging frequency without timing 100 steps per
round: the round starts a fresh ``run.watch(model, every=100)``, so its first step is a
logged iteration (iteration 0, as 100, 200, ...) and its second step completes it (the
update ratio and the one host copy happen at the next iteration); steps 3..K are
unlogged. Per 100 steps a real loop runs exactly one such pair and 98 unlogged steps, so

    C seconds/step = (t_logged + t_completing + flush + 98 * mean(t_unlogged)) / 100

and the training-thread figure is the same without the flush and with the median of the
unlogged steps.

A third figure, "in-step", times the logger from inside the step: every hook on the watched
model (all of them are the watcher's) is wrapped with a clock, and TensorBoard's
add_histogram loop is timed directly; overhead = logger seconds / the rest of the same
steps. Contention slows both halves alike, so on a busy CPU it is much steadier than a
difference of wall-clock medians; it leaves out the writer thread and torch's hook
dispatch. On CUDA the hooks include the wait for the GPU at the one host copy, so there
read the wall-clock figures.

On CPU a step takes seconds, so rounds (K = 3 steps per variant) run until a time budget is
spent (150 s, at least 2 rounds); ``--quick`` is a smoke run on a batch of 8 32x32 images.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import deepscope


# ---- a plain-torch ResNet-18 (torchvision does not import beside this torch) -----------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.relu(out + identity)
        assert isinstance(out, torch.Tensor)
        return out


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        out = self.fc(torch.flatten(self.avgpool(x), 1))
        assert isinstance(out, torch.Tensor)
        return out


# ---- the variants ----------------------------------------------------------------------------
def _timed(hook: Callable[..., Any], acc: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return hook(*args, **kwargs)
        finally:
            acc[0] += time.perf_counter() - t0

    return wrapper


def instrument_hooks(model: nn.Module, acc: list[float]) -> int:
    """Wrap every hook on `model` (all of them are the watcher's) so that the seconds spent in
    them accumulate in `acc[0]`. Works at torch's level (module and parameter hook dicts), so
    it does not depend on the watcher's internals. Returns how many hooks were wrapped."""
    n = 0
    dicts: list[Any] = []
    for m in model.modules():
        dicts += [m._forward_pre_hooks, m._forward_hooks]
    for prm in model.parameters():
        dicts.append(getattr(prm, "_post_accumulate_grad_hooks", None) or {})
    for d in dicts:
        for key, hook in list(d.items()):
            d[key] = _timed(hook, acc)
            n += 1
    return n


class Variant:
    """One model + optimizer (+ logger). `step()` is one training step, `flush()` drains the
    logger; `acc[0]` accumulates the seconds spent in the logger inside the step (the
    watcher's hooks, or TensorBoard's add_histogram loop)."""

    def __init__(self, name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.name, self.model, self.x, self.y = name, model, x, y
        self.opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        self.params = list(model.named_parameters())
        self.run: Any = None
        self.writer: Any = None
        self.global_step = 0
        self.acc = [0.0]

    def watch(self, every: int) -> None:
        self.run.watch(self.model, every=every)  # (re)watching removes the previous hooks
        instrument_hooks(self.model, self.acc)

    def step(self, sync: Callable[[], None]) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()  # type: ignore[no-untyped-call]
        self.opt.step()
        if self.writer is not None:  # what people do today: every param and grad, every step
            sync()
            t0 = time.perf_counter()
            s = self.global_step
            for n, p in self.params:
                self.writer.add_histogram(f"weights/{n}", p, s)
                if p.grad is not None:
                    self.writer.add_histogram(f"grads/{n}", p.grad, s)
            sync()
            self.acc[0] += time.perf_counter() - t0
        self.global_step += 1

    def flush(self) -> None:
        if self.run is not None:
            self.run.flush()
        if self.writer is not None:
            self.writer.flush()


Block = tuple[list[float], list[float], float]  # step seconds, logger seconds in step, flush


def run_block(v: Variant, k: int, sync: Callable[[], None]) -> Block:
    """K timed steps then a timed flush."""
    gc.collect()
    times, inside = [], []
    sync()
    for _ in range(k):
        v.acc[0] = 0.0
        t0 = time.perf_counter()
        v.step(sync)
        sync()
        times.append(time.perf_counter() - t0)
        inside.append(v.acc[0])
    t0 = time.perf_counter()
    v.flush()
    return times, inside, time.perf_counter() - t0


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def bench(
    device: str,
    batch: int,
    size: int,
    budget: float,
    max_rounds: int,
    k: int,
    warmup: int,
    tmp: Path,
) -> dict[str, Any]:
    dev = torch.device(device)
    if dev.type == "cuda":

        def sync() -> None:
            torch.cuda.synchronize(dev)

    else:

        def sync() -> None:
            pass

    torch.manual_seed(0)
    base = ResNet18(10).to(dev)
    x = torch.randn(batch, 3, size, size, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    a = Variant("plain", copy.deepcopy(base), x, y)
    b = Variant("watch every=1", copy.deepcopy(base), x, y)
    c = Variant("watch every=100", copy.deepcopy(base), x, y)
    d = Variant("TensorBoard add_histogram", copy.deepcopy(base), x, y)

    from torch.utils.tensorboard import SummaryWriter

    b.run = deepscope.init(logdir=tmp / "ds", name="every1")
    c.run = deepscope.init(logdir=tmp / "ds", name="every100")
    d.writer = SummaryWriter(log_dir=str(tmp / "tb"))
    variants = [a, b, c, d]
    blocks: dict[str, list[Block]] = {v.name: [] for v in variants}
    t_start = time.perf_counter()
    try:
        b.watch(1)
        c.watch(100)
        for v in variants:  # warm-up (allocator, kernels, the logger's first commit)
            for _ in range(warmup):
                v.step(sync)
            v.flush()
        t_measure = time.perf_counter()
        while len(blocks[a.name]) < max_rounds and (
            len(blocks[a.name]) < 2 or time.perf_counter() - t_measure < budget
        ):
            for v in variants:
                if v is c:
                    c.watch(100)  # fresh watcher: its first step is a logged iteration
                blocks[v.name].append(run_block(v, k, sync))
    finally:
        b.run.finish()
        c.run.finish()
        d.writer.close()
    rounds = len(blocks[a.name])

    # wall clock, everything included (flush too), per step
    def total(name: str) -> float:
        return med([(sum(ts) + fl) / len(ts) for ts, _, fl in blocks[name]])

    # training thread only (no flush): median step
    def thread(name: str) -> float:
        return med([med(ts) for ts, _, _ in blocks[name]])

    # every=100 at its true frequency: one logged + one completing step per 100 (module doc)
    def c_total() -> float:
        return med(
            [
                (ts[0] + ts[1] + fl + 98 * statistics.fmean(ts[2:])) / 100
                for ts, _, fl in blocks[c.name]
            ]
        )

    def c_thread() -> float:
        return med([(ts[0] + ts[1] + 98 * med(ts[2:])) / 100 for ts, _, _ in blocks[c.name]])

    # in-step: seconds in the logger / seconds of the same steps outside it. Both halves of
    # the ratio are slowed alike by contention, so it is far steadier than wall-clock
    # differences on a shared CPU; it leaves out what runs outside the hooks (the writer
    # thread, torch's hook dispatch, GC). On CUDA the hook time includes waiting for the GPU
    # at the watcher's one host copy, so there the wall-clock figures are the ones to read.
    def inside(name: str) -> float:
        return (
            statistics.fmean(
                [
                    sum(h) / sum(t - x for t, x in zip(ts, h, strict=True))
                    for ts, h, _ in blocks[name]
                ]
            )
            * 100
        )

    def c_inside() -> float:
        per = []
        for ts, h, _ in blocks[c.name]:
            base_s = med([t - x for t, x in zip(ts, h, strict=True)])
            per.append((h[0] + h[1] + 98 * med(h[2:])) / (100 * base_s))
        return statistics.fmean(per) * 100

    plain, every1, every100, tb = total(a.name), total(b.name), c_total(), total(d.name)
    t_plain, t_every1, t_every100, t_tb = thread(a.name), thread(b.name), c_thread(), thread(d.name)

    def ovh(t: float, base_t: float) -> float:
        return (t - base_t) / base_t * 100.0

    def ratio(num: float, den: float) -> float | None:
        return num / den if den > 0 else None

    r: dict[str, Any] = {
        "device": "cpu" if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "device_type": dev.type,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "batch": batch,
        "image": [3, size, size],
        "params": sum(p.numel() for p in base.parameters()),
        "param_tensors": len(list(base.parameters())),
        "rounds": rounds,
        "steps_per_block": k,
        "warmup_steps": warmup,
        "steps_measured_per_variant": rounds * k,
        "measure_s": time.perf_counter() - t_start,
        "plain_s_per_step": plain,
        "every1_s_per_step": every1,
        "every100_s_per_step": every100,
        "tb_s_per_step": tb,
        "every1_overhead_pct": ovh(every1, plain),
        "every100_overhead_pct": ovh(every100, plain),
        "tb_overhead_pct": ovh(tb, plain),
        "plain_thread_s_per_step": t_plain,
        "every1_thread_s_per_step": t_every1,
        "every100_thread_s_per_step": t_every100,
        "tb_thread_s_per_step": t_tb,
        "every1_thread_overhead_pct": ovh(t_every1, t_plain),
        "every100_thread_overhead_pct": ovh(t_every100, t_plain),
        "tb_thread_overhead_pct": ovh(t_tb, t_plain),
        "every1_instep_overhead_pct": inside(b.name),
        "every100_instep_overhead_pct": c_inside(),
        "tb_instep_overhead_pct": inside(d.name),
        # training-thread seconds of one logged step: timed directly inside the step
        # (the watcher's hooks in an every=1 step / the add_histogram loop), and as the
        # difference of median steps
        "ds_logged_step_hooks_s": med([med(h) for _, h, _ in blocks[b.name]]),
        "tb_add_histogram_s": med([med(h) for _, h, _ in blocks[d.name]]),
        "ds_logged_step_diff_s": t_every1 - t_plain,
        "tb_logged_step_diff_s": t_tb - t_plain,
        "ds_unlogged_step_hooks_s": med([med(h[2:]) for _, h, _ in blocks[c.name]]),
        "every1_flush_s": med([fl for _, _, fl in blocks[b.name]]),
        "tb_flush_s": med([fl for _, _, fl in blocks[d.name]]),
    }
    r["every1_over_tb_overhead"] = ratio(r["every1_overhead_pct"], r["tb_overhead_pct"])
    r["every1_over_tb_thread_overhead"] = ratio(
        r["every1_thread_overhead_pct"], r["tb_thread_overhead_pct"]
    )
    r["every1_over_tb_instep_overhead"] = ratio(
        r["every1_instep_overhead_pct"], r["tb_instep_overhead_pct"]
    )
    r["ds_logged_step_over_add_histogram"] = ratio(
        r["ds_logged_step_hooks_s"], r["tb_add_histogram_s"]
    )
    r["goal_every100_le_1pct"] = r["every100_overhead_pct"] <= 1.0
    q = r["every1_over_tb_overhead"]
    r["goal_every1_le_fifth_of_tb"] = q is not None and q <= 0.2
    r["instep_goal_every100_le_1pct"] = r["every100_instep_overhead_pct"] <= 1.0
    q = r["every1_over_tb_instep_overhead"]
    r["instep_goal_every1_le_fifth_of_tb"] = q is not None and q <= 0.2
    return r


def print_table(r: dict[str, Any]) -> None:
    def ok(flag: bool) -> str:
        return "PASS" if flag else "MISS"

    def fmt(v: float | None, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    print(
        f"watch benchmark: ResNet-18 (10 classes, {r['params'] / 1e6:.1f}M params, "
        f"{r['param_tensors']} tensors), batch {r['batch']}x{'x'.join(map(str, r['image']))}, "
        f"SGD; device {r['device']}, torch {r['torch']}, {r['torch_threads']} threads"
        + ("  [QUICK: smoke run on a smaller batch, figures not meaningful]" if r["quick"] else "")
    )
    print(
        f"{r['rounds']} interleaved rounds x {r['steps_per_block']} steps per variant "
        f"(+{r['warmup_steps']} warm-up), medians over rounds, {r['measure_s']:.0f} s"
    )
    print()
    head = f"{'variant':<27}{'s/step':>9}{'ovh':>8}{'thread s':>10}{'ovh':>8}{'in-step':>9}"
    print(head)
    print("-" * len(head))
    for label, key in (
        ("plain", "plain"),
        ("watch(every=1)", "every1"),
        ("watch(every=100)", "every100"),
        ("TensorBoard add_histogram", "tb"),
    ):
        o = key != "plain"
        print(
            f"{label:<27}{r[f'{key}_s_per_step']:>9.4f}"
            f"{(format(r[f'{key}_overhead_pct'], '+.1f') + '%') if o else '':>8}"
            f"{r[f'{key}_thread_s_per_step']:>10.4f}"
            f"{(format(r[f'{key}_thread_overhead_pct'], '+.1f') + '%') if o else '':>8}"
            f"{(format(r[f'{key}_instep_overhead_pct'], '.2f') + '%') if o else '':>9}"
        )
    print(
        "  s/step: wall clock incl. the logger's flush; thread s: training thread only (median\n"
        "  step); in-step: seconds inside the watcher's hooks / add_histogram over the rest of\n"
        "  the same steps (steady under CPU contention; leaves out the writer thread)"
    )
    print()
    print(
        f"goal every=100 overhead <= 1%:        wall {r['every100_overhead_pct']:+.2f}% "
        f"{ok(r['goal_every100_le_1pct'])}   in-step {r['every100_instep_overhead_pct']:.3f}% "
        f"{ok(r['instep_goal_every100_le_1pct'])}"
    )
    print(
        f"goal every=1 overhead <= 1/5 of TB's: wall "
        f"{fmt(r['every1_over_tb_overhead'], '.3f')} {ok(r['goal_every1_le_fifth_of_tb'])}   "
        f"in-step {fmt(r['every1_over_tb_instep_overhead'], '.3f')} "
        f"{ok(r['instep_goal_every1_le_fifth_of_tb'])}   "
        f"(thread {fmt(r['every1_over_tb_thread_overhead'], '.3f')})"
    )
    print()
    print("training-thread seconds of one logged step (all 62 params + grads):")
    print(f"  deepscope watch hooks, timed inside the step: {r['ds_logged_step_hooks_s']:.4f} s")
    print(f"  TensorBoard add_histogram loop:               {r['tb_add_histogram_s']:.4f} s")
    print(
        f"  ratio deepscope / TensorBoard:                "
        f"{fmt(r['ds_logged_step_over_add_histogram'], '.3f')}"
    )
    print(
        f"  (as median-step differences: deepscope {r['ds_logged_step_diff_s']:+.4f} s, "
        f"TensorBoard {r['tb_logged_step_diff_s']:+.4f} s)"
    )
    print(
        f"unlogged step (every=100) hooks: {r['ds_unlogged_step_hooks_s'] * 1e3:.2f} ms; flush per "
        f"block: deepscope every=1 {r['every1_flush_s'] * 1e3:.1f} ms, "
        f"TensorBoard {r['tb_flush_s'] * 1e3:.1f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 1 min)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--budget", type=float, default=None, help="measuring seconds")
    parser.add_argument("--steps", type=int, default=None, help="steps per block (>= 3)")
    args = parser.parse_args(argv)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch.cuda.is_available() is False")
    batch, size = (8, 32) if args.quick else (32, 64)
    if device == "cpu":
        torch.set_num_threads(2)
        # rounds run until the budget is spent (at least 2): a step takes seconds on a CPU
        budget, max_rounds, k, warmup = (15.0, 2, 3, 1) if args.quick else (150.0, 20, 3, 1)
    else:
        torch.backends.cudnn.benchmark = True
        budget, max_rounds, k, warmup = (10.0, 5, 10, 5) if args.quick else (90.0, 30, 20, 20)
    if args.budget is not None:
        budget = args.budget
    k = max(3, args.steps or k)
    tmp = Path(tempfile.mkdtemp(prefix="deepscope-watch-bench-"))
    try:
        results = bench(device, batch, size, budget, max_rounds, k, warmup, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["quick"] = args.quick
    print_table(results)
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
