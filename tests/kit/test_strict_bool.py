"""One strict boolean type in every request body (issue 8): `kit/schemas.Flag`. JSON `true`/`false`
only; "true", "yes", 1 and 0 are 422, whichever route takes them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter

from conftest import auth, sign_up
from huirongke.kit.schemas import Flag
from privacy.privacy_support import assert_error

LAX = ["true", "yes", "on", 1, 0, "1", "false"]


def _routes(routes: Any) -> Iterator[Any]:
    for r in routes:
        if hasattr(r, "original_router"):
            yield from _routes(r.original_router.routes)
        else:
            yield r


def _bool_schemas(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every `bool` in a pydantic core schema, with a path to say where it is."""
    if isinstance(node, dict):
        if node.get("type") == "bool":
            yield where, node
        for key, value in node.items():
            yield from _bool_schemas(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _bool_schemas(value, f"{where}[{i}]")


def _core_schema(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__pydantic_core_schema__
    return TypeAdapter(annotation).core_schema


def test_flag_refuses_everything_but_json_booleans():
    adapter = TypeAdapter(Flag)
    assert adapter.validate_python(True) is True
    assert adapter.validate_json("false") is False
    for value in LAX:
        with pytest.raises(ValueError):
            adapter.validate_python(value)


def test_every_boolean_of_every_request_body_is_strict(client):
    bodies = 0
    lax: list[str] = []
    for route in _routes(client.app.routes):
        if not isinstance(route, APIRoute):
            continue
        for param in route.dependant.body_params:
            bodies += 1
            where = f"{sorted(route.methods)[0]} {route.path} {param.name}"
            for path, schema in _bool_schemas(_core_schema(param.field_info.annotation), where):
                if schema.get("strict") is not True:
                    lax.append(path)
    assert bodies > 15  # the walk found the request bodies
    assert lax == []


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_switches_and_consents_refuse_lax_booleans(client, value):
    token, _ = sign_up(client)
    h = auth(token)
    r = client.patch("/api/v1/me/privacy-settings", json={"show_phone": value}, headers=h)
    assert_error(r, 422)
    r = client.put("/api/v1/privacy/consents/personalization", json={"granted": value}, headers=h)
    assert_error(r, 422)
    settings = client.get("/api/v1/me/privacy-settings", headers=h).json()
    assert settings == {"show_phone": False, "show_region": False, "personalized_recommendations": False}
