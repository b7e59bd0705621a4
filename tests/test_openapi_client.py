"""The test client's OpenAPI check (tests/openapi_check.py) raises on any response the description
does not allow, and only then."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from huirongke.kit.errors import COMMON_ERROR_STATUSES, error_responses, install_error_handlers
from openapi_check import OpenAPIClient, OpenAPIMismatch


class Thing(BaseModel):
    id: str
    count: int


def probe_app() -> FastAPI:
    app = FastAPI(responses=error_responses(*COMMON_ERROR_STATUSES))
    install_error_handlers(app)

    @app.get("/api/things/{thing_id}", response_model=Thing)
    def thing(thing_id: str) -> Any:
        shapes: dict[str, Any] = {
            "good": {"id": "good", "count": 1},
            "wrong-type": {"id": "x", "count": "many"},
            "missing": {"id": "x"},
            "extra": {"id": "x", "count": 1, "phone": "13800138000"},
        }
        if thing_id == "teapot":
            return JSONResponse({"id": "x", "count": 1}, status_code=418)
        if thing_id == "bad-error":
            return JSONResponse({"detail": "not the API.md body"}, status_code=404)
        if thing_id == "text":
            return Response("plain", media_type="text/plain")
        return JSONResponse(shapes[thing_id])  # bypasses the response model, as a hand-built answer can

    @app.delete("/api/things/{thing_id}", status_code=204)
    def delete(thing_id: str) -> Response:
        return Response(b"{}" if thing_id == "body" else None, status_code=204)

    @app.get("/api/hidden", include_in_schema=False)
    def hidden() -> dict[str, bool]:
        return {"undocumented": True}

    @app.get("/outside", include_in_schema=False)
    def outside() -> JSONResponse:
        return JSONResponse({"anything": True}, status_code=418)

    return app


@pytest.fixture
def probe():
    with OpenAPIClient(probe_app()) as c:
        yield c


def test_a_documented_answer_passes(probe):
    assert probe.get("/api/things/good").json() == {"id": "good", "count": 1}
    assert probe.delete("/api/things/x").status_code == 204
    assert probe.get("/outside").status_code == 418  # only /api/ paths are checked


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("/api/things/wrong-type", "is not of type"),
        ("/api/things/missing", "is a required property"),
        ("/api/things/extra", "Additional properties"),
        ("/api/things/teapot", "status 418 is not documented"),
        ("/api/things/bad-error", "does not match its documented schema"),
        ("/api/things/text", "content type 'text/plain' is not documented"),
        ("/api/hidden", "no documented operation"),
    ],
)
def test_an_undocumented_answer_raises(probe, path, complaint):
    with pytest.raises(OpenAPIMismatch, match=complaint):
        probe.get(path)


def test_a_body_where_none_is_documented_raises(probe):
    with pytest.raises(OpenAPIMismatch, match="a body"):
        probe.delete("/api/things/body")


def test_the_router_404_and_405_carry_the_error_body(probe):
    assert probe.get("/api/v9/nothing-here").status_code == 404
    assert probe.put("/api/things/good").status_code == 405


def test_an_explicit_opt_out_skips_the_check_only_inside_it(probe):
    with probe.unchecked("the probe answers an undeclared shape on purpose"):
        assert probe.get("/api/things/extra").status_code == 200
    with pytest.raises(OpenAPIMismatch):
        probe.get("/api/things/extra")


def test_the_app_documents_the_error_body_for_its_errors(client):
    # The app's own description: a validation error is documented with the API.md body, not
    # FastAPI's default `HTTPValidationError`, and an unknown token's 401 passes the check.
    spec = client.app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    response = spec["paths"]["/api/v1/auth/sms-codes"]["post"]["responses"]["422"]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
