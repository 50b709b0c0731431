"""The lazy store of a PyTorch state-dict checkpoint (`.pt`, `.pth`, `.bin`, `.ckpt`).

Every check of `sources.state_dict.load` runs first: TorchScript / .pt2 archives are
refused (they hold code), member names and the pickle-bomb scan (`check_pickles`), then
the weights-only unpickler (`safe_torch_load`), which memory-maps a zip checkpoint: a
tensor's storage is read from the file when its values are used. Legacy (non-zip)
checkpoints are read whole by torch.

Example:
    >>> store = StateDictStore(Path("resnet.pt"))           # doctest: +SKIP
    >>> store.read("fc.weight").shape                       # doctest: +SKIP
    (1000, 512)
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.analysis.weights.lazy import TensorInfo, TensorStore, _Entry, _st_decoder
from deepscope.errors import UnsafeModelError

__all__ = ["StateDictStore"]

# torch dtype name -> (view dtype for the stored bits, safetensors code of the decoder)
_VIEWS = {
    "bfloat16": ("int16", "BF16"),
    "float8_e5m2": ("uint8", "F8_E5M2"),
    "float8_e4m3fn": ("uint8", "F8_E4M3"),
    "float8_e8m0fnu": ("uint8", "F8_E8M0"),
}


def _bits(t: Any, view: str | None) -> NDArray[Any]:
    import torch

    t = t.detach()
    if t.is_quantized:
        return np.asarray(t.dequantize().numpy())
    if view is not None:
        arr = t.view(getattr(torch, view)).numpy()
        return np.asarray(arr.view(np.uint16) if view == "int16" else arr)
    if t.dtype.is_floating_point and t.element_size() < 2:  # other float8 kinds
        return np.asarray(t.float().numpy())
    return np.asarray(t.numpy())


class StateDictStore(TensorStore):
    """A state-dict checkpoint read with the weights-only unpickler (torch imported)."""

    format = "state_dict"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from deepscope.sources import state_dict as sd
        from deepscope.sources.torchscript_file import is_code_archive

        if is_code_archive(self.path):
            raise UnsafeModelError(
                f"{self.path.name} is a TorchScript/.pt2 archive, which holds code; open it "
                "with deepscope.load_model (structure only) or pass trust=True there"
            )
        sd.check_pickles(self.path)
        selected, notes = sd.select_weights(sd.safe_torch_load(self.path))
        self.notes.extend(notes)
        for name, t in sd.iter_tensors(selected):
            dtype = str(t.dtype).removeprefix("torch.")
            view, code = _VIEWS.get(dtype, (None, ""))
            nbytes = t.numel() * t.element_size()
            info = TensorInfo(name, tuple(int(d) for d in t.shape), dtype, nbytes, None, None)
            self._keep.append(t)
            self._entries[name] = _Entry(
                info, None, _st_decoder(code) if code else None, provider=partial(_bits, t, view)
            )
