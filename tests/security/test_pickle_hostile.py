"""M11/M12 for pickled checkpoints: shared references, hashing bombs, mutated files."""

from __future__ import annotations

import io
import pickle
import random
import struct
import subprocess
import sys
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


def _memo_dag(depth: int, proto: int, mark_tuple: bool = False) -> bytes:
    """t0 = (1,), t_i = (t_{i-1}, t_{i-1}) shared through the memo, as torch's unpickler reads.

    Protocol 2 uses LONG_BINPUT/LONG_BINGET, 4 BINPUT/BINGET (torch has no MEMOIZE or POP).
    Plain: TUPLE2 consumes t_{i-1}, so only t_depth is left. `mark_tuple`: MARK..TUPLE, which
    leaves every level on the stack; they are wrapped in a list, and t_depth pushed after it.
    """

    def put(i: int) -> bytes:
        return b"q" + bytes([i]) if proto >= 4 else b"r" + struct.pack("<I", i)

    def get(i: int) -> bytes:
        return b"h" + bytes([i]) if proto >= 4 else b"j" + struct.pack("<I", i)

    if not mark_tuple:
        return (
            b"K\x01\x85"
            + put(0)
            + b"".join(get(i - 1) + b"\x86" + put(i) for i in range(1, depth + 1))
        )
    levels = b"".join(b"(" + get(i - 1) + get(i - 1) + b"t" + put(i) for i in range(1, depth + 1))
    return b"](K\x01\x85" + put(0) + levels + b"e" + get(depth)


def _legacy(tmp_path: Path, name: str, obj_pkl: bytes, keys_pkl: bytes) -> Path:
    """A pre-zip torch.save file: magic, protocol, sys info, the object, storage keys."""
    path = tmp_path / name
    head = [0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}]
    path.write_bytes(b"".join(pickle.dumps(x, 2) for x in head) + obj_pkl + keys_pkl)
    return path


_STORAGE = b"ctorch\nFloatStorage\n"
# name -> (data.pkl / legacy object pickle, where it goes); every one holds t60, 2**60 nodes
TUPLE_KEY_BOMBS: dict[str, tuple[bytes, str]] = {
    # the tester's file: {t60: 1}, protocol 2, LONG_BINPUT/LONG_BINGET, TUPLE2, SETITEM
    "zip-p2-setitem": (b"\x80\x02}" + _memo_dag(60, 2) + b"K\x01s.", "zip"),
    "zip-p4-binput": (b"\x80\x04}" + _memo_dag(60, 4) + b"K\x01s.", "zip"),
    # {[t0..t60]: (list), t60: 1} by SETITEMS, tuples by MARK..TUPLE: the key is not on top
    "zip-p2-mark-tuple-setitems": (
        b"\x80\x02}(X\x04\x00\x00\x00junk" + _memo_dag(60, 2, True) + b"K\x01u.",
        "zip",
    ),
    # {"state_dict": OrderedDict({"w": 1, t60: 1})}: nested, SETITEMS on a REDUCE result
    "zip-p4-nested-ordereddict": (
        b"\x80\x04}X\n\x00\x00\x00state_dictccollections\nOrderedDict\n)R(X\x01\x00\x00\x00wK\x01"
        + _memo_dag(60, 4)
        + b"K\x01us.",
        "zip",
    ),
    # the storage key of a persistent id is looked up in a dict by torch
    "zip-p2-persistent-id-key": (
        b"\x80\x02(X\x07\x00\x00\x00storage"
        + _STORAGE
        + _memo_dag(60, 2)
        + b"X\x03\x00\x00\x00cpuK\x01tQ.",
        "zip",
    ),
    "legacy-p2-object": (b"\x80\x02}" + _memo_dag(60, 2) + b"K\x01s.", "legacy"),
    "legacy-p4-nested": (
        b"\x80\x04}X\x01\x00\x00\x00a}" + _memo_dag(60, 4) + b"K\x01ss.",
        "legacy",
    ),
    # the storage-keys list (fifth pickle) is iterated and each key looked up by torch
    "legacy-p2-storage-keys": (b"\x80\x02]" + _memo_dag(60, 2) + b"a.", "legacy-keys"),
}

_LOAD_ALL = """
import sys
from deepscope.sources import state_dict as sd
for p in sys.argv[1:]:
    try:
        sd.load(p)
        print(p, "LOADED", flush=True)
    except Exception as e:
        print(p, type(e).__name__, flush=True)
"""


def test_M11_tuple_dag_as_dict_key_in_a_torch_save_file_is_refused(tmp_path: Path) -> None:
    paths = {}
    for name, (pkl, where) in TUPLE_KEY_BOMBS.items():
        if where == "zip":
            path = _with_data_pkl(tmp_path, pkl, f"{name}.pt")
        elif where == "legacy":
            path = _legacy(tmp_path, f"{name}.pt", pkl, b"\x80\x02].")
        else:
            path = _legacy(tmp_path, f"{name}.pt", b"\x80\x02}.", pkl)
        assert path.stat().st_size < 4000
        paths[str(path)] = name
    # a subprocess with a timeout: a regression fails here instead of hanging the suite
    try:
        done = subprocess.run(
            [sys.executable, "-c", _LOAD_ALL, *paths],
            capture_output=True,
            text=True,
            timeout=180,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else str(e.stdout or "")
        pytest.fail(f"loading hung (a 2**60 hash ran); finished before it:\n{out}")
    got = dict(line.rsplit(" ", 1) for line in done.stdout.splitlines())
    results = {paths[p]: got.get(p) for p in paths}
    assert results == dict.fromkeys(TUPLE_KEY_BOMBS, "PickleBombError"), done.stderr[-2000:]
