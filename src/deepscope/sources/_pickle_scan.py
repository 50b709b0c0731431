"""Bound the hashing work a pickle makes its unpickler do, before `torch.load` runs it (M11).

A pickle can build a tuple that refers to the previous one twice, forty times over, in
about 200 bytes. Python hashes a tuple by hashing every element, without caching, so
using that tuple as a dict key (`SETITEM`) or handing it to `set`/`Counter`/`OrderedDict`
costs 2**40 steps, inside `torch.load(weights_only=True)`, before any of our code runs.

`check_pickle` walks the opcodes with `pickletools.genops` (it parses, never executes),
keeps a model of the stack and memo in which each value knows the size of its tuple tree
(saturating), and charges every hashing opcode. Over `HASH_BUDGET` it raises
`ModelFormatError`. Strings and numbers cost nothing; a legitimate checkpoint hashes only
short string keys, so it never comes near the budget.

Example:
    >>> check_pickle(io.BytesIO(b"\\x80\\x02}q\\x00."))    # doctest: +SKIP
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from typing import IO

from deepscope.errors import ModelFormatError

__all__ = ["HASH_BUDGET", "PickleBombError", "check_pickle"]

#: Tuple elements the unpickler may hash in one file (beyond one per key), summed over keys.
HASH_BUDGET = 1_000_000
#: Saturation value of every count. Far enough above the budget that a saturated tuple
#: still exceeds it after the "one step per key" discount (cost - 1): with `HASH_BUDGET + 1`
#: a single 2**60-node dict key was charged exactly `HASH_BUDGET` and let through.
_CAP = 2 * HASH_BUDGET + 2
#: Globals whose call hashes every element of its argument.
_HASHING_GLOBALS = {
    "builtins set",
    "builtins frozenset",
    "collections Counter",
    "collections OrderedDict",
    "__builtin__ set",
    "__builtin__ frozenset",
}
_DICT_GLOBALS = {"collections OrderedDict", "collections Counter", "?"}


class PickleBombError(ModelFormatError):
    """A pickle whose shared references would make unpickling take exponential time."""


class _Val:
    """A modelled stack value: how much hashing it costs, and what it holds."""

    __slots__ = ("cost", "held", "items", "kind", "name")

    def __init__(self, kind: str = "atom", cost: int = 1, name: str = "") -> None:
        self.kind = kind  # atom, tuple, list, dict, set, global
        self.cost = cost  # elements visited when hashing it (tuple tree size)
        self.held = 0  # list/dict/set: extra hashing cost of what it holds (elements/keys)
        self.name = name  # global: "module name"
        self.items: tuple[_Val, ...] = ()  # tuple: its elements


_MARK = _Val("mark")


def _extra(values: list[_Val] | tuple[_Val, ...]) -> int:
    """Hashing work beyond one step per value (0 for strings and numbers)."""
    return min(sum(v.cost - 1 for v in values), _CAP)


def _iter_cost(v: _Val) -> int:
    """Hashing work of iterating `v` and hashing each thing it yields."""
    if v.kind in ("list", "dict", "set"):
        return v.held
    return _extra(v.items) if v.kind == "tuple" else 0


class _Machine:
    def __init__(self) -> None:
        self.stack: list[_Val] = []
        self.memo: dict[object, _Val] = {}
        self.spent = 0

    def charge(self, extra: int, what: str) -> None:
        self.spent = min(self.spent + extra, _CAP)
        if self.spent > HASH_BUDGET:
            raise PickleBombError(
                f"checkpoint is a pickle bomb: {what} hashes shared tuples more than "
                f"{HASH_BUDGET:,} times (a few bytes that would take hours to load); "
                "it cannot be opened"
            )

    def pop(self) -> _Val:
        if not self.stack:
            raise ValueError("pickle stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[_Val]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1 :]
                del self.stack[i:]
                return items
        raise ValueError("pickle has no MARK to pop to")

    def top(self) -> _Val:
        if not self.stack:
            raise ValueError("pickle stack underflow")
        return self.stack[-1]

    def add_to_top(self, values: list[_Val], hashed: bool, what: str) -> None:
        extra = _extra(values)
        if hashed:
            self.charge(extra, what)
        target = self.top()
        if target.kind in ("list", "dict", "set"):  # anything else: the unpickler refuses
            target.held = min(target.held + extra, _CAP)


def _tuple(items: list[_Val]) -> _Val:
    v = _Val("tuple", min(1 + sum(x.cost for x in items), _CAP))
    v.items = tuple(items)
    return v


def _container(kind: str, items: list[_Val]) -> _Val:
    v = _Val(kind)
    v.held = _extra(items)
    return v


def _mark(m: _Machine, name: str, arg: object) -> None:
    m.stack.append(_MARK)


def _tuple_op(m: _Machine, name: str, arg: object) -> None:
    if name == "TUPLE":
        items = m.pop_mark()
    elif name == "EMPTY_TUPLE":
        items = []
    else:
        items = [m.pop() for _ in range(int(name[-1]))][::-1]
    m.stack.append(_tuple(items))


def _empty(m: _Machine, name: str, arg: object) -> None:
    m.stack.append(_Val(name.removeprefix("EMPTY_").lower()))


def _list(m: _Machine, name: str, arg: object) -> None:
    m.stack.append(_container("list", m.pop_mark()))


def _hashed_build(m: _Machine, name: str, arg: object) -> None:
    items = m.pop_mark()
    hashed = items[::2] if name == "DICT" else items
    m.charge(_extra(hashed), name)
    m.stack.append(_container("dict", hashed) if name == "DICT" else _Val())


def _append(m: _Machine, name: str, arg: object) -> None:
    m.add_to_top([m.pop()] if name == "APPEND" else m.pop_mark(), False, name)


def _additems(m: _Machine, name: str, arg: object) -> None:
    m.add_to_top(m.pop_mark(), True, "a set (ADDITEMS)")


def _setitem(m: _Machine, name: str, arg: object) -> None:
    items = [m.pop(), m.pop()][::-1] if name == "SETITEM" else m.pop_mark()
    m.add_to_top(items[::2], True, f"a dict key ({name})")


def _global(m: _Machine, name: str, arg: object) -> None:
    if name == "STACK_GLOBAL":
        m.pop(), m.pop()
    m.stack.append(_Val("global", name="?" if name == "STACK_GLOBAL" else str(arg)))


def _reduce(m: _Machine, name: str, arg: object) -> None:
    args, func = m.pop(), m.pop()
    work = min(sum(_iter_cost(x) for x in args.items) + _iter_cost(args), _CAP)
    if func.name in _HASHING_GLOBALS or func.name == "?":
        m.charge(work, f"a call of {func.name!r}")
    out = _Val("dict" if func.name in _DICT_GLOBALS else "atom")
    out.held = work if out.kind == "dict" else 0
    m.stack.append(out)


def _persid(m: _Machine, name: str, arg: object) -> None:
    # torch looks the storage key of a persistent id up in a dict (and formats it): hashed
    m.charge(_iter_cost(m.pop()), "a persistent id (BINPERSID)")
    m.stack.append(_ATOM)


def _build(m: _Machine, name: str, arg: object) -> None:
    # OrderedDict/objects: `__dict__.update(state)` or `setattr` per key hashes the keys
    m.charge(_iter_cost(m.pop()), "an object state (BUILD)")
    m.top()


def _memoize(m: _Machine, name: str, arg: object) -> None:
    m.memo[len(m.memo)] = m.top()


def _get(m: _Machine, name: str, arg: object) -> None:
    if arg not in m.memo:
        raise ValueError(f"pickle refers to memo {arg!r} before setting it")
    m.stack.append(m.memo[arg])


def _pop(m: _Machine, name: str, arg: object) -> None:
    if name == "POP_MARK":
        m.pop_mark()
    else:
        m.pop()


def _dup(m: _Machine, name: str, arg: object) -> None:
    m.stack.append(m.top())


_HANDLERS: dict[str, Callable[[_Machine, str, object], None]] = {
    "MARK": _mark,
    "EMPTY_TUPLE": _tuple_op,
    "TUPLE": _tuple_op,
    "TUPLE1": _tuple_op,
    "TUPLE2": _tuple_op,
    "TUPLE3": _tuple_op,
    "EMPTY_LIST": _empty,
    "EMPTY_DICT": _empty,
    "EMPTY_SET": _empty,
    "LIST": _list,
    "DICT": _hashed_build,
    "FROZENSET": _hashed_build,
    "APPEND": _append,
    "APPENDS": _append,
    "ADDITEMS": _additems,
    "SETITEM": _setitem,
    "SETITEMS": _setitem,
    "GLOBAL": _global,
    "INST": _global,
    "STACK_GLOBAL": _global,
    "REDUCE": _reduce,
    "BINPERSID": _persid,
    "BUILD": _build,
    "MEMOIZE": _memoize,
    "GET": _get,
    "BINGET": _get,
    "LONG_BINGET": _get,
    "POP": _pop,
    "POP_MARK": _pop,
    "DUP": _dup,
}


def _generic(m: _Machine, name: str) -> None:
    op = _OPS[name]
    for before in reversed(op.stack_before):
        if before is pickletools.markobject:
            m.pop_mark()
        elif before is pickletools.stackslice:
            continue
        else:
            m.pop()
    for _ in op.stack_after:
        m.stack.append(_Val())


_OPS = {op.name: op for op in pickletools.opcodes}
_ATOM = _Val()  # shared by every plain value (numbers, strings, None, ...): never mutated
_MODELLED = {
    "MARK", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET",
    "GLOBAL", "INST", "GET", "BINGET", "LONG_BINGET",
}  # fmt: skip
_PUSH_ATOM = {
    op.name
    for op in pickletools.opcodes
    if not op.stack_before and len(op.stack_after) == 1 and op.name not in _MODELLED
}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def check_pickle(stream: IO[bytes], *, items_hashed: bool = False) -> None:
    """Model one pickle (up to its STOP) from `stream`; raise `PickleBombError` on a bomb.

    `items_hashed`: the caller looks up every item of the loaded object in a dict (torch
    does so with the storage keys list, the last pickle of a legacy file), so charge that.

    Raises `ValueError` when the bytes are not a well-formed pickle.
    """
    m = _Machine()
    stack, memo = m.stack, m.memo
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name in _PUSH_ATOM:  # the common cases first: this loop runs once per opcode
            stack.append(_ATOM)
        elif name in _PUTS:
            memo[arg] = m.top()
        elif name == "STOP":
            if items_hashed:
                m.charge(_iter_cost(m.top()), "the storage keys of a legacy checkpoint")
        else:
            handler = _HANDLERS.get(name)
            if handler is None:
                _generic(m, name)
            else:
                handler(m, name, arg)
