"""The schema language: TypedDicts validated at run time and emitted as TypeScript."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

import pytest

from deepscope.views.schema import NonFinite, SchemaError, errors, open_keys, typescript, validate


class Inner(TypedDict):
    """An inner object."""

    name: str
    value: float | NonFinite | None


class Outer(TypedDict):
    id: int
    ok: bool
    kind: Literal["a", "b"]
    point: tuple[int, float]
    items: list[Inner]
    table: dict[str, int]
    extra: Any
    note: NotRequired[str]


@open_keys
class Loose(TypedDict):
    method: str


GOOD: dict[str, Any] = {
    "id": 3, "ok": True, "kind": "a", "point": [1, 2.5], "extra": {"x": [1]},
    "items": [{"name": "n", "value": 1}, {"name": "m", "value": {"nonfinite": "nan"}},
              {"name": "o", "value": None}],
    "table": {"k": 1},
}  # fmt: skip


def test_a_matching_value_passes() -> None:
    validate(GOOD, Outer)
    validate({**GOOD, "note": "optional key present"}, Outer)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"id": "3"}, "$.id: expected an integer"),
        ({"id": True}, "$.id: expected an integer"),  # a bool is not an int
        ({"id": 3.0}, "$.id: expected an integer"),
        ({"ok": 1}, "$.ok: expected a boolean"),
        ({"kind": "c"}, "$.kind: expected one of"),
        ({"point": [1]}, "$.point: expected a list of 2"),
        ({"point": [1, "x"]}, "$.point[1]: expected a number"),
        ({"items": [{"name": "n", "value": float("nan")}]}, "$.items[0].value"),
        ({"items": [{"name": "n", "value": {"nonfinite": "NaN"}}]}, "$.items[0].value"),
        ({"items": [{"name": 1, "value": 1}]}, "$.items[0].name: expected a string"),
        ({"items": [{"name": "n"}]}, "$.items[0]: missing key 'value'"),
        ({"table": {"k": "1"}}, "$.table['k']: expected an integer"),
        ({"surprise": 1}, "unexpected key 'surprise'"),
        ({"note": None}, "$.note: expected a string"),
    ],
)
def test_each_wrong_type_is_named_by_its_path(change: dict[str, Any], where: str) -> None:
    bad = {**GOOD, **change}
    found = errors(bad, Outer)
    assert found and any(where in e for e in found), found
    with pytest.raises(SchemaError, match="Outer"):
        validate(bad, Outer)


def test_a_missing_required_key_fails() -> None:
    bad = dict(GOOD)
    del bad["table"]
    assert errors(bad, Outer) == ["$: missing key 'table' of Outer"]


def test_open_keys_accepts_extra_keys_but_checks_named_ones() -> None:
    validate({"method": "m", "anything": [1, {"x": None}]}, Loose)
    assert errors({"method": 1, "anything": 1}, Loose) == ["$.method: expected a string, got int 1"]


def test_typescript_declares_every_reachable_interface_once() -> None:
    ts = typescript([Outer, Inner, Loose])
    assert ts.count("export interface Inner {") == 1
    assert ts.index("export interface Inner") < ts.index("export interface Outer")
    for line in (
        "  id: number;",
        "  ok: boolean;",
        "  kind: 'a' | 'b';",
        "  point: [number, number];",
        "  items: Inner[];",
        "  table: Record<string, number>;",
        "  extra: unknown;",
        "  note?: string;",
        "  value: number | NonFinite | null;",
        "  [key: string]: unknown;",
        "/** An inner object. */",
    ):
        assert line in ts.splitlines(), line


def test_unknown_annotations_are_refused() -> None:
    class Odd(TypedDict):
        when: set[int]

    with pytest.raises(TypeError, match="no rule"):
        typescript([Odd])
