"""PyTorch Lightning: a logger that writes into a deepscope run, and can watch the module.

Example:
    >>> from deepscope.tracking.callbacks.lightning import DeepscopeLogger
    >>> logger = DeepscopeLogger(logdir="runs", watch_every=50)        # doctest: +SKIP
    >>> L.Trainer(logger=logger).fit(module, loader)                    # doctest: +SKIP
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from deepscope.errors import require

require("lightning", "lightning")

from lightning.pytorch import LightningModule  # noqa: E402
from lightning.pytorch.loggers.logger import Logger  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402

from deepscope.tracking.run import Run, init  # noqa: E402


class DeepscopeLogger(Logger):
    """Logs Lightning metrics and hyperparameters into one deepscope run.

    With `watch_every`, the module is watched (`run.watch`) when training starts.
    """

    def __init__(
        self,
        logdir: str = "runs",
        name: str | None = None,
        watch_every: int | None = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        self._logdir, self._name, self._init_kwargs = logdir, name, init_kwargs
        self.watch_every = watch_every
        self._run: Run | None = None

    @property
    def experiment(self) -> Run:
        """The deepscope run (created on first use)."""
        if self._run is None:
            self._run = init(logdir=self._logdir, name=self._name, **self._init_kwargs)
        return self._run

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def version(self) -> str:
        return self.experiment.name

    @property
    def save_dir(self) -> str:
        return str(self._logdir)

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        safe = {
            k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
            for k, v in values.items()
        }
        self.experiment.log_text("hparams", "\n".join(f"{k}: {v}" for k, v in safe.items()), step=0)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.experiment.log({k: v for k, v in metrics.items() if k != "epoch"}, step=step)

    def watch(self, module: LightningModule, **kwargs: Any) -> None:
        """Watch `module`'s weights, gradients and activations (see `Run.watch`)."""
        self.experiment.watch(module, **kwargs)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._run is not None:
            self._run.finish()

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        return None

    def _maybe_watch(self, module: LightningModule) -> None:
        if self.watch_every:
            self.watch(module, every=self.watch_every)


def _install_watch_callback() -> Any:
    from lightning.pytorch.callbacks import Callback

    class DeepscopeWatch(Callback):
        """Starts `run.watch` on the LightningModule when fitting starts."""

        def on_fit_start(self, trainer: Any, pl_module: LightningModule) -> None:
            for logger in trainer.loggers:
                if isinstance(logger, DeepscopeLogger):
                    logger._maybe_watch(pl_module)

    return DeepscopeWatch


DeepscopeWatch = _install_watch_callback()
