"""Graph explorer speed on a ~100k-op model: open-to-first-render and group expand times.

A synthetic Graph IR (12 stages x 12 blocks x 700 ops, nested namespaces
``stage<i>/block<j>``, identical "Block" structure) is logged with `run.log_graph(graph)`,
served by a real server on loopback and opened in headless Chromium.

Figures (goals: open <= 3 s, expand <= 100 ms):
- ``open_cold_s``: navigation to the first rendered top level, server cache cold (includes
  the server parsing the graph blob and indexing it); ``open_warm_s``: the same, reloaded.
- ``expand_ms``: each of 10 block expansions, from the double-click to the frame after the
  block's children are in the DOM (level fetch + layout or layout-cache hit + render);
  ``expand_median_ms`` their median; ``expand_first_ms`` the first (no cached layout).
- ``level_fetch_ms_median``: the server's share (resource timing of `/api/graph/level`);
  ``client_ms_median``: expand minus fetch (layout or cache hit, scene, render, paint).
- ``expand_after_hover_ms``: blocks expanded after the pointer rested on them for
  ``HOVER_DWELL_MS`` (the panel prefetches a hovered group's level), a separate figure.

Run alone: ``python benchmarks/_dashboard_graph.py`` prints one JSON line last.
"""

from __future__ import annotations

import gc
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

STAGES = 12
BLOCKS = 12
OPS = 700
EXPANSIONS = 10
HOVER_DWELL_MS = 400  # pointer resting on a group before the double-click (prefetch window)

CHROMIUM_LAUNCH: dict[str, Any] = {
    "executable_path": "/usr/bin/chromium",
    "headless": True,
    "args": [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ],
}

OP_CYCLE = ["linear", "layer_norm", "gelu", "matmul", "softmax", "add", "mul"]

EXPAND_JS = """
async ([sel, childPrefix]) => {
  const el = document.querySelector(sel);
  if (el === null) throw new Error('no node ' + sel);
  const done = () => {
    const g = document.querySelector(sel);
    const busy = document.querySelector('[data-testid=graph-explorer]').dataset.busy;
    return g !== null && g.dataset.expanded === 'true' && busy === 'false' &&
      document.querySelector(`[data-node-id^="${childPrefix}"]`) !== null;
  };
  const t0 = performance.now();
  el.dispatchEvent(new MouseEvent('dblclick', { bubbles: true }));
  await new Promise((resolve) => {
    if (done()) return resolve();
    const mo = new MutationObserver(() => { if (done()) { mo.disconnect(); resolve(); } });
    mo.observe(document.body, { subtree: true, childList: true, attributes: true });
  });
  await new Promise((r) => requestAnimationFrame(() => r()));
  return performance.now() - t0;
}
"""

LEVEL_FETCHES_JS = """
() => performance.getEntriesByType('resource')
  .filter((e) => e.name.includes('/api/graph/level') && e.name.includes('block'))
  .map((e) => e.duration)
"""


def synthetic_graph() -> Any:
    """12 x 12 x 700 ops; each block a chain with a skip edge every 7 ops."""
    from deepscope.graph.ir import Edge, Graph, Node, ParamRef, TensorMeta

    t = TensorMeta((1, 128, 256), "float32")
    nodes: list[Node] = [Node("input", "input", "input", outputs=[t])]
    edges: list[Edge] = []
    prev = "input"
    for s in range(STAGES):
        for b in range(BLOCKS):
            ns = f"stage{s}/block{b}"
            first = len(nodes)
            for i in range(OPS):
                op = OP_CYCLE[i % len(OP_CYCLE)]
                nid = f"s{s}b{b}o{i}"
                params = (
                    [ParamRef(f"stage{s}.block{b}.op{i}.weight", (256, 256), "float32")]
                    if op == "linear"
                    else []
                )
                nodes.append(Node(nid, op, f"{op}_{i}", ns, inputs=[t], outputs=[t], params=params))
                edges.append(Edge(prev, nid, tensor=t))
                if i >= 7 and i % 7 == 0:
                    edges.append(Edge(nodes[first + i - 7].id, nid, tensor=t))
                prev = nid
    g = Graph(nodes=nodes, edges=edges, inputs=["input"], outputs=[prev], meta={"source": "bench"})
    from deepscope.graph.aggregate import aggregate

    g.groups = aggregate(g)
    for ns, stats in g.groups.items():
        if ns.count("/") == 1:
            stats.module_type = "Block"
        elif ns:
            stats.module_type = "Stage"
    return g


def graph_figures(launch_kwargs: dict[str, Any]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    import deepscope
    from deepscope.server.runner import serve_in_thread
    from deepscope.server.settings import Settings

    with tempfile.TemporaryDirectory(prefix="deepscope-graph-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        graph = synthetic_graph()
        with deepscope.init(logdir=root, name="big") as run:
            run.log_graph(graph)
        log_s = time.perf_counter() - t0
        n_ops, n_edges = len(graph.nodes), len(graph.edges)
        # a dashboard process holds no IR of the graphs it serves: drop the one built here,
        # or every collector pass of the server (this process) rescans its 2M objects
        del graph
        gc.collect()
        url, stop = serve_in_thread(Settings(logdir=root))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(**launch_kwargs)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    page.set_default_timeout(120_000)
                    page.goto(f"{url}/#/runs")  # app shell loaded; the graph not yet asked for
                    page.wait_for_selector('[data-testid="tab-graph"]')

                    def open_graph() -> float:
                        t = time.perf_counter()
                        page.goto(f"{url}/#/graph?runs=big")
                        page.wait_for_selector(
                            '[data-testid="graph-node"][data-node-id="ns:stage0"]'
                        )
                        return time.perf_counter() - t

                    open_cold = open_graph()
                    page.goto(f"{url}/#/runs")
                    page.reload()
                    page.wait_for_selector('[data-testid="tab-graph"]')
                    open_warm = open_graph()
                    page.wait_for_function(
                        "() => document.querySelector('[data-testid=graph-explorer]').dataset.busy"
                        " === 'false'"
                    )
                    stage_ms = page.evaluate(
                        EXPAND_JS, ['[data-node-id="ns:stage0"]', "ns:stage0/"]
                    )

                    def ensure_rendered(sel: str) -> None:
                        """Culling renders only what is near the view: fit if `sel` is not."""
                        if page.locator(sel).count() == 0:
                            page.get_by_test_id("graph-fit").click()
                            page.wait_for_selector(sel)

                    times: list[float] = []
                    for b in range(EXPANSIONS):
                        sel = f'[data-node-id="ns:stage0/block{b}"]'
                        ensure_rendered(sel)
                        times.append(page.evaluate(EXPAND_JS, [sel, f"s0b{b}o"]))
                        page.evaluate(
                            "(sel) => document.querySelector(sel)"
                            ".dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))",
                            sel,
                        )
                        page.wait_for_function(
                            f"() => document.querySelector('{sel}')?.dataset.expanded === undefined"
                        )
                    fetches = page.evaluate(LEVEL_FETCHES_JS)
                    hovered: list[float] = []
                    for b in range(EXPANSIONS, BLOCKS):
                        sel = f'[data-node-id="ns:stage0/block{b}"]'
                        ensure_rendered(sel)
                        page.evaluate(
                            "(sel) => document.querySelector(sel)"
                            ".dispatchEvent(new PointerEvent('pointerover', {bubbles: true}))",
                            sel,
                        )
                        page.wait_for_timeout(HOVER_DWELL_MS)
                        hovered.append(page.evaluate(EXPAND_JS, [sel, f"s0b{b}o"]))
                        page.evaluate(
                            "(sel) => document.querySelector(sel)"
                            ".dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))",
                            sel,
                        )
                        page.wait_for_function(
                            f"() => document.querySelector('{sel}')?.dataset.expanded === undefined"
                        )
                    layout_calls = page.get_by_test_id("graph-explorer").get_attribute(
                        "data-layout-elk"
                    )
                    cached = page.get_by_test_id("graph-explorer").get_attribute(
                        "data-layout-cached"
                    )
                finally:
                    browser.close()
        finally:
            stop()
    return {
        "graph_ops": n_ops,
        "graph_edges": n_edges,
        "log_graph_s": round(log_s, 2),
        "open_cold_s": round(open_cold, 3),
        "open_warm_s": round(open_warm, 3),
        "open_goal_s": 3.0,
        "stage_expand_ms": round(stage_ms, 1),
        "expand_ms": [round(x, 1) for x in times],
        "expand_first_ms": round(times[0], 1),
        "expand_median_ms": round(statistics.median(times), 1),
        "expand_goal_ms": 100.0,
        "level_fetch_ms": [round(x, 1) for x in fetches[:EXPANSIONS]],
        "level_fetch_ms_median": round(statistics.median(fetches), 1) if fetches else None,
        "client_ms_median": round(
            statistics.median(t - f for t, f in zip(times, fetches, strict=False)), 1
        )
        if fetches
        else None,
        "expand_after_hover_ms": [round(x, 1) for x in hovered],
        "layouts_computed": int(layout_calls or 0),
        "layouts_from_cache": int(cached or 0),
    }


if __name__ == "__main__":
    print(json.dumps(graph_figures(CHROMIUM_LAUNCH)))
