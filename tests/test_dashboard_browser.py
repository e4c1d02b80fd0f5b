"""The data page in a real browser (Playwright driving Debian's headless chromium) on two real DEV scenes: class,
context and drawn-geofence filters give the counts that `geofoundry select`'s preview gives for the same query;
"use this selection" writes params.yaml as `select --write` does; the map shows imagery (screenshot kept under
build/test-artifacts/); no request goes anywhere but the dashboard on 127.0.0.1.

Needs Debian's `chromium` (.ci/run installs it) and the playwright package (dev extra); never `playwright install`.
Without chromium the test is skipped on a workstation and fails under CI (env CI set).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from geofoundry.pipeline.params import load_params
from geofoundry.pipeline.select_query import preview
from geofoundry.select.changes import write_select

from .browser import ARTIFACTS, TIMEOUT_MS, chromium, launch, until
from .dashboard_server import project, serve_project


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory, small_raw):
    chromium()
    from playwright.sync_api import sync_playwright

    root = project(tmp_path_factory.mktemp("dash_browser") / "proj", small_raw)
    server = serve_project(root)
    local = urlsplit(server.url).netloc
    with sync_playwright() as pw:
        browser = launch(pw, local)
        page = browser.new_page(viewport={"width": 1500, "height": 920})
        page.set_default_timeout(TIMEOUT_MS)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/data")
        page.wait_for_selector("[data-total=blocks]")
        yield {"page": page, "root": root, "requests": requests, "errors": errors, "local": local}
        browser.close()
    server.stop()


def _settled(page) -> None:
    """Wait until the counts, blocks and yaml on screen are those of the page's current query."""
    page.wait_for_timeout(300)
    until(page, "window.geofoundryShown === JSON.stringify(window.geofoundryQuery())")


def _number(page, selector: str) -> float:
    return float(page.locator(selector).inner_text().replace(",", ""))


@pytest.mark.slow
def test_filters_match_select_preview_and_use_writes_params(browser_page):
    page, root = browser_page["page"], browser_page["root"]
    params = root / "params.yaml"
    original = params.read_text()

    # class: structure instead of structure/building (any level of the path)
    page.locator('[data-class="structure/building"]').uncheck()
    page.locator('[data-class="structure"]').check()
    # context: blocks with 5-90 % vegetation
    page.locator('[data-context="vegetation"]').check()
    page.locator('[data-context-min="vegetation"]').fill("0.05")
    page.locator('[data-context-min="vegetation"]').dispatch_event("change")
    page.locator('[data-context-max="vegetation"]').fill("0.9")
    page.locator('[data-context-max="vegetation"]').dispatch_event("change")
    # geofence: a polygon drawn on the map over most of the Nairobi scene
    page.select_option("#zoom-to", "nairobi_ke")
    page.wait_for_timeout(800)
    box = page.locator("#map").bounding_box()
    page.click("#draw-include")
    corners = [(0.08, 0.08), (0.7, 0.08), (0.7, 0.92), (0.08, 0.92), (0.08, 0.08)]
    for fx, fy in corners:
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.wait_for_timeout(250)
    until(page, "window.geofoundryQuery().geofence.include !== null")
    _settled(page)

    query = page.evaluate("window.geofoundryQuery()")
    assert query["classes"] == ["structure"] and query["contexts"] == {"vegetation": [0.05, 0.9]}
    assert query["geofence"]["include"].startswith("POLYGON")
    expected = preview(params, query)  # what `geofoundry select` prints for this query (a fresh scan)
    assert page.locator("#message").is_hidden(), page.locator("#message").inner_text()
    for split, m in expected["split"].items():
        for key in ("blocks", "scenes", "objects", "valid_km2", "positive_blocks"):
            assert _number(page, f'td[data-split="{split}"][data-key="{key}"]') == m[key], (split, key)
        assert _number(page, f'td[data-split="{split}"][data-class-count="structure"]') == m["classes"]["structure"]
    assert _number(page, "[data-total=blocks]") == expected["blocks"]
    assert _number(page, "[data-total=scenes]") == expected["scenes"]

    # the map with imagery, blocks and the fence: wait for imagery tiles, keep a screenshot
    until(page, "document.querySelectorAll('.imagery img.leaflet-tile-loaded').length >= 2")
    page.wait_for_timeout(1000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-data.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 50_000

    # use this selection: params.yaml's select: as `geofoundry select --write` writes it, nothing else
    try:
        page.click("#use")
        page.wait_for_selector("[data-written]")
        assert "dvc repro" in page.locator("#use-result").inner_text()
        same = root / "expected.yaml"
        same.write_text(original)
        write_select(same, query)
        assert params.read_text() == same.read_text()
        same.unlink()
        cfg = load_params(params).select
        assert cfg.classes == ["structure"] and cfg.contexts == {"vegetation": (0.05, 0.9)}
        assert cfg.geofence.include == query["geofence"]["include"]
        assert sorted(p.name for p in root.iterdir()) == ["data", "params.yaml"]
    finally:
        params.write_text(original)

    assert not browser_page["errors"], browser_page["errors"]
    foreign = [u for u in browser_page["requests"]
               if not u.startswith("data:") and urlsplit(u).netloc != browser_page["local"]]
    assert not foreign, foreign
    assert any("/tiles/scene/" in u for u in browser_page["requests"])
