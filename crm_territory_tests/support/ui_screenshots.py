"""Screenshots of the Dagster UI for the docs: ``python -m crm_territory_tests.support.ui_screenshots URL OUT_DIR RUN_ID``.

Drives Debian's Chromium (``apt-get install chromium``) with Playwright against a running ``make dev``
(or ``dg dev``) and writes docs/images/{asset-graph,asset,checks,run,assignments-chart}.png. Not a test: the
pictures are looked at by people; run it again when the UI changes. ``open_markdown_metadata`` is shared with
the browser test of the UI (crm_territory_tests/integration/test_dagster_ui_browser.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM = "/usr/bin/chromium"
# Chromium on a machine with a closed network: no background connections, no first-run work
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _dismiss_welcome(page: Page, wait_ms: int = 0) -> None:
    """Close Dagster's "Join the community" dialog if it shows (once per browser profile, a moment after load)."""
    skip = page.get_by_role("button", name="Skip")
    if wait_ms:
        try:
            skip.first.wait_for(timeout=wait_ms)
        except PlaywrightTimeoutError:
            return  # not shown to this profile
    if skip.count():
        skip.first.click()


def open_markdown_metadata(page: Page, base: str, asset: str, label: str) -> Locator:
    """Open ``asset``'s Events tab (its latest materialization first), click "[Show Markdown]" on the metadata
    entry ``label`` and return the dialog that renders it.

    Long markdown (a chart's PNG is tens of KB) is not shown inline in the metadata table: the UI offers
    "[Show Markdown]", which opens it in a dialog.
    """
    page.goto(f"{base}/assets/{asset}?view=events")
    page.wait_for_load_state("networkidle")
    _dismiss_welcome(page, wait_ms=3000)
    row = page.locator("tr", has=page.locator("td", has_text=label)).filter(has_text="[Show Markdown]")
    row.first.wait_for(timeout=30_000)
    row.first.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has_text=label)
    dialog.wait_for(timeout=15_000)
    return dialog


def _open(page: Page, url: str, wait_for: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    _dismiss_welcome(page)
    page.locator(f"text={wait_for} >> visible=true").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # let the graph layout settle


def main(base: str, out_dir: Path, run_id: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 860})
        # client_dim's neighbourhood: every domain group and the tables either side of the golden record
        _open(page, f"{base}/assets/client_dim?view=lineage&lineageScope=neighbors&lineageDepth=2", "client_xref")
        page.screenshot(path=out_dir / "asset-graph.png")
        # the asset page: its description (what it is, its grain, how it is built) and its columns, from the table spec
        page.set_viewport_size({"width": 1440, "height": 1000})
        _open(page, f"{base}/assets/client_dim", "Columns")
        page.screenshot(path=out_dir / "asset.png")
        page.set_viewport_size({"width": 1440, "height": 860})
        _open(page, f"{base}/assets/client_dim?view=checks", "Latest execution")
        page.screenshot(path=out_dir / "checks.png")
        _open(page, f"{base}/runs/{run_id}", "assignments_fact")
        # the run's log, filtered to the check that says what this run quarantined
        page.get_by_placeholder("Filter").first.fill("quarantined_clients_none_new")
        page.keyboard.press("Enter")
        page.wait_for_timeout(1500)
        page.screenshot(path=out_dir / "run.png")
        # assignments_fact's chart of clients per territory, as the asset page shows it
        page.set_viewport_size({"width": 1280, "height": 1000})
        dialog = open_markdown_metadata(page, base, "assignments_fact", "clients_per_territory_chart")
        dialog.locator("img[src^='data:image/png']").first.wait_for(timeout=15_000)
        page.wait_for_timeout(500)
        page.screenshot(path=out_dir / "assignments-chart.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), Path(sys.argv[2]), sys.argv[3])
