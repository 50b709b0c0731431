"""Inputs and weights for ``deepscope view MODEL --inputs PATH`` (the workbench from the shell).

`load_inputs(spec)` reads a batch from:

- a folder of images (.png, .jpg, .jpeg, .bmp, .gif, .webp): read with Pillow, RGB (or
  grayscale with ``channels=1``), scaled to [0, 1], every image resized to the first one's
  size; images in subfolders are labelled by their folder (``class_a/001.png``), and the
  sorted folder names are the class names;
- a ``.npy`` file (the batch) or a ``.npz`` file (``inputs``/``x``/the first array, and
  ``labels``/``y`` when present), read with ``allow_pickle=False``;
- ``package.module:function``: the user's own code, imported and called on purpose, that
  returns a batch or ``(batch, labels)``.

`load_weights(model, path)` loads a ``.safetensors`` file or a state dict (through the safe
loader: ``torch.load(weights_only=True)``) into a model a factory built.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepscope.errors import DeepscopeError, NotFoundError

__all__ = ["Batch", "load_inputs", "load_weights"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_IMAGES = 1024


@dataclass
class Batch:
    """A batch of inputs with optional labels and class names."""

    inputs: torch.Tensor
    labels: list[int] | None = None
    classes: list[str] | None = None


def _images(folder: Path, channels: int) -> Batch:
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file() and not p.is_symlink())  # fmt: skip
    if not files:
        raise DeepscopeError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    files = files[:MAX_IMAGES]
    subdirs = sorted({p.parent.relative_to(folder).parts[0] for p in files if p.parent != folder})
    classes = subdirs if subdirs and all(p.parent != folder for p in files) else None
    size: tuple[int, int] | None = None
    arrays = []
    for path in files:
        with Image.open(path) as raw:
            img = raw.convert("L" if channels == 1 else "RGB")
        size = size or img.size
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arrays.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    labels = None
    if classes is not None:
        labels = [classes.index(p.relative_to(folder).parts[0]) for p in files]
    return Batch(torch.from_numpy(np.stack(arrays)), labels, classes)


def _arrays(path: Path) -> Batch:
    if path.suffix.lower() == ".npy":
        return Batch(torch.from_numpy(np.load(path, allow_pickle=False)))
    with np.load(path, allow_pickle=False) as z:
        names = list(z.files)
        if not names:
            raise DeepscopeError(f"{path.name} holds no arrays")
        key = next((k for k in ("inputs", "x", "images") if k in names), names[0])
        label_key = next((k for k in ("labels", "y", "targets") if k in names), None)
        x = torch.from_numpy(z[key])
        labels = [int(v) for v in z[label_key].reshape(-1)] if label_key else None
    return Batch(x, labels)


def _function(spec: str) -> Batch:
    module_name, attr = spec.split(":", 1)
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise DeepscopeError(f"cannot load inputs from {spec!r}: {exc}") from exc
    out = obj() if callable(obj) else obj
    labels = None
    if isinstance(out, (tuple, list)) and len(out) == 2:
        out, y = out
        labels = [int(v) for v in np.asarray(y).reshape(-1)]
    from deepscope.workbench.source import as_batch

    return Batch(as_batch(out), labels)


def load_inputs(spec: str, *, channels: int = 3) -> Batch:
    """The batch named by `spec` (see the module docstring)."""
    from deepscope.sources.factory import is_factory_spec

    if is_factory_spec(spec):
        return _function(spec)
    path = Path(spec)
    if not path.exists():
        raise NotFoundError(f"inputs not found: {spec}")
    if path.is_dir():
        batch = _images(path, channels)
    elif path.suffix.lower() in (".npy", ".npz"):
        batch = _arrays(path)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        batch = _images_one(path, channels)
    else:
        raise DeepscopeError(
            f"--inputs {spec}: pass a folder of images, a .npy/.npz file or module:function"
        )
    if batch.inputs.dtype == torch.float64:
        batch.inputs = batch.inputs.float()
    return batch


def _images_one(path: Path, channels: int) -> Batch:
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    return Batch(torch.from_numpy((arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))[None]))


def load_weights(model: torch.nn.Module, path: Path) -> list[str]:
    """Load a ``.safetensors`` file or a state dict (safe loader) into `model`; notes name
    keys that did not match."""
    if not path.exists():
        raise NotFoundError(f"weights file not found: {path}")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
        notes: list[str] = []
    else:
        from deepscope.sources.state_dict import check_pickles, safe_torch_load, select_weights

        check_pickles(path)
        state, notes = select_weights(safe_torch_load(path))
    if not isinstance(state, dict):
        raise DeepscopeError(f"{path.name} holds no state dict of tensors")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        notes.append(f"{len(result.missing_keys)} parameters not in the file: "
                     + ", ".join(result.missing_keys[:5]))  # fmt: skip
    if result.unexpected_keys:
        notes.append(f"{len(result.unexpected_keys)} tensors not in the model: "
                     + ", ".join(result.unexpected_keys[:5]))  # fmt: skip
    return notes
