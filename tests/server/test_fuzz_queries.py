"""Hypothesis over query strings (THREATS D6/D7): whatever the parameters, every API route
answers a typed 2xx/4xx with strict JSON, never a 500 or a stack trace."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import BASE, Logged, strict_loads
from starlette.testclient import TestClient

from deepscope.server.app import Settings, create_app

ROUTES = ["/api/runs", "/api/tags", "/api/scalars", "/api/histograms", "/api/images",
          "/api/blob", "/api/text", "/api/graph", "/api/graphs", "/api/graph/level",
          "/api/graph/search", "/api/events", "/api/attributions"]  # fmt: skip
NAMES = ["run", "tag", "id", "limit", "offset", "maxPoints", "startStep", "endStep", "q",
         "namespace", "model", "kind", "filter", "__class__", "path", "file"]  # fmt: skip
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
