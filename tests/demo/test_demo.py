"""`deepscope demo --no-serve`: both runs, every kind of record, a model that learned, and
the diagnosis of the run that diverged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepscope.store import open as open_store

pytestmark = pytest.mark.slow


def test_demo_writes_both_runs_finished(demo_logdir: Path) -> None:
    runs = {r.name: r for r in open_store(demo_logdir).runs()}
    assert set(runs) == {"digits-cnn", "digits-cnn-lr20"}
    assert {r.status for r in runs.values()} == {"finished"}
    assert runs["digits-cnn"].config["optimizer"] == "Adam"


def test_healthy_run_has_every_kind_of_record_and_learns(demo_logdir: Path) -> None:
    run = open_store(demo_logdir).run("digits-cnn")
    kinds = {t.kind for t in run.tags()}
    assert {"scalar", "histogram", "image", "text", "graph", "attribution"} <= kinds
    acc = run.scalars("test/accuracy")
    assert acc[-1].value >= 0.9
    assert len(run.scalars("train/loss", max_points=10_000)) > 100
    assert run.histograms("grads/features.0.weight")
    assert run.histograms("weights/classifier.1.weight")
    images = run.blobs("image", "predictions")
    assert images and run.blob_path(images[-1]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    graph = json.loads(run.blob_path(run.blobs("graph")[0]).read_text())
    assert graph["schemaVersion"] >= 1 and len(graph["nodes"]) >= 10
    methods = {b.meta.get("method") for b in run.blobs("attribution")}
    assert {"saliency", "integrated_gradients", "grad_cam"} <= methods
    # Every one of the 8 digits is logged per method, with its label and prediction, and
    # beside it the input digit itself.
    saliency = run.blobs("attribution", "attribution/saliency")
    assert sorted(b.meta["input_index"] for b in saliency) == list(range(8))
    assert all(b.meta["pred"] == b.meta["target"] for b in saliency)
    assert all(0 <= b.meta["label"] <= 9 for b in saliency)
    inputs = run.blobs("attribution_input", "attribution/saliency")
    assert sorted(b.meta["input_index"] for b in inputs) == list(range(8))
    warnings = [e for e in run.events() if e.severity != "info"]
    assert warnings == []


def test_diverging_run_has_the_diagnosis_events(demo_logdir: Path) -> None:
    events = open_store(demo_logdir).run("digits-cnn-lr20").events()
    kinds = {e.kind for e in events}
    assert "nonfinite_activation" in kinds
    assert {"exploding_gradients", "divergence"} <= kinds
    nan = next(e for e in events if e.kind == "nonfinite_activation")
    assert nan.layer and nan.layer.startswith(("features.", "classifier."))


def test_the_explore_link_serves_the_trained_cnn_live(demo_logdir: Path) -> None:
    """`deepscope demo` ends with an explore link: the trained CNN (weights saved in its run
    folder) on test digits; its predictions are right and its layers answer."""
    import json
    import urllib.request

    from deepscope.commands.demo import explore_demo

    assert (demo_logdir / "digits-cnn" / "model.pt").is_file()
    with explore_demo(demo_logdir, "digits-cnn", inputs=16) as ex:
        base = ex.url.rstrip("/")

        def get(path: str) -> dict:  # type: ignore[type-arg]
            with urllib.request.urlopen(base + path, timeout=60) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]

        info = get("/api/workbench")
        assert info["classNames"] == [str(d) for d in range(10)] and len(info["inputs"]) == 16
        right = 0
        for i, row in enumerate(info["inputs"]):
            top = get(f"/api/workbench/view?view=predict&input={i}")["meta"]["top"]
            right += top[0]["class"] == row["label"]
        assert right >= 13, right  # a trained model, not a fresh one (~10% right)
        conv = next(n for n, i in ex.workbench.nodes.nodes.items()
                    if i.module_type == "Conv2d" and n.startswith("ns:"))  # fmt: skip
        maps = get(f"/api/workbench/view?view=activations&node={conv}&input=0")
        assert maps["meta"]["layout"] == "chw"
