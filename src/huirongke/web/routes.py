"""The web client: one HTML shell; everything else is static JS over the JSON API."""

from __future__ import annotations

from importlib.metadata import version as package_version
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def shell(request: Request) -> HTMLResponse:
    # The shell is the same for everyone and holds no data: the policy dialog runs before any API call.
    settings = request.app.state.ctx.settings
    context = {
        "env": settings.env,
        "hotline": settings.hotline,
        "company_name": settings.company_name,
        "cooling_off_days": settings.cancellation_cooling_off_days,
        "version": package_version("huirongke"),  # 设置 → 关于 shows it
    }
    return templates.TemplateResponse(request, "index.html", context)
