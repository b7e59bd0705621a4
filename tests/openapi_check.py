"""Every response the tests see is checked against the app's own OpenAPI description, as Zulip's test
client does (`validate_against_openapi_schema`): the documented API must be the true one.

For a request to a path under `/api/`:
- the operation (path template + method) must be documented, or the answer must be the router's own
  404 (no such path) / 405 (no such method), with the API.md error body;
- the status must be documented for that operation (the app documents its error statuses once, with
  the error body: `kit/errors.py`, `error_responses`);
- the content type must be one the operation documents for that status, and a status documented
  without content must come without a body;
- a JSON body must validate against the documented schema, `$ref`s resolved into the components.
  As in Zulip, an object must not carry a property its schema does not declare: a schema with
  `properties` and no `additionalProperties` is checked as closed.
Other content types (zip, files, html) are checked for their type only.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jsonschema_rs
from fastapi.testclient import TestClient

Spec = dict[str, Any]


class OpenAPIMismatch(AssertionError):
    """A response the OpenAPI description does not allow."""


def _closed(schema: Any) -> Any:
    """A copy of `schema` in which every object with declared properties admits no other property."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out and "patternProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


class OpenAPIChecker:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.components = _closed(copy.deepcopy(spec.get("components", {})))
        # Most specific first: a literal segment beats a parameter (`/sessions/current` vs `/{id}`).
        templates = sorted(spec["paths"], key=lambda t: (t.count("{"), -len(t)))
        self.templates = [(t, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", t) + "$")) for t in templates]
        self._validators: dict[str, Any] = {}

    def _validator(self, key: str, schema: dict[str, Any]) -> Any:
        if key not in self._validators:
            self._validators[key] = jsonschema_rs.validator_for(
                {**_closed(schema), "components": self.components}
            )
        return self._validators[key]

    def _error_body(self, where: str, response: httpx.Response) -> None:
        schema = {"$ref": "#/components/schemas/ErrorBody"}
        self._json(where, response, "ErrorBody", schema)

    def _json(self, where: str, response: httpx.Response, key: str, schema: dict[str, Any]) -> None:
        try:
            body = response.json()
        except json.JSONDecodeError:
            raise OpenAPIMismatch(f"{where}: the body is not JSON: {response.text[:200]!r}") from None
        errors = [
            f"at /{'/'.join(map(str, e.instance_path))}: {e.message}"
            for e in self._validator(key, schema).iter_errors(body)
        ]
        if errors:
            raise OpenAPIMismatch(
                f"{where}: the body does not match its documented schema:\n  "
                + "\n  ".join(errors[:10])
                + f"\nbody: {json.dumps(body, ensure_ascii=False)[:500]}"
            )

    def check(self, response: httpx.Response) -> None:
        request = response.request
        path = request.url.path
        if not path.startswith("/api/"):
            return
        method = request.method.lower()
        status = response.status_code
        where = f"{request.method} {path} → {status}"
        matches = [t for t, rx in self.templates if rx.match(path)]
        if not matches:
            if status != 404:
                raise OpenAPIMismatch(f"{where}: no documented operation has this path")
            return self._error_body(where, response)
        item = next((self.spec["paths"][t] for t in matches if method in self.spec["paths"][t]), None)
        if item is None:
            if status not in (404, 405):  # the router: no such path / method
                raise OpenAPIMismatch(f"{where}: the method is not documented for {matches[0]}")
            return self._error_body(where, response)
        template = next(t for t in matches if method in self.spec["paths"][t])
        responses = item[method]["responses"]
        documented = responses.get(str(status)) or responses.get(f"{status // 100}XX")
        documented = documented or responses.get("default")
        if documented is None:
            raise OpenAPIMismatch(
                f"{where}: status {status} is not documented for {request.method} {template} "
                f"(documented: {', '.join(sorted(responses))})"
            )
        content = documented.get("content") or {}
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content:
            if response.content:
                raise OpenAPIMismatch(f"{where}: a body ({ctype or 'no type'}) where none is documented")
            return None
        if ctype not in content:
            raise OpenAPIMismatch(
                f"{where}: content type {ctype or '(none)'!r} is not documented ({', '.join(content)})"
            )
        if ctype == "application/json" or ctype.endswith("+json"):
            schema = content[ctype].get("schema", {})
            self._json(where, response, f"{method} {template} {status} {ctype}", schema)
        return None


class OpenAPIClient(TestClient):
    """TestClient whose every response to an `/api/` path is checked against the app's OpenAPI."""

    _unchecked_reason: str | None = None
    _checker: OpenAPIChecker | None = None

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        # The description itself and its viewer are no operations of the API.
        own = {
            getattr(self.app, a, None) for a in ("openapi_url", "docs_url", "swagger_ui_oauth2_redirect_url")
        }
        if self._unchecked_reason is None and response.request.url.path not in own:
            if self._checker is None:  # the app's description, as served at /api/openapi.json
                self._checker = OpenAPIChecker(self.app.openapi())
            self._checker.check(response)
        return response

    @contextmanager
    def unchecked(self, reason: str) -> Iterator[None]:
        """Skip the check for a deliberate, undocumented case; `reason` says why (it is the comment)."""
        assert reason.strip(), "say why the response may differ from the documented API"
        saved, self._unchecked_reason = self._unchecked_reason, reason
        try:
            yield
        finally:
            self._unchecked_reason = saved
