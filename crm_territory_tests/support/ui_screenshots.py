"""Screenshots of the Dagster UI for the docs: ``python -m crm_territory_tests.support.ui_screenshots URL OUT_DIR RUN_ID``.

Drives Debian's Chromium (``apt-get install chromium``) with Playwright against a running ``make dev``
(or ``dg dev``) and writes docs/images/{asset-graph,asset,checks,run}.png. Not a test: the pictures are
looked at by people; run it again when the UI changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

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


def _dismiss_welcome(page: Page) -> None:
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


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
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), Path(sys.argv[2]), sys.argv[3])
