"""The web client: one HTML shell; everything else is static JS over the JSON API."""

from __future__ import annotations

from importlib.metadata import version as package_version
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from huirongke.web.assets import StaticAssets

HERE = Path(__file__).parent
VERSION = package_version("huirongke")  # read once: the installed package's version
STATIC_DIR = HERE / "static"
ENTRY_MODULE = "js/app.js"
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def shell(request: Request) -> HTMLResponse:
    # The shell is the same for everyone and holds no data: the policy dialog runs before any API call.
    # It names the fingerprinted static URLs, so it is revalidated on every load (`no-cache`): a new
    # deploy is picked up at once, while the files it names are cached for a year.
    settings = request.app.state.ctx.settings
    assets: StaticAssets = request.app.state.assets
    context = {
        "env": settings.env,
        "hotline": settings.hotline,
        "company_name": settings.company_name,
        "cooling_off_days": settings.cancellation_cooling_off_days,
        "version": VERSION,  # 设置 → 关于 shows it
        "static": assets.url,
    }
    context["script"], context["modules"] = assets.script(ENTRY_MODULE)
    response = templates.TemplateResponse(request, "index.html", context)
    response.headers["Cache-Control"] = "no-cache"
    return response
