"""Schemathesis against the service's own OpenAPI, over HTTP to a real `lambda-serve`.

Requests are generated from /openapi.json by schemathesis' strategies in both modes: positive
(any value the schema allows: every parameter is a free string, so this is a fuzzer of the
query validation) and negative (values and shapes the schema forbids). Every answer must be
below 500, and every /v1 operation must answer 401 to the same requests without a valid token.
(Schemathesis' pytest loader `from_fixture` fails with this pytest version and its requests
transport with this urllib3, so its strategies are driven with hypothesis and its serialised
requests are sent with httpx.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import LONG
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.openapi.loaders import from_url
from schemathesis.schemas import APIOperation
from served import TOKEN, Served

pytestmark = [pytest.mark.faults, pytest.mark.integration]

EXAMPLES = 400 if LONG else 80
NO_TOKEN: tuple[dict[str, str], ...] = (
    {},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Basic {TOKEN}"},
)


def operations(served: Served) -> Iterator[APIOperation[Any, Any, Any, Any]]:
    schema = from_url(f"{served.base_url}/openapi.json")
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        yield result.ok()


def send(case: Case[Any], served: Served, headers: dict[str, str]) -> httpx.Response:
    """The generated request as schemathesis serialises it, sent over a real socket."""
    kwargs = case.as_transport_kwargs(base_url=served.base_url)
    sent = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
    sent.update(headers)
    return httpx.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=sent,
        cookies=kwargs.get("cookies"),
        timeout=30,
    )


def describe(case: Case[Any], status: int, text: str) -> str:
    return f"{case.method} {case.formatted_path} query={case.query} headers={case.headers} -> {status}: {text[:300]}"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_on_any_generated_request(served: Served, mode: GenerationMode) -> None:
    ops = list(operations(served))
    assert {op.path for op in ops} >= {"/v1/revenue/hourly", "/v1/status", "/healthz", "/readyz", "/metrics"}
    for op in ops:
        if mode is GenerationMode.NEGATIVE and not len(op.query):
            continue  # nothing to violate in an operation without parameters

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case: Case[Any]) -> None:
            response = send(case, served, {"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code < 500, describe(case, response.status_code, response.text)
            if case.operation.path.startswith("/v1/") and response.status_code == 400:
                doc = response.json()
                assert doc["error"] == "bad_request" and doc["detail"], doc  # a message naming the problem

        run()


def test_v1_refuses_generated_requests_without_a_valid_token(served: Served) -> None:
    ops = [op for op in operations(served) if op.path.startswith("/v1/")]
    assert ops
    for op in ops:

        @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE))
        @settings(
            max_examples=EXAMPLES // 4, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case: Case[Any]) -> None:
            for headers in NO_TOKEN:
                response = send(case, served, headers)
                assert response.status_code == 401, describe(case, response.status_code, response.text)
                assert response.headers.get("www-authenticate") == "Bearer"
                assert response.json()["error"] == "unauthorized"

        run()
