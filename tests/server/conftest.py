"""Fixtures: a real log directory written with `deepscope.init`, and in-process clients."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from server_support import BASE, TOKEN, Logged, image_png, small_graph
from starlette.testclient import TestClient

import deepscope
from deepscope.server.app import Settings, create_app


@pytest.fixture(scope="session")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    """A log directory with one run holding every kind of record, plus a second run."""
    logdir = tmp_path_factory.mktemp("logdir")
    losses = [1.0, 0.5, math.nan, math.inf, -math.inf, 0.125]
    texts = ["hello <b>world</b>", "second\nline"]
    image = (np.arange(5 * 6 * 3) % 255).astype(np.uint8).reshape(5, 6, 3)
    with deepscope.init(logdir=logdir, name="alpha", config={"lr": 0.1, "bad": math.nan}) as run:
        for step, loss in enumerate(losses):
            run.log({"loss": loss, "acc": step / 10}, step=step)
        run.log_histogram("weights", np.array([0.0, 1.0, 2.0, np.nan, np.inf]), step=0)
        run.log_histogram("weights", np.arange(100, dtype=np.float64), step=1)
        run.log_image("sample", image, step=0, dataformats="HWC")
        run.log_text("notes", texts[0], step=0)
        run.log_text("notes", texts[1], step=1)
        run.log_graph(small_graph(), tag="model")
        run.log_event("nan", "loss became NaN", severity="error", layer="head/fc", step=2)
        run.log_blob("attribution", "saliency", image_png(image), ext="png",
                     meta={"method": "saliency"}, step=3)  # fmt: skip
    with deepscope.init(logdir=logdir, name="beta") as run:
        run.log({"loss": 2.0}, step=0)
    return Logged(logdir=logdir, run="alpha", losses=losses, texts=texts, image=image)


@pytest.fixture()
def client(logged: Logged) -> Iterator[TestClient]:
    """An in-process client without a token."""
    app = create_app(Settings(logdir=logged.logdir))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture()
def token_client(logged: Logged) -> Iterator[TestClient]:
    """An in-process client of an app with a token (the client sends none by itself)."""
    app = create_app(Settings(logdir=logged.logdir, token=TOKEN))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c
