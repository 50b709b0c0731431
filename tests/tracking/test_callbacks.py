"""Each framework callback, with the real library on a tiny model, writes what it saw."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from deepscope.store import open as open_store


@pytest.fixture(autouse=True)
def _without_torchvision_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attribution oracle tests put a stand-in `torchvision` (no `__spec__`) into
    sys.modules; Lightning and transformers probe for torchvision and choke on it."""
    for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
        if getattr(sys.modules[name], "__spec__", None) is None:
            monkeypatch.delitem(sys.modules, name)


def _only_run(logdir: Path):  # type: ignore[no-untyped-def]
    store = open_store(logdir)
    runs = store.runs()
    assert len(runs) == 1
    return store.run(runs[0].name), runs[0]


def test_lightning_logger_logs_metrics_and_watches(tmp_path: Path) -> None:
    L = pytest.importorskip("lightning.pytorch")
    from deepscope.tracking.callbacks.lightning import DeepscopeLogger, DeepscopeWatch

    class Tiny(L.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

        def training_step(self, batch, idx):  # type: ignore[no-untyped-def]
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return torch.optim.SGD(self.parameters(), lr=0.05)

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    logger = DeepscopeLogger(logdir=str(tmp_path), watch_every=4)
    trainer = L.Trainer(
        max_epochs=2, logger=logger, callbacks=[DeepscopeWatch()], log_every_n_steps=2,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu",
    )  # fmt: skip
    trainer.fit(Tiny(), loader)
    reader, info = _only_run(tmp_path)
    assert info.status == "finished"
    losses = reader.scalars("train_loss")
    assert len(losses) == 8  # 16 steps, every 2nd
    assert all(p.value > 0 for p in losses)
    assert reader.histograms("grads/net.0.weight")


def test_huggingface_trainer_callback_logs_loss_at_global_steps(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from deepscope.tracking.callbacks.huggingface import DeepscopeCallback

    class Regressor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 1)

        def forward(self, x, labels=None):  # type: ignore[no-untyped-def]
            out = self.fc(x)
            loss = nn.functional.mse_loss(out, labels) if labels is not None else None
            return {"loss": loss, "logits": out}

    class Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(40, 4, generator=g)

        def __len__(self) -> int:
            return 40

        def __getitem__(self, i):  # type: ignore[no-untyped-def]
            return {"x": self.x[i], "labels": self.x[i].sum().reshape(1)}

    class WeightsAtStep(transformers.TrainerCallback):  # type: ignore[misc]
        """fc.weight as the batch that becomes optimizer step `global_step + 1` sees it."""

        def __init__(self) -> None:
            self.seen: dict[int, torch.Tensor] = {}

        def on_step_begin(self, args, state, control, model=None, **kw):  # type: ignore[no-untyped-def]
            self.seen[state.global_step + 1] = model.fc.weight.detach().clone()

    for accumulation in (1, 2):
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path / "out"), per_device_train_batch_size=2 if accumulation == 2 else 4,
            gradient_accumulation_steps=accumulation, num_train_epochs=1, learning_rate=0.05,
            logging_steps=2, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
        )  # fmt: skip
        logdir = tmp_path / f"runs{accumulation}"
        cb, weights = DeepscopeCallback(logdir=str(logdir), watch_every=5), WeightsAtStep()
        trainer = transformers.Trainer(
            model=Regressor(), args=args, train_dataset=Data(), callbacks=[cb, weights]
        )
        trainer.train()
        reader, info = _only_run(logdir)
        assert info.status == "finished"
        assert trainer.state.global_step == 10
        assert [p.step for p in reader.scalars("loss")] == [2, 4, 6, 8, 10]
        # histograms carry the Trainer's global_step of the batch they describe, like the loss
        hists = reader.histograms("weights/fc.weight")
        assert [h.step for h in hists] == [5, 10]
        for h in hists:
            w = weights.seen[h.step]
            assert h.max == pytest.approx(float(w.max()), rel=1e-6)
            assert h.min == pytest.approx(float(w.min()), rel=1e-6)
        assert [h.step for h in reader.histograms("grads/fc.weight")] == [5, 10]


def test_keras_callback_logs_epochs_and_weight_histograms(tmp_path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend")
    import numpy as np

    from deepscope.tracking.callbacks.keras import DeepscopeCallback

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x.sum(1, keepdims=True)
    inner = keras.Sequential(
        [keras.layers.Dense(8, activation="relu", name="hidden")], name="block"
    )
    model = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(1, name="out")])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(
        x, y, epochs=3, batch_size=16, verbose=0, callbacks=[DeepscopeCallback(str(tmp_path))]
    )
    reader, info = _only_run(tmp_path)
    assert info.status == "finished"
    assert [p.step for p in reader.scalars("epoch/loss")] == [0, 1, 2]
    kernel = inner.layers[0].kernel.numpy()
    hist = reader.histograms("weights/block.hidden.kernel")[-1]
    assert hist.count == kernel.size
    assert hist.max == pytest.approx(float(kernel.max()), rel=1e-6)
    # the names Run.watch and the graph use for the same weights (torch backend)
    from deepscope.sources._module_tree import named_parameters

    want = {f"weights/{n}" for n, _ in named_parameters(model)}
    assert want == {"weights/block.hidden.kernel", "weights/block.hidden.bias",
                    "weights/out.kernel", "weights/out.bias"}  # fmt: skip
    assert {t.tag for t in reader.tags() if t.tag.startswith("weights/")} == want


def test_keras_callback_logs_the_graph_of_a_cnn_on_train_begin(tmp_path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend")
    import numpy as np

    from deepscope.graph.serialize import from_json
    from deepscope.tracking.callbacks.keras import DeepscopeCallback

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 1)).astype("float32")
    y = rng.normal(size=(8, 3)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv2d"),
            keras.layers.MaxPooling2D(name="max_pooling2d"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(3, name="dense"),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    cb = DeepscopeCallback(str(tmp_path), watch_every=1)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[cb])
    reader, info = _only_run(tmp_path)
    blobs = reader.blobs("graph")
    assert len(blobs) == 1 and blobs[0].tag == "model" and blobs[0].step == 0
    g = from_json(reader.read_blob(blobs[0]).decode())
    ops = [n.namespace for n in g.nodes if n.op not in ("input", "output")]
    assert ops == ["conv2d", "max_pooling2d", "flatten", "dense"]
    assert g.groups["conv2d"].params == 40 and g.groups[""].params == model.count_params()
    # watch_every=1: both batches of the epoch are watched under the Keras layer names
    assert [h.step for h in reader.histograms("grads/conv2d.kernel")] == [0, 1]
    # the watch logs the weights at batch steps; the callback's per-epoch copy is not added
    assert [h.step for h in reader.histograms("weights/conv2d.kernel")] == [0, 1]
    assert not [t.tag for t in reader.tags() if t.tag.startswith("weights/sequential")]
