"""The dashboard's web app: pages (each a module with its routes and a nav entry), imagery tiles, static assets,
and the security headers every response carries."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
# Everything from this server only: a page that tried to reach another host would be blocked by the browser.
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
TOKEN_HEADER = "x-geofoundry-token"
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


@dataclass
class Page:
    """One page of the dashboard: its path, its title in the nav, its HTML file in ``static/``, its routes, and
    values put in place of ``{{name}}`` in the HTML (a page's token)."""

    path: str
    title: str
    html: str
    routes: list[BaseRoute] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)


def refused_post(request: Request, token: str) -> str | None:
    """Why a request that changes something is refused, or None: it must carry the page's ``token`` (put in its
    HTML, which another site's page cannot read) in the ``X-Geofoundry-Token`` header, and an ``Origin`` header,
    when the browser sends one, must be this server's own."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        return f"origin {origin} is not this server's"
    if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), token):
        return f"missing or wrong {TOKEN_HEADER} header: reload the page"
    return None


class SecurityHeaders:
    """ASGI middleware: adds :data:`HEADERS` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def page_html(page: Page, pages: Sequence[Page]) -> str:
    """The page's HTML with the nav of all pages in place of ``{{nav}}``."""
    current = ' aria-current="page"'
    nav = "".join(f'<a href="{p.path}"{current if p is page else ""}>{p.title}</a>' for p in pages)
    html = (STATIC / page.html).read_text(encoding="utf-8").replace("{{nav}}", nav)
    for name, value in page.values.items():
        html = html.replace(f"{{{{{name}}}}}", value)
    return html


def create_app(pages: Sequence[Page], extra_routes: Sequence[BaseRoute] = (),
               allowed_hosts: Sequence[str] = LOOPBACK_HOSTS) -> Starlette:
    """The app: every page at its path (``/`` goes to the first), their routes, ``extra_routes`` (tiles) and
    ``/static``; requests whose Host header is not in ``allowed_hosts`` are refused (DNS rebinding)."""
    routes: list[BaseRoute] = [Route("/", lambda request: RedirectResponse(pages[0].path))]
    for page in pages:
        html = page_html(page, pages)
        routes.append(Route(page.path, lambda request, html=html: HTMLResponse(html)))
        routes.extend(page.routes)
    routes.extend(extra_routes)
    routes.append(Mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static"))
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
                  Middleware(SecurityHeaders), Middleware(GZipMiddleware, minimum_size=2048)]
    return Starlette(routes=routes, middleware=middleware)
