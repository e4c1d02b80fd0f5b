"""A comparison of two experiments as one static HTML file that opens offline: Leaflet, the page's stylesheet and
its comparison view inlined, the data as JSON, each scene's imagery as an inline PNG. Its content security policy
lets it load nothing from anywhere (no server, no network)."""

from __future__ import annotations

import base64
import html
import json

from .app import STATIC

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")
STYLES = ("vendor/leaflet/leaflet.css", "dashboard.css")
SCRIPTS = ("vendor/leaflet/leaflet.js", "dom.js", "compare_view.js")


def _inline_script(text: str) -> str:
    return text.replace("</script", "<\\/script")


def report_html(sides: list[dict], diff: dict, imagery: dict[str, dict], when: str) -> str:
    """The report of ``sides`` (A and B: row, detections, plots, as the compare page gets them), their metric
    ``diff`` and ``imagery`` (scene → PNG bytes and lon/lat bounds)."""
    pictures = {scene: {"png": "data:image/png;base64," + base64.b64encode(p["png"]).decode("ascii"),
                        "bounds": p["bounds"]} for scene, p in imagery.items()}
    data = json.dumps({"sides": sides, "diff": diff, "imagery": pictures}, separators=(",", ":"))
    a, b = (html.escape(f"{s['row']['name']} ({s['row']['rev']})") for s in sides)
    styles = "\n".join((STATIC / name).read_text(encoding="utf-8") for name in STYLES)
    scripts = "\n".join(f"<script>{_inline_script((STATIC / name).read_text(encoding='utf-8'))}</script>"
                        for name in SCRIPTS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>geofoundry · {a} vs {b}</title>
<link rel="icon" href="data:,">
<style>{styles}</style>
</head>
<body>
<header><span class="brand">geofoundry</span><span>comparison: A = {a}, B = {b}</span>
<span class="status">saved {html.escape(when)}</span></header>
<main class="report"><div id="comparison" class="comparison"></div></main>
<script type="application/json" id="report-data">{_inline_script(data)}</script>
{scripts}
</body>
</html>
"""
