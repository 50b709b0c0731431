"""`Projection`: the result of `deepscope.project`, and its scatter picture.

The picture (`Projection.figure`, `deepscope.render.scatter`) is drawn with numpy and
Pillow only: every point (no sampling), coloured by its label (a palette of 20 for
categories, viridis for numbers), with a legend for up to 20 categories, axes and a title;
a 3-D projection is drawn from an oblique view. `save` writes it as PNG, SVG or PDF.

Example:
    >>> import numpy as np
    >>> p = Projection(np.zeros((3, 2), np.float32), "pca", 2, {}, 0)
    >>> p.image(size=64).shape
    (64, 64, 3)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from deepscope.render.vector import Scene

__all__ = ["PALETTE", "Projection"]

PALETTE = (
    "1f77b4 ff7f0e 2ca02c d62728 9467bd 8c564b e377c2 7f7f7f bcbd22 17becf "
    "aec7e8 ffbb78 98df8a ff9896 c5b0d5 c49c94 f7b6d2 c7c7c7 dbdb8d 9edae5"
).split()
"""Category colours (tab10 then its light half), repeated past 20 categories."""
_MAX_LEGEND = 20
_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


@dataclass
class Projection:
    """Coordinates of N points in `dims` dimensions.

    Attributes:
        coords: N x dims float32; rows dropped for NaN/Inf input are NaN.
        method: ``"pca"``, ``"tsne"`` or ``"umap"``.
        dims: 2 or 3.
        params: the method's options, defaults filled in.
        seed: the random seed used.
        dropped: how many input rows had a NaN or infinity (not projected).
        explained_variance: PCA only: the variance along each component.
        explained_variance_ratio: PCA only: that variance as a fraction of the total.
        labels: the labels given to `deepscope.project` (for the picture), or None.
        extras: method details (the PCA solver, the t-SNE gradient method, ...).
    """

    coords: NDArray[np.float32]
    method: str
    dims: int
    params: dict[str, Any]
    seed: int
    dropped: int = 0
    explained_variance: list[float] | None = None
    explained_variance_ratio: list[float] | None = None
    labels: Sequence[Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        n = self.coords.shape[0]
        ev = ""
        if self.explained_variance_ratio is not None:
            ev = " explained=" + "/".join(f"{r:.3f}" for r in self.explained_variance_ratio)
        return f"<Projection {self.method} {n} points -> {self.dims}-D dropped={self.dropped}{ev}>"

    def figure(self, size: int = 800, *, dpi: float = 150, title: str | None = None) -> Scene:
        """The scatter plot as a vector scene (`deepscope.render.scatter`): a `size` x
        `size` pixel page at `dpi`, one mark per point coloured by label, a legend, axes
        with tick labels and a title (default: the method and point count), text as
        outlines. A 3-D projection is drawn from an oblique view, without ticks."""
        from deepscope.render.scatter import scatter_scene

        n = self.coords.shape[0]
        rgb, legend = _colours(self.labels, n)
        if self.labels is not None and len(legend) == _MAX_LEGEND:
            kinds = len({str(v) for v in self.labels})
            if kinds > _MAX_LEGEND:  # colours repeat past 20: say how many are not listed
                legend = [*legend, (f"+{kinds - _MAX_LEGEND} more", (255, 255, 255))]
        if title is None:
            title = f"{_NAMES.get(self.method, self.method)} \u00b7 {n:,} points"
            title += f", {self.dropped} dropped" if self.dropped else ""
        return scatter_scene(_plane(self.coords), rgb, legend, title=title or None,
                             size=(size, size), dpi=dpi, axis_names=self._axis_names())  # fmt: skip

    def _axis_names(self) -> tuple[str, str] | None:
        if self.coords.shape[1] >= 3:
            return None
        name = _NAMES.get(self.method, self.method)
        if self.method == "pca":
            ratio = self.explained_variance_ratio or []
            return tuple(  # type: ignore[return-value]
                f"PC {i + 1}" + (f" ({100 * ratio[i]:.1f}%)" if i < len(ratio) else "")
                for i in range(2)
            )
        return f"{name} 1", f"{name} 2"

    def image(self, size: int = 800, *, dpi: float = 150) -> NDArray[np.uint8]:
        """The scatter picture (`figure` drawn) as a (size, size, 3) uint8 array."""
        import numpy as np

        return np.asarray(self.figure(size, dpi=dpi).raster(), dtype=np.uint8)

    def save(
        self, path: str | Path, size: int = 800, *, dpi: float = 150, title: str | None = None
    ) -> Path:
        """Write the scatter plot (`figure`) as PNG, SVG or PDF by the suffix of `path`:
        `size` pixels square at `dpi` (so ``size / dpi`` inches); in SVG and PDF the points,
        axes, legend and text are vector (above 50,000 points the points layer is one
        picture at `dpi`). Returns the path."""
        return self.figure(size, dpi=dpi, title=title).save(path)

    def _repr_png_(self) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.image(600)).save(buf, format="PNG")
        return buf.getvalue()

    def show(self) -> None:
        """Display in a notebook (IPython), else open the system image viewer."""
        try:
            from IPython.display import Image as IPyImage
            from IPython.display import display
        except ImportError:
            from PIL import Image

            Image.fromarray(self.image()).show()
            return
        display(IPyImage(data=self._repr_png_()))  # type: ignore[no-untyped-call]


def _rgb(hexes: Sequence[str]) -> NDArray[np.uint8]:
    import numpy as np

    return np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in hexes], np.uint8)


def _plane(coords: NDArray[np.float32]) -> NDArray[np.float64]:
    """2-D drawing coordinates: as is for 2-D; an oblique view (30° yaw, 20° pitch) for 3-D."""
    import numpy as np

    c = np.asarray(coords, dtype=np.float64)
    if c.shape[1] < 3:
        return c if c.shape[1] == 2 else np.concatenate([c, np.zeros_like(c)], axis=1)
    yaw, pitch = np.radians(30.0), np.radians(20.0)
    x = c[:, 0] * np.cos(yaw) - c[:, 1] * np.sin(yaw)
    depth = c[:, 0] * np.sin(yaw) + c[:, 1] * np.cos(yaw)
    y = c[:, 2] * np.cos(pitch) - depth * np.sin(pitch)
    return np.stack([x, y], axis=1)


def _colours(labels: Sequence[Any] | None, n: int) -> tuple[Any, list[tuple[str, Any]]]:
    """Per-point RGB and legend rows ``(text, rgb)``."""
    import numpy as np

    from deepscope.render.colormap import apply_colormap

    grey = np.tile(_rgb(["4c72b0"]), (n, 1))
    if labels is None:
        return grey, []
    values = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if values.shape[:1] != (n,):
        return grey, []
    if values.dtype.kind == "f" and len(np.unique(values[np.isfinite(values)])) > _MAX_LEGEND:
        finite = np.isfinite(values)
        lo, hi = (values[finite].min(), values[finite].max()) if finite.any() else (0.0, 1.0)
        t = (values - lo) / (hi - lo) if hi > lo else np.zeros(n)
        rgb = apply_colormap(np.nan_to_num(t, nan=0.0), "viridis")
        rgb[~finite] = 160
        return rgb, [(f"{lo:.3g}", rgb[np.argmin(values)]), (f"{hi:.3g}", rgb[np.argmax(values)])]
    cats, codes = np.unique(values.astype(str), return_inverse=True)
    table = _rgb(PALETTE)
    rgb = table[codes % len(table)]
    legend = [(str(c), table[i % len(table)]) for i, c in enumerate(cats[:_MAX_LEGEND])]
    return rgb, legend
