"""The API description's viewer, served from this process only (issue 8): no Swagger UI or ReDoc from
a CDN, no script at all. A plain page, rendered on the server from the app's OpenAPI document, lists
every operation with its summary, unit of work, request body and answers, and links the JSON document
for tools. It is mounted only where docs are enabled (`Settings.api_docs_enabled`: on in dev and test,
off in prod unless `HRK_API_DOCS=1`), and it runs under the site's strict CSP like every other page.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

_METHODS = ("get", "post", "put", "patch", "delete")


def _ref_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    ref = schema.get("$ref") or next(
        (s.get("$ref") for s in schema.get("anyOf", []) + schema.get("allOf", []) if "$ref" in s), None
    )
    return str(ref).rsplit("/", 1)[-1] if ref else str(schema.get("type", ""))


def render(openapi: dict[str, Any], openapi_url: str | None) -> str:
    info = openapi.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    rows: list[str] = []
    for path, item in openapi.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            body: dict[str, Any] = op.get("requestBody", {}).get("content", {})
            body_schema = next(iter(body.values())).get("schema") if body else None
            answers = ", ".join(sorted(op.get("responses", {})))
            rows.append(
                "<tr>"
                f"<td><code>{method.upper()}</code></td>"
                f"<td><code>{escape(path)}</code></td>"
                f"<td>{escape(str(op.get('summary', '')))}</td>"
                f"<td>{escape(str(op.get('x-unit-of-work', '')))}</td>"
                f"<td>{escape(_ref_name(body_schema))}</td>"
                f"<td>{escape(answers)}</td>"
                "</tr>"
            )
    link = (
        f'<p>The machine-readable description: <a href="{escape(openapi_url)}">{escape(openapi_url)}</a></p>'
        if openapi_url
        else ""
    )
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head><body>"
        f"<h1>{title}</h1>{link}"
        "<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th><th>Unit of work</th>"
        "<th>Request body</th><th>Answers</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>"
    )


def install(app: FastAPI, path: str) -> None:
    """Serve the viewer at `path` and record it as the app's docs URL (tools skip it as no operation)."""
    page: list[str] = []

    @app.get(path, include_in_schema=False, response_class=HTMLResponse)
    async def api_docs() -> HTMLResponse:
        if not page:  # the description is fixed once the app is built
            page.append(render(app.openapi(), app.openapi_url))
        return HTMLResponse(page[0])

    app.docs_url = path
