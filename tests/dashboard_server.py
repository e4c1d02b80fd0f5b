"""A dashboard served by uvicorn on 127.0.0.1 (a free port) in a thread, over a throw-away project, for tests."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .conftest import ROOT


def project(dst: Path, raw: Path) -> Path:
    """params.yaml of this repo and ``raw`` as data/raw: what `geofoundry dashboard` runs in."""
    (dst / "data").mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", dst / "params.yaml")
    shutil.copytree(raw, dst / "data" / "raw")
    return dst


class Served:
    """``app`` served in a thread until :meth:`stop`; ``url`` is its base URL."""

    def __init__(self, app):
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return
            time.sleep(0.05)
        raise RuntimeError("the dashboard did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_project(root: Path, basemap: Path | None = None, warm: bool = False) -> Served:
    """The app `geofoundry dashboard` builds for the project at ``root``."""
    from geofoundry.pipeline.dashboard_cli import build_app

    return Served(build_app(root / "params.yaml", basemap=basemap, warm=warm))


def call(url: str, body: bytes | dict | None = None, headers: dict | None = None) -> tuple[int, dict | bytes, str]:
    """(status, JSON or bytes, content type) of a GET, or of a POST when ``body`` is given (a dict: as JSON)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=120) as res:
            status, raw, kind = res.status, res.read(), res.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, raw, kind = e.code, e.read(), e.headers.get("content-type", "")
    return status, (json.loads(raw) if "json" in kind and raw else raw), kind


def page_token(url: str, page: str) -> str:
    """The token a page puts in its HTML, which requests that change something carry."""
    status, html, _ = call(f"{url}{page}")
    assert status == 200
    return re.search(rb'name="geofoundry-token" content="([^"]+)"', html).group(1).decode()


def use_selection(url: str, query: dict, headers: dict | None = None) -> tuple[int, dict | bytes, str]:
    """The data page's "use this selection", as the page sends it (its token unless ``headers`` say otherwise)."""
    return call(f"{url}/api/data/use", {"select": query},
                {"content-type": "application/json",
                 **({"x-geofoundry-token": page_token(url, "/data")} if headers is None else headers)})
