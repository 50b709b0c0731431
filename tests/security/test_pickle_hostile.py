"""M11/M12 for pickled checkpoints: shared references, hashing bombs, mutated files."""

from __future__ import annotations

import io
import random
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from deepscope.errors import ModelFormatError
from deepscope.sources import state_dict as sd
from deepscope.sources._pickle_scan import HASH_BUDGET, PickleBombError

DEPTH = 40  # 2**40 paths: any per-path walk or per-path hash never finishes


def _dag(wrap: Callable[[Any], Any], levels: int) -> Any:
    x: Any = {"t": torch.arange(3.0)}
    for _ in range(levels):
        x = wrap(x)
    return x


# kind -> (one level refers to the previous twice or more, nesting per level)
WRAPPERS: dict[str, tuple[Callable[[Any], Any], int]] = {
    "dict": (lambda x: {"a": x, "b": x}, 1),
    "list": (lambda x: [x, x], 1),
    "tuple": (lambda x: (x, x), 1),
    "ordereddict": (lambda x: OrderedDict([("a", x), ("b", x)]), 1),
    "mixed": (lambda x: {"l": [x, (x, OrderedDict(k=x))]}, 2),  # 3**30 paths
}


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_M11_pickle_dag_is_walked_once(tmp_path: Path, kind: str) -> None:
    wrap, nesting = WRAPPERS[kind]
    levels = DEPTH if nesting == 1 else 30
    path = tmp_path / f"{kind}.pt"
    torch.save(_dag(wrap, levels), path)
    assert path.stat().st_size < 8000
    model = sd.load(path)
    (name,) = model.weights  # one tensor, found once, by its first path
    assert name.endswith(".t") and name.count(".") == levels * nesting
    assert model.weights[name].values.tolist() == [0.0, 1.0, 2.0]


def test_M11_tied_weights_keep_both_names(tmp_path: Path) -> None:
    w = torch.ones(2, 2)
    path = tmp_path / "tied.pt"
    torch.save({"embed.weight": w, "head.weight": w, "blocks": [{"x": w}, {"x": w}]}, path)
    names = set(sd.load(path).weights)
    assert names == {"embed.weight", "head.weight", "blocks.0.x", "blocks.1.x"}


def test_M11_deep_nesting_is_a_format_error(tmp_path: Path) -> None:
    x: Any = torch.zeros(1)
    for _ in range(sd.MAX_NESTING + 5):
        x = [x]
    path = tmp_path / "deep.pt"
    torch.save(x, path)
    with pytest.raises(ModelFormatError, match="nest deeper"):
        sd.load(path)


def _with_data_pkl(tmp_path: Path, pkl: bytes, name: str) -> Path:
    """A torch zip checkpoint whose data.pkl is `pkl`."""
    torch.save({}, tmp_path / "empty.pt")
    src = zipfile.ZipFile(tmp_path / "empty.pt")
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for member in src.namelist():
            out.writestr(member, pkl if member.endswith("data.pkl") else src.read(member))
    return path


def _tuple_dag(depth: int) -> bytes:
    """EMPTY_TUPLE, then t = (t, t) `depth` times, every level left on the stack (no POP)."""
    p = bytearray(b")q\x01")
    for _ in range(depth):
        p += b"h\x01h\x01\x86q\x01"  # BINGET 1, BINGET 1, TUPLE2, BINPUT 1
    if (depth + 1) % 2:
        p += b"h\x01"
    return bytes(p)


HASH_BOMBS = {
    # {(), t1, t2, t3, ...}: every level is a dict key, hashed per path by SETITEMS
    "dict-keys": b"\x80\x02}(" + _tuple_dag(DEPTH) + b"u.",
    # collections.Counter([t1, t2, ...]): Counter hashes every element
    "counter": b"\x80\x02ccollections\nCounter\n]("
    + _tuple_dag(DEPTH)
    + b"e\x85R.",  # APPENDS, TUPLE1, REDUCE
    # builtins.set([...])
    "set": b"\x80\x02cbuiltins\nset\n](" + _tuple_dag(DEPTH) + b"e\x85R.",
}


@pytest.mark.parametrize("kind", sorted(HASH_BOMBS))
def test_M11_pickle_hash_bomb_is_refused_before_torch_load(tmp_path: Path, kind: str) -> None:
    path = _with_data_pkl(tmp_path, HASH_BOMBS[kind], f"{kind}.pt")
    assert path.stat().st_size < 4000
    with pytest.raises(PickleBombError, match="pickle bomb"):
        sd.load(path)


def test_M11_small_hash_dags_still_load(tmp_path: Path) -> None:
    # depth 12: 4k hashing steps, well under the budget; torch gets to read it
    path = _with_data_pkl(tmp_path, b"\x80\x02}(" + _tuple_dag(12) + b"u.", "ok.pt")
    assert HASH_BUDGET > 2**13
    model = sd.load(path)
    assert model.weights == {}


def test_M11_legacy_format_is_scanned_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    assert set(sd.load(path).weights) == {"w"}


def _mutants(data: bytes, n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        out.append(bytes(b))
    return out


def test_M12_mutated_pickles_give_typed_errors(tmp_path: Path) -> None:
    buf = io.BytesIO()
    torch.save(OrderedDict(w=torch.ones(2), b=[torch.zeros(1), (1, "x")]), buf)
    with zipfile.ZipFile(buf) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    for i, mutant in enumerate(_mutants(pkl, 60, seed=11)):
        path = _with_data_pkl(tmp_path, mutant, f"m{i}.pt")
        try:
            sd.load(path)
        except ModelFormatError:
            pass  # UnsafeModelError and PickleBombError are subclasses


def test_M12_cli_prints_the_reason_not_a_traceback(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from deepscope.cli import main

    path = _with_data_pkl(tmp_path, HASH_BOMBS["dict-keys"], "bomb.pt")
    result = CliRunner().invoke(main, ["summary", str(path)])
    assert result.exit_code == 1
    assert "pickle bomb" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
