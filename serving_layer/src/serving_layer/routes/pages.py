"""The dashboard shell at `/`, the reconciliation page at `/reconciliation`, their static files
(with the vendored chart library) and Swagger UI at `/docs`, all from files shipped in the package
(no CDN); the pages' data calls carry the token, so these are open."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DASHBOARD_DIR: Final = Path(__file__).parent.with_name("dashboard")
SWAGGER_DIR: Final = Path(__file__).parent.with_name("swagger_ui")
INDEX_HTML: Final = (DASHBOARD_DIR / "index.html").read_bytes()
RECONCILIATION_HTML: Final = (DASHBOARD_DIR / "reconciliation.html").read_bytes()
DASHBOARD_HEADERS: Final = {
    "Cache-Control": "no-cache",
    # Only the page's own files, no inline script, no framing: a stolen-token XSS has nowhere to start.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def dashboard() -> Response:
    return HTMLResponse(INDEX_HTML, headers=DASHBOARD_HEADERS)


@router.get("/reconciliation")
async def reconciliation_page() -> Response:
    """Speed against batch per hour of a date (`#date=YYYY-MM-DD`), drawn from /v1/reconciliation."""
    return HTMLResponse(RECONCILIATION_HTML, headers=DASHBOARD_HEADERS)


@router.get("/docs")
async def docs(request: Request) -> Response:
    app: FastAPI = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - docs",
        swagger_js_url="/swagger/swagger-ui-bundle.js",
        swagger_css_url="/swagger/swagger-ui.css",
        swagger_favicon_url="/swagger/favicon-32x32.png",
    )


def mount_static(app: FastAPI) -> None:
    """The pages' files (and vendor/: Apache ECharts) under /static, the vendored Swagger UI under /swagger."""
    app.mount("/static", StaticFiles(directory=DASHBOARD_DIR), name="static")
    app.mount("/swagger", StaticFiles(directory=SWAGGER_DIR), name="swagger")
