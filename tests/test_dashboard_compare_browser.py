"""The compare page in a real browser (Playwright driving Debian's headless chromium) on a DVC repository with two
tiny real experiments: the table lists them with their metrics; side by side, both detection layers load, with the
TP/FP/FN counts of each experiment's reports/evaluate.json, on synchronised maps; "save as report" writes a page
that opens offline with no request; promotion creates the GTO tag, and `dvc artifacts get` then fetches that bundle
from the DVC remote and it predicts. No request goes anywhere but the dashboard on 127.0.0.1. Screenshots are kept
under build/test-artifacts/.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from PIL import Image

from .browser import ARTIFACTS, TIMEOUT_MS, chromium, launch, until
from .compare_repo import at, rev
from .dashboard_server import serve_project
from .project import sh

pytestmark = pytest.mark.slow
OUTCOMES = ("tp", "fp", "fn")
SMALL_WIDTH = 900  # px of the reduced screenshot (docs/img/dashboard-compare.png is a copy of it)


@pytest.fixture(scope="module")
def browser(compare_repo):
    chromium()
    from playwright.sync_api import sync_playwright

    server = serve_project(compare_repo["repo"], warm=True)
    local = urlsplit(server.url).netloc
    with sync_playwright() as pw:
        chrome = launch(pw, local)
        page = chrome.new_page(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/compare")
        page.wait_for_selector("body[data-table=ready]")
        yield {"chrome": chrome, "page": page, "requests": requests, "errors": errors, "local": local, **compare_repo}
        chrome.close()
    server.stop()


def _report(browser, sha: str) -> dict:
    return at(browser["repo"], sha, "reports/evaluate.json")["object"]


def test_table_lists_both_experiments_with_their_metrics(browser):
    page, revs = browser["page"], browser["revs"]
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=browser["repo"]).stdout)
    runs = {e["name"]: e["revs"][0] for base in shown for e in base.get("experiments") or []}
    for name in ("iou03", "thr04"):
        row = page.locator(f'tr[data-row="{revs[name]}"]')
        assert row.locator('td[data-col="name"]').inner_text().startswith(name)
        f1 = runs[name]["data"]["metrics"]["metrics/evaluate.json"]["data"]["object"]["f1"]
        cell = row.locator('td[data-col="m:metrics/evaluate.json:object.f1"]').inner_text()
        assert abs(float(cell) - f1) <= 5e-6, (name, cell, f1)
    page.fill("#filter", "evaluate.iou_threshold<0.5")
    assert page.locator("tr[data-row]").count() == 1 and page.locator(f'tr[data-row="{revs["iou03"]}"]').count() == 1
    page.fill("#filter", "")
    page.click('th[data-sort="m:metrics/evaluate.json:pixel.iou"]')  # descending first
    cells = page.locator('td[data-col="m:metrics/evaluate.json:pixel.iou"]').all_inner_texts()
    values = [float(c) for c in cells if c != "–"]
    assert values == sorted(values, reverse=True) and len(values) >= 4


def compare(page, revs: dict, a: str, b: str) -> None:
    """Pick rows ``a`` and ``b`` of the table and show them side by side (each test picks its own: pytest-xdist
    may run this module's tests in another order)."""
    page.check(f'input[data-pick="a"][value="{revs[a]}"]')
    page.check(f'input[data-pick="b"][value="{revs[b]}"]')
    page.click("#compare")
    page.wait_for_selector(f'#comparison[data-shown="{revs[a]},{revs[b]}"]')


def test_side_by_side_shows_both_detection_layers_with_evaluate_counts(browser):
    page, revs = browser["page"], browser["revs"]
    compare(page, revs, "iou03", "thr04")
    for side, name in (("a", "iou03"), ("b", "thr04")):
        report = _report(browser, revs[name])
        counts = {o: int(page.locator(f'[data-count="{o}"][data-side="{side}"]').inner_text()) for o in OUTCOMES}
        assert counts == {o: report[o] for o in OUTCOMES}, name
        box = f'.cmp-map[data-map="{side}"]'
        assert int(page.get_attribute(box, "data-features")) == sum(counts.values())
        until(page, f"document.querySelectorAll('{box} .leaflet-overlay-pane canvas').length === 1")
        until(page, f"document.querySelectorAll('{box} img.leaflet-tile-loaded').length >= 1")
        assert page.locator(f'[data-side="{side}"] [data-list="fp"] li').count() == min(counts["fp"], 300)
        assert page.locator(f'[data-side="{side}"] [data-list="fn"] li').count() == min(counts["fn"], 300)
    assert page.locator('tr[data-metric="metrics/evaluate.json:object.f1"]').count() == 1
    assert page.locator('tr[data-param="params.yaml:evaluate.iou_threshold"]').count() == 1
    assert page.locator('svg[data-plot="context"] rect[data-side="b"]').count() >= 1

    # the page as it first shows them (the first scene), the changed metrics only: the screenshot of the docs
    until(page, "document.querySelectorAll('.cmp-map img.leaflet-tile-loaded').length >= 2")
    page.check("#diff-changed")
    page.set_viewport_size({"width": 1500, "height": 1500})
    page.evaluate("document.querySelector('main').scrollTo(0, 0)")
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-compare.png"
    page.screenshot(path=str(shot))
    page.set_viewport_size({"width": 1500, "height": 1000})
    with Image.open(shot) as img:
        small = img.convert("RGB").resize((SMALL_WIDTH, round(img.height * SMALL_WIDTH / img.width)), Image.LANCZOS)
        small = small.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(ARTIFACTS / "dashboard-compare-small.png", optimize=True)
    assert shot.stat().st_size > 100_000

    # a click on a false positive zooms to it; the other map follows
    before = page.evaluate("window.geofoundryMaps[0].getZoom()")
    page.locator('[data-side="a"] [data-list="fp"] button').first.click()
    page.wait_for_timeout(500)
    views = page.evaluate("window.geofoundryMaps.map((m) => [m.getCenter().lat, m.getCenter().lng, m.getZoom()])")
    assert views[1][2] != before and views[0] == pytest.approx(views[1], abs=1e-9)
    until(page, "document.querySelectorAll('.cmp-map img.leaflet-tile-loaded').length >= 2")
    page.wait_for_timeout(1000)
    page.evaluate("document.querySelector('.cmp-sides').scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / "dashboard-compare-maps.png"))


def test_saved_report_opens_offline_with_no_request(browser, tmp_path):
    page, revs = browser["page"], browser["revs"]
    compare(page, revs, "iou03", "thr04")
    with page.expect_download() as download:
        page.click("#save-report")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == "compare-iou03-vs-thr04.html"
    context = browser["chrome"].new_context(offline=True, viewport={"width": 1400, "height": 1000})
    offline = context.new_page()
    seen: list[str] = []
    offline.on("request", lambda r: seen.append(r.url))
    errors: list[str] = []
    offline.on("pageerror", lambda e: errors.append(str(e)))
    offline.goto(path.as_uri())
    offline.wait_for_selector(f'#comparison[data-shown="{revs["iou03"]},{revs["thr04"]}"]')
    for side, name in (("a", "iou03"), ("b", "thr04")):
        report = _report(browser, revs[name])
        for o in OUTCOMES:
            assert int(offline.locator(f'[data-count="{o}"][data-side="{side}"]').inner_text()) == report[o]
        until(offline, f"document.querySelectorAll('.cmp-map[data-map=\"{side}\"] img.leaflet-image-layer')"
                       ".length >= 1")
    offline.wait_for_timeout(500)
    offline.screenshot(path=str(ARTIFACTS / "dashboard-compare-report.png"))
    assert seen == [path.as_uri()] and not errors, (seen, errors)
    context.close()


def test_promote_tags_and_dvc_artifacts_get_delivers_the_bundle(browser, tmp_path, small_raw):
    from geofoundry.bundle.reader import open_bundle
    from geofoundry.delivery.predict import predict_bundle

    page, repo, revs = browser["page"], browser["repo"], browser["revs"]
    page.select_option("#promote-rev", revs["thr04"])
    page.fill("#promote-version", "v1.0.0")
    page.click("#promote-check")
    page.wait_for_selector("#promote-confirm")
    commands = page.locator("pre[data-commands]").inner_text()
    assert f"gto register detector {revs['thr04']} --version v1.0.0" in commands
    assert "dvc artifacts get <this repository> detector --rev v1.0.0" in commands
    page.click("#promote-confirm")
    page.wait_for_selector('[data-registered="detector@v1.0.0"]')
    assert rev(repo, "detector@v1.0.0^{commit}") == revs["thr04"]
    assert "detector@v1.0.0" in page.locator(f'tr[data-row="{revs["thr04"]}"] td[data-col="name"]').inner_text()

    # delivered from a clone that has no DVC cache: the bundle comes from the remote
    sh("git", "clone", "-q", str(repo), str(tmp_path / "site"), cwd=tmp_path)
    (tmp_path / "client").mkdir()
    sh("dvc", "artifacts", "get", str(tmp_path / "site"), "detector", "--rev", "v1.0.0", "-o", "bundle",
       cwd=tmp_path / "client")
    digest = at(repo, revs["thr04"], "metrics/export.json")["bundle"]["sha256sums_sha256"]
    bundle = open_bundle(tmp_path / "client" / "bundle", digest)
    scene = small_raw / "images" / "kampala_ug_z19.tif"
    result = predict_bundle(bundle, [scene], tmp_path / "out")
    assert result["scenes"] == [scene.stem] and (tmp_path / "out" / f"{scene.stem}.gpkg").is_file()

    assert not browser["errors"], browser["errors"]
    foreign = [u for u in browser["requests"] if not u.startswith("data:") and urlsplit(u).netloc != browser["local"]]
    assert not foreign, foreign
