"""Attention capture: speed and memory against the plain forward and ``output_attentions``.

A 12-layer, 12-head BERT built from a config (no download, random weights):

- 512 tokens, time: the plain SDPA forward, ``deepscope.attention`` capturing every head
  (SDPA intercepted and recomputed), and the eager model with ``output_attentions=True``;
  interleaved in one process, medians of ``--reps`` runs. Goal: capture ≤ 2× plain.
- 512 tokens, memory: each of the three once in a fresh subprocess; the peak resident
  memory of the call above what the process held just before it (``/proc/self/clear_refs``
  resets VmHWM, then VmHWM − VmRSS before).
- 4,096 tokens, memory: the plain forward and the pooled capture (``block=64, top_k=8``)
  in fresh subprocesses. Goal: the capture's extra peak ≤ 1/20 of the full weights
  (layers × heads × L² float32 = 9.66 GB, which this machine cannot hold). The hidden
  size there is ``--long-hidden`` (default 192, 12 heads of 16) to keep the run short:
  the attention weights' size does not depend on it.
- bertviz (not a dependency): with ``--bertviz DIR`` (an unpacked wheel, e.g. from
  ``pip download --no-deps bertviz``; it is put on sys.path in the child only), its
  ``head_view(..., html_action="return")`` on the same 512-token attentions, in a fresh
  subprocess: time, HTML size and peak memory. Its JavaScript needs require.js and d3
  from a CDN, so the drawing itself cannot run here (no network).

Prints one final JSON line with the figures. Run: ``python benchmarks/attention_bench.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LAYERS, HEADS = 12, 12
THREADS = 1  # the machine these ran on was shared and loaded: one thread is steadier


def _status() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}  # type: ignore[union-attr]


def _bert(tokens: int, hidden: int, impl: str) -> Any:
    import torch
    import transformers

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=1000,
        hidden_size=hidden,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * hidden,
        max_position_embeddings=tokens,
        attn_implementation=impl,
    )
    return transformers.BertModel(cfg).eval()


def _inputs(tokens: int) -> dict[str, Any]:
    import torch

    return {
        "input_ids": torch.randint(0, 1000, (1, tokens), generator=torch.Generator().manual_seed(1))
    }


def _run(mode: str, model: Any, inputs: dict[str, Any]) -> Any:
    import torch

    import deepscope

    if mode == "plain":
        with torch.no_grad():
            return model(**inputs)
    if mode == "capture":
        return deepscope.attention(model, inputs)
    if mode == "pooled":
        return deepscope.attention(model, inputs, block=64, top_k=8)
    if mode == "eager":
        with torch.no_grad():
            return model(**inputs, output_attentions=True)
    raise ValueError(mode)


def child(mode: str, tokens: int, hidden: int, bertviz: str | None) -> dict[str, Any]:
    """Run one mode once in this (fresh) process; its extra peak memory and time."""
    impl = "eager" if mode in ("eager", "bertviz") else "sdpa"
    model, inputs = _bert(tokens, hidden, impl), _inputs(tokens)
    _run("plain", model, _inputs(8))  # warm: imports, first-call setup
    if mode == "bertviz":
        sys.path.insert(0, str(bertviz))
        from bertviz import head_view

        attentions = _run("eager", model, inputs).attentions
        names = [f"t{i}" for i in range(tokens)]
        Path("/proc/self/clear_refs").write_text("5")
        before = _status()["VmRSS"]
        t0 = time.perf_counter()
        html = head_view(attentions, names, html_action="return")
        seconds = time.perf_counter() - t0
        extra = _status()["VmHWM"] - before
        return {"seconds": seconds, "extra_peak_bytes": extra, "html_bytes": len(html.data)}
    Path("/proc/self/clear_refs").write_text("5")
    before = _status()["VmRSS"]
    t0 = time.perf_counter()
    out = _run(mode, model, inputs)
    seconds = time.perf_counter() - t0
    extra = _status()["VmHWM"] - before
    kept = 0
    if mode == "pooled":
        kept = sum(
            sum(t.numel() * t.element_size() for t in (p.max, p.mean, p.top_values, p.top_keys))
            for p in out.pooled.values()
        )
    elif mode == "capture":
        kept = sum(w.numel() * 4 for w in out.weights.values())
    return {"seconds": seconds, "extra_peak_bytes": extra, "kept_bytes": kept}


def _spawn(mode: str, tokens: int, hidden: int, bertviz: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--tokens", str(tokens)]
    cmd += ["--hidden", str(hidden), "--threads", str(THREADS)]
    cmd += ["--bertviz", bertviz] if bertviz else []
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"failed": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def timing(tokens: int, hidden: int, reps: int) -> dict[str, Any]:
    """Interleaved medians of plain SDPA forward, capture of every head, eager output_attentions."""
    sdpa, eager = _bert(tokens, hidden, "sdpa"), _bert(tokens, hidden, "eager")
    inputs = _inputs(tokens)
    models = {"plain": sdpa, "capture": sdpa, "eager": eager}
    for mode, model in models.items():
        _run(mode, model, _inputs(16))
    times: dict[str, list[float]] = {m: [] for m in models}
    order = list(models)
    for rep in range(reps):
        for mode in order[rep % 3 :] + order[: rep % 3]:
            t0 = time.perf_counter()
            _run(mode, models[mode], inputs)
            times[mode].append(time.perf_counter() - t0)
            print(f"  {tokens} tokens rep {rep} {mode}: {times[mode][-1]:.2f} s", file=sys.stderr)
    med = {m: statistics.median(v) for m, v in times.items()}
    return {
        "median_s": med,
        "runs_s": times,
        "capture_over_plain": med["capture"] / med["plain"],
        "eager_output_attentions_over_plain": med["eager"] / med["plain"],
    }


def main() -> None:
    global THREADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--long-tokens", type=int, default=4096)
    parser.add_argument("--long-hidden", type=int, default=192)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--bertviz", default=None, help="an unpacked bertviz wheel directory")
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    THREADS = args.threads
    if args.child:
        print(json.dumps(child(args.child, args.tokens, args.hidden, args.bertviz)))
        return
    figures: dict[str, Any] = {
        "model": f"BERT {LAYERS} layers x {HEADS} heads, from config",
        "torch_threads": THREADS,
    }
    figures["time_512"] = timing(args.tokens, args.hidden, args.reps)
    mem = {m: _spawn(m, args.tokens, args.hidden) for m in ("plain", "capture", "eager")}
    figures["memory_512"] = mem
    if args.bertviz:
        figures["bertviz_512"] = _spawn("bertviz", args.tokens, args.hidden, args.bertviz)
        figures["bertviz_512"]["note"] = (
            "Python side only (head_view html_action='return'); the drawing needs require.js "
            "and d3 from a CDN (no network here); the HTML embeds every weight as JSON text, "
            "so it grows as layers x heads x L^2"
        )
    if not args.skip_long:
        n = args.long_tokens
        full = LAYERS * HEADS * n * n * 4
        plain = _spawn("plain", n, args.long_hidden)
        pooled = _spawn("pooled", n, args.long_hidden)
        extra = pooled.get("extra_peak_bytes", 0) - plain.get("extra_peak_bytes", 0)
        figures["memory_long"] = {
            "tokens": n,
            "hidden": args.long_hidden,
            "full_weights_bytes": full,
            "plain": plain,
            "pooled": pooled,
            "pooled_extra_over_plain_bytes": extra,
            "fraction_of_full": extra / full,
            "goal_fraction": 1 / 20,
        }
    figures["goals"] = {
        "capture_le_2x_plain": figures["time_512"]["capture_over_plain"] <= 2.0,
        "pooled_le_1_20_full": figures.get("memory_long", {}).get("fraction_of_full", 1.0) <= 0.05,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
