"""`ViewLogging`: the `Run` methods that log analysis results as view kinds
(`deepscope.views`), one thin delegating method per kind; kept apart from `run.py` so
each kind's writer lives in its own module and `Run` stays small."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

__all__ = ["ViewLogging"]


class ViewLogging:
    """Mixed into `deepscope.tracking.run.Run`."""

    def _guard(self) -> None:  # pragma: no cover - Run's own check overrides this
        raise NotImplementedError

    @property
    def _as_run(self) -> Any:
        """This object as the `Run` (a `BlobWriter`) the kinds' writers take."""
        return self

    def show(self, **options: Any) -> Any:
        """This run's dashboard inline in a notebook (a snapshot; `deepscope.notebook.show`)."""
        from deepscope.notebook.show import show_run

        return show_run(self._as_run, **options)

    def log_attribution(
        self, tag: str, result: Any, step: int | None = None, **options: Any
    ) -> None:
        """Log an attribution result as the ``attribution`` view kind (`deepscope.views`):
        ``result.log(run, tag, step, **options)`` writes every input of its batch through
        `log_view`; `options` as for `AttributionResult.log` (``items``, ``labels``,
        ``predictions``, ``cmap``, ``alpha``)."""
        self._guard()
        result.log(self, tag, step, **options)

    def log_activations(
        self,
        tag: str,
        result: Any,
        step: int | None = None,
        layers: Sequence[str] | None = None,
        items: Iterable[int] | None = None,
        dtype: Literal["float32", "float16"] = "float32",
    ) -> None:
        """Log an `Activations` result (`deepscope.activations`) as the ``activations`` view
        kind: one item per layer in `layers` (default: every captured layer) and input item
        in `items` (default: every kept item), its output as a float32 (or float16) array
        (C×H×W, tokens × units, or units); the dashboard's Activations panel draws them."""
        from deepscope.views.kinds.activations import log_activations

        self._guard()
        log_activations(self._as_run, tag, result, step, layers=layers, items=items, dtype=dtype)

    def log_unit_stats(
        self, tag: str, stats: Any, step: int | None = None, layers: Sequence[str] | None = None
    ) -> None:
        """Log a `UnitStats` result (`deepscope.unit_stats`) as the ``unit_stats`` view kind:
        per layer in `layers` (default: every layer) the per-unit mean, std, max, fraction
        of zeros and top-k inputs with their crops; the Activations panel shows the table."""
        from deepscope.views.kinds.unit_stats import log_unit_stats

        self._guard()
        log_unit_stats(self._as_run, tag, stats, step, layers=layers)

    def log_weights(self, tag: str, result: Any, step: int | None = None, **options: Any) -> Any:
        """Log a `Weights` result (`deepscope.weights`) as the ``weights`` view kind: per
        tensor its statistics, max-|w| pooled heatmap, filters and spectrum (the Weights
        tab); `options` as for `deepscope.tracking._log_weights.log_weights` (``names``,
        ``max_tensors``, ``max_side``, ``spectra``, ``dtype``). Returns what was logged."""
        from deepscope.tracking._log_weights import log_weights

        self._guard()
        return log_weights(self._as_run, tag, result, step, **options)

    def log_attention(self, tag: str, result: Any, step: int | None = None, **options: Any) -> None:
        """Log an `Attention` result as the ``attention`` view kind (per layer, plus rollout);
        options as `deepscope.analysis.attention.show.write_attention`."""
        from deepscope.tracking._log_attention import log_attention

        self._guard()
        log_attention(self._as_run, tag, result, step, **options)

    def log_embedding(
        self,
        tag: str,
        x: Any,
        labels: Any = None,
        metadata: Mapping[str, Any] | None = None,
        images: Any = None,
        step: int | None = None,
    ) -> None:
        """Log N points in D dimensions (`x`: N x D, torch or numpy) for the Projector:
        `labels` and `metadata` (name -> N values) are columns, `images` (N x C x H x W)
        thumbnails; see `deepscope.tracking._log_embedding`. Wrong lengths raise here."""
        from deepscope.tracking._log_embedding import log_embedding

        self._guard()
        log_embedding(self._as_run, tag, x, labels, metadata, images, step)

    def log_atlas(self, tag: str, result: Any, step: int | None = None) -> None:
        """Log a neuron atlas (`deepscope.atlas`) as the ``atlas`` view kind: per channel of
        its layer the optimised image beside its top-k dataset examples and their
        activations; the dashboard's Atlas panel draws it (``result.log(run, tag, step)``)."""
        self._guard()
        result.log(self, tag, step)
