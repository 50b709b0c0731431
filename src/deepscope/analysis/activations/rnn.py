"""`rnn_states(model, inputs, layer, tokens=None)`: an RNN layer's hidden (and cell) state
at every time step, drawn as units × time heatmaps with the tokens on the time axis.

The model runs once with a hook that records the layer's input (and initial state); the
layer is then stepped one time step at a time on that input with its own weights, so the
states are the layer's exact states, including the cell state of an LSTM that the layer
itself returns only for the last step, and every stacked layer's states. Torch ``nn.RNN``,
``nn.LSTM``, ``nn.GRU`` (unidirectional; a bidirectional layer gives the hidden states of
its output sequence, both directions, and no cell state) and Keras ``SimpleRNN``, ``LSTM``
and ``GRU`` (stepped through the layer's cell; ``go_backwards`` reverses time; masks are
not applied).

Example:
    >>> import torch
    >>> lstm = torch.nn.LSTM(3, 5, batch_first=True)
    >>> s = rnn_states(lstm, torch.rand(1, 4, 3), tokens=["a", "b", "c", "d"])
    >>> tuple(s.hidden.shape), s.cell is not None
    ((1, 1, 4, 5), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deepscope.analysis.activations.base import prepare_inputs, run_model
from deepscope.analysis.activations.feature_maps import Picture
from deepscope.capture.hooks import HookSet
from deepscope.capture.select import LayerSelectionError, Selector, select_layers
from deepscope.errors import DeepscopeError
from deepscope.render.grid import render_heatmap
from deepscope.sources._module_tree import is_keras, named_modules

__all__ = ["RNNStates", "rnn_states"]

_KERAS_RNNS = ("LSTM", "GRU", "SimpleRNN")


@dataclass
class RNNStates:
    """Hidden states `hidden` (stacked layers, batch, time, units) and, for LSTMs, `cell`
    (same shape), of one recurrent layer; `tokens` label the time steps."""

    layer: str
    hidden: torch.Tensor
    cell: torch.Tensor | None = None
    tokens: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def picture(self, state: str = "hidden", index: int = 0, depth: int = -1) -> Picture:
        """Units × time heatmap of input `index`'s `state` ("hidden" or "cell") in stacked
        layer `depth` (the last by default)."""
        if state not in ("hidden", "cell"):
            raise ValueError(f"state must be 'hidden' or 'cell', not {state!r}")
        values = self.hidden if state == "hidden" else self.cell
        if values is None:
            raise DeepscopeError(f"{self.layer!r} has no cell state (only LSTMs have one)")
        matrix = values[depth, index].t().float().numpy()  # units × time
        cols = self.tokens if self.tokens is not None else [str(t) for t in range(matrix.shape[1])]
        rows = [str(u) for u in range(matrix.shape[0])]
        title = f"{self.layer} {state} state [{index}]"
        grid = render_heatmap(matrix, row_labels=rows, col_labels=cols, title=title)
        return Picture("states", matrix, grid, self.layer, index, {"state": state})

    def image(self, state: str = "hidden", index: int = 0) -> Any:
        """The heatmap as an (H, W, 3) uint8 array."""
        return self.picture(state, index).image()

    def save(self, path: str, state: str = "hidden", index: int = 0) -> Any:
        """Write the heatmap as PNG."""
        return self.picture(state, index).save(path)

    def show(self, state: str = "hidden", index: int = 0) -> None:
        """Display the heatmap (notebook or image viewer)."""
        self.picture(state, index).show()


def _capture_inputs(model: nn.Module, layer: nn.Module, inputs: Any) -> tuple[Any, ...]:
    seen: list[tuple[Any, ...]] = []

    def pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
        if not seen:
            seen.append(tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args))

    with HookSet() as hooks:
        hooks.forward_pre(layer, pre)
        with torch.no_grad():
            run_model(model, prepare_inputs(model, inputs))
    if not seen:
        raise LayerSelectionError("the RNN layer did not run during the forward pass")
    return seen[0]


def _step_torch(module: nn.RNNBase, args: tuple[Any, ...]) -> dict[str, Any]:
    x = args[0]
    if not isinstance(x, torch.Tensor):
        raise DeepscopeError("packed sequences are not supported: pass a padded tensor")
    unbatched = x.ndim == 2
    if unbatched:
        x = x.unsqueeze(0 if module.batch_first else 1)
    if not module.batch_first:
        x = x.transpose(0, 1)  # (B, T, F)
    if module.bidirectional:
        out, _ = module(x if module.batch_first else x.transpose(0, 1))
        seq = out if module.batch_first else out.transpose(0, 1)
        return {"hidden": seq.unsqueeze(0), "cell": None, "note": "bidirectional: output only"}
    state = args[1] if len(args) > 1 else None
    if unbatched and state is not None:
        state = (
            tuple(s.unsqueeze(1) for s in state) if isinstance(state, tuple) else state.unsqueeze(1)
        )
    hs, cs = [], []
    with torch.no_grad():
        for t in range(x.shape[1]):
            xt = x[:, t : t + 1]
            _, state = module(xt if module.batch_first else xt.transpose(0, 1), state)
            h, c = state if isinstance(state, tuple) else (state, None)
            hs.append(h)
            if c is not None:
                cs.append(c)
    return {"hidden": torch.stack(hs, 2), "cell": torch.stack(cs, 2) if cs else None}


def _step_keras(layer: Any, args: tuple[Any, ...]) -> dict[str, Any]:
    x = args[0]
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    cell = layer.cell
    size = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
    states = [torch.zeros(x.shape[0], int(s), dtype=x.dtype, device=x.device) for s in size]
    steps = range(x.shape[1] - 1, -1, -1) if layer.go_backwards else range(x.shape[1])
    hs, cs = [], []
    with torch.no_grad():
        for t in steps:
            h, new = cell.call(x[:, t], states, training=False)
            states = list(new) if isinstance(new, (list, tuple)) else [new]
            hs.append(torch.as_tensor(h))
            if len(states) > 1:
                cs.append(torch.as_tensor(states[1]))
    return {
        "hidden": torch.stack(hs, 1).unsqueeze(0),
        "cell": torch.stack(cs, 1).unsqueeze(0) if cs else None,
    }


def rnn_states(
    model: nn.Module,
    inputs: Any,
    layer: Selector | None = None,
    tokens: Sequence[str] | None = None,
) -> RNNStates:
    """Every time step's hidden (and cell) state of one recurrent layer of `model`.

    `layer` names the layer (None: `model` itself is the RNN, or its only recurrent
    layer); `tokens` label the time axis (one per step). Returns `RNNStates`, whose
    `picture()` / `save()` / `show()` draw units × time heatmaps.
    """
    module: nn.Module
    if isinstance(model, nn.RNNBase) and layer is None:
        name, module = "", model
    else:
        if layer is None:
            found = (
                select_layers(model, nn.RNNBase)
                if not is_keras(model)
                else [(n, m) for n, m in named_modules(model) if type(m).__name__ in _KERAS_RNNS]
            )
            if len(found) != 1:
                raise LayerSelectionError(
                    f"the model has {len(found)} recurrent layers; name one with layer="
                )
        else:
            found = select_layers(model, layer)
            if len(found) != 1:
                raise LayerSelectionError(f"{layer!r} selects {len(found)} layers; name one")
        name, module = found[0]
    keras = is_keras(module)
    if not isinstance(module, nn.RNNBase) and not (keras and type(module).__name__ in _KERAS_RNNS):
        raise DeepscopeError(
            f"layer {name!r} is a {type(module).__name__}, not nn.RNN/LSTM/GRU or a Keras "
            "SimpleRNN/LSTM/GRU"
        )
    args = _capture_inputs(model, module, inputs)
    stepped = _step_keras(module, args) if keras else _step_torch(module, args)  # type: ignore[arg-type]
    hidden: torch.Tensor = stepped["hidden"].detach().cpu()
    cell = stepped["cell"].detach().cpu() if stepped["cell"] is not None else None
    if tokens is not None and len(tokens) != hidden.shape[2]:
        raise DeepscopeError(f"got {len(tokens)} tokens for {hidden.shape[2]} time steps")
    meta = {"type": type(module).__name__}
    if "note" in stepped:
        meta["note"] = stepped["note"]
    return RNNStates(
        name or type(module).__name__, hidden, cell, list(tokens) if tokens else None, meta
    )
