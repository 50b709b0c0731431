"""Hypothesis over query strings (THREATS D6/D7): whatever the parameters, every API route
answers a typed 2xx/4xx with strict JSON, never a 500 or a stack trace."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import BASE, Logged, strict_loads
from starlette.testclient import TestClient

from deepscope.server.app import Settings, create_app

ROUTES = ["/api/runs", "/api/tags", "/api/scalars", "/api/histograms", "/api/images",
          "/api/blob", "/api/text", "/api/graph", "/api/graphs", "/api/graph/level",
          "/api/graph/search", "/api/events", "/api/attributions", "/api/views",
          "/api/views/attribution", "/api/views/attribution/array", "/api/views/nope/array",
          "/api/views/%2e%2e"]  # fmt: skip
NAMES = ["run", "tag", "id", "limit", "offset", "maxPoints", "startStep", "endStep", "q",
         "namespace", "model", "kind", "filter", "__class__", "path", "file", "step",
         "maxSize"]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        [
            "alpha",
            "beta",
            "loss",
            "model",
            "1",
            "0",
            "-1",
            "1e9",
            "abc",
            "",
            "../../etc/passwd",
            "__import__('os')",
            "%2e%2e",
            "NaN",
            "head/fc",
            "99999999999999999999999",
            "__class__.__init__",
            "--5",
            "+5",
            "5-",
            "- 5",
            "1_000",
            "\u0663",
            "\u00b2",
            "0x10",
            " 7 ",
            "-",
            "9" * 40,
        ]
    ),  # fmt: skip
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from(ROUTES),
    query=st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=5),
)
def test_any_query_gets_a_typed_answer(
    logged: Logged, route: str, query: list[tuple[str, str]]
) -> None:
    app = create_app(Settings(logdir=logged.logdir))
    with TestClient(app, base_url=BASE, raise_server_exceptions=True) as client:
        response = client.get(route + "?" + urlencode(query))
    assert response.status_code < 500, (route, query, response.text)
    body = strict_loads(response.text)
    if response.status_code >= 400:
        assert set(body) == {"error"} and body["error"]["message"]
        assert "Traceback" not in response.text


INTEGER_PARAMS = [("/api/runs", "offset"), ("/api/runs", "limit"),
                  ("/api/scalars?run=alpha&tag=loss", "maxPoints"),
                  ("/api/scalars?run=alpha&tag=loss", "startStep"),
                  ("/api/scalars?run=alpha&tag=loss", "endStep"),
                  ("/api/events?run=alpha", "limit")]  # fmt: skip
BAD_INTEGERS = ["--5", "-+5", "+5", "5-", "1_000", "\u0663", "\u00b2", "0x10", "1e3", "1.0",
                "-", "--", "9" * 25, "5 5", "\uff15"]  # fmt: skip


@pytest.mark.parametrize(("route", "name"), INTEGER_PARAMS)
def test_D6_integer_params_parse_strictly(client: TestClient, route: str, name: str) -> None:
    sep = "&" if "?" in route else "?"
    for raw in BAD_INTEGERS:
        response = client.get(route + sep + urlencode({name: raw}))
        assert response.status_code == 400, (route, name, raw, response.status_code)
        assert "integer" in strict_loads(response.text)["error"]["message"]
    assert client.get(route + sep + urlencode({name: " 7 "})).status_code == 200
