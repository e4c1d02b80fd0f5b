"""Serve the dashboard with uvicorn, on a loopback address unless a network bind is asked for explicitly."""

from __future__ import annotations

import ipaddress

from ..errors import GeofoundryError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback ``host`` unless ``allow_remote``: the dashboard serves the dataset's imagery and
    writes params.yaml, with no login."""
    if not is_loopback(host) and not allow_remote:
        raise GeofoundryError(f"--host {host}: not a loopback address. The dashboard has no login and can write "
                              "params.yaml; serve it to a network only on purpose, with --allow-remote")


def serve(app, host: str = "127.0.0.1", port: int = 8765, allow_remote: bool = False) -> None:
    """Run ``app`` until interrupted, after printing its URL."""
    import uvicorn

    check_bind(host, allow_remote)
    shown = f"[{host}]" if ":" in host else host
    print(f"geofoundry dashboard: http://{shown}:{port}/  (Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
