"""The Dagster UI in a real browser: the chart on assignments_fact's page, and a materialization started by a click.

A real mock CRM API, a real ``dagster-webserver`` on the project's workspace (the helpers of
test_webserver.py: a throw-away DAGSTER_HOME whose run coordinator launches at once) and Debian's Chromium
driven by Playwright, headless. A first run of ``materialize_all_job`` (launched over GraphQL) gives the
asset page something to show; then the browser does what a person would: opens assignments_fact's latest
materialization, shows the chart's markdown, and clicks "Materialize". A screenshot per step goes to the
test's tmp dir (named in a failure message).
"""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from crm_territory_tests.integration.test_webserver import (
    LATEST_METADATA_QUERY,
    _launch,
    _start_webserver,
    _write_dagster_home,
)
from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.dagster_servers import Dagster, repository_selector, stop_group, wait_for_run, webserver_env
from crm_territory_tests.support.mock_api_server import run_mock_api
from crm_territory_tests.support.ui_screenshots import ARGS, CHROMIUM, _dismiss_welcome, open_markdown_metadata

pytestmark = pytest.mark.integration

JOB_NAME = "materialize_all_job"
ASSET = "assignments_fact"
UI_TIMEOUT_MS = 30_000
CLICKED_RUN_TIMEOUT_S = 120

UI_RUNS_QUERY = """
query UiRuns {
  runsOrError(filter: {tags: [{key: "dagster/from_ui", value: "true"}]}) {
    __typename
    ... on Runs { results { runId status assetSelection { path } } }
    ... on PythonError { message }
  }
}
"""


def _png_of(src: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:80]
    return base64.b64decode(src[len(prefix) :])


def _latest_materialization(dagster: Dagster, asset: str) -> dict[str, Any]:
    found = dagster.query(LATEST_METADATA_QUERY, {"assetKey": {"path": [asset]}})["assetOrError"]
    assert found["__typename"] == "Asset", found
    (latest,) = found["assetMaterializations"]
    return latest


def _shoot(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=shots / f"{name}.png")


def _chart_in_the_ui(page: Page, base: str, label: str, alt: str) -> bytes:
    """Show the chart ``label`` of assignments_fact's latest materialization; return the PNG the browser displays."""
    dialog = open_markdown_metadata(page, base, ASSET, label)
    image = dialog.locator("img[src^='data:image/png']")
    expect(image).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(image).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(image).to_have_attribute("alt", alt)
    # decoded and laid out by the browser: a broken or blocked image has a natural width of 0
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=UI_TIMEOUT_MS)
    width, height, shown = image.evaluate("img => [img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width]")
    assert width >= 600 and height >= 300, (width, height)
    assert shown >= 300, f"the chart is drawn {shown}px wide in the dialog"
    return _png_of(image.get_attribute("src") or "")


def test_the_asset_page_shows_the_charts_and_a_click_on_materialize_runs_the_asset(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make chromium)", pytrace=False)
    data_dir = tmp_path / "data"
    for sub in ("landing", "reference", "rules", "matching"):
        shutil.copytree(REPO_ROOT / "data" / sub, data_dir / sub)
    dagster_home = _write_dagster_home(tmp_path / "dagster_home")
    log_path = tmp_path / "webserver.log"
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with run_mock_api(clients=300, seed=2) as api_url:
        env = webserver_env(dagster_home, data_dir, api_url)
        proc, base = _start_webserver(env, log_path)
        dagster = Dagster(base, log_path)
        try:
            first_run = _launch(dagster, repository_selector(dagster, JOB_NAME))
            if wait_for_run(dagster, first_run) != "SUCCESS":
                dagster.fail(f"the first run {first_run} did not succeed")
            recorded = {
                e["label"]: e.get("mdStr") for e in _latest_materialization(dagster, ASSET)["metadataEntries"] if "mdStr" in e
            }

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                try:
                    page = browser.new_page(viewport={"width": 1440, "height": 1000})
                    page.set_default_timeout(UI_TIMEOUT_MS)
                    try:
                        _browse(page, base, dagster, first_run, recorded, shots)
                    except BaseException:
                        _shoot(page, shots, "failure")
                        raise
                finally:
                    browser.close()
        except AssertionError as error:
            raise AssertionError(f"{error}\n(screenshots in {shots})") from error
        finally:
            dagster.http.close()
            stop_group(proc)


def _browse(page: Page, base: str, dagster: Dagster, first_run: str, recorded: dict[str, str], shots: Path) -> None:
    # --- 1. the asset page, its latest materialization: the chart of clients per territory is an image on it
    territory_png = _chart_in_the_ui(page, base, "clients_per_territory_chart", "clients per territory")
    _shoot(page, shots, "01-clients-per-territory-chart")
    # the very image the run recorded (not a placeholder, not a previous run's)
    assert (
        recorded["clients_per_territory_chart"]
        == f"![clients per territory](data:image/png;base64,{base64.b64encode(territory_png).decode()})"
    )
    assert territory_png.startswith(b"\x89PNG\r\n\x1a\n")
    page.keyboard.press("Escape")

    # --- 2. the advisor utilisation chart
    utilisation_png = _chart_in_the_ui(page, base, "advisor_utilisation_chart", "advisor load vs capacity")
    _shoot(page, shots, "02-advisor-utilisation-chart")
    assert utilisation_png != territory_png
    page.keyboard.press("Escape")

    # --- 3. materialize assignments_fact by clicking, as a person would
    page.goto(f"{base}/assets/{ASSET}")
    page.wait_for_load_state("networkidle")
    _dismiss_welcome(page, wait_ms=3000)
    button = page.locator("button", has_text="Materialize").first
    expect(button).to_be_enabled()
    _shoot(page, shots, "03-asset-page-before-click")
    button.click()

    clicked = _wait_for_ui_run(dagster)
    _shoot(page, shots, "04-after-click")
    assert clicked["runId"] != first_run
    assert clicked["assetSelection"] == [{"path": [ASSET]}], clicked  # just the asset whose page it was
    status = wait_for_run(dagster, clicked["runId"], timeout=CLICKED_RUN_TIMEOUT_S)
    assert status == "SUCCESS", f"the run started by the click ended {status}"
    # the asset's latest materialization is now the clicked run's, and the UI shows that run as a success
    assert _latest_materialization(dagster, ASSET)["runId"] == clicked["runId"]
    page.goto(f"{base}/runs/{clicked['runId']}")
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    _shoot(page, shots, "05-clicked-run-succeeded")


def _wait_for_ui_run(dagster: Dagster, timeout: float = 30) -> dict[str, Any]:
    """The one run launched from the UI (Dagster tags it dagster/from_ui), once it exists."""
    deadline = time.monotonic() + timeout
    while True:
        runs = dagster.query(UI_RUNS_QUERY)["runsOrError"]
        assert runs["__typename"] == "Runs", runs
        if runs["results"]:
            assert len(runs["results"]) == 1, runs  # one click, one run
            return runs["results"][0]
        if time.monotonic() > deadline:
            dagster.fail(f"no run launched from the UI within {timeout:.0f}s of the click on Materialize")
        time.sleep(0.5)
