"""The territory analytics app as ``make app`` starts it: ``streamlit run`` in a subprocess on a free 127.0.0.1 port.

Its own process group (``start_new_session``), killed at the end, so no server outlives the test. Used by the browser
test, the README screenshots (``python -m crm_territory_tests.support.app_server DATA_DIR OUT_DIR``) and by hand.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crm_territory_tests.support import REPO_ROOT

APP = REPO_ROOT / "crm_territory" / "app" / "main.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_command(port: int) -> list[str]:
    """What ``make app`` runs (Makefile), on ``port``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
    ]  # fmt: skip


@contextmanager
def run_app(env: dict[str, str], log_path: Path, timeout: float = 60.0) -> Iterator[str]:
    """Start the app with ``env``; yield its base URL once /_stcore/health answers ok; kill its process group after."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            app_command(port), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited with code {proc.returncode}: {log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not answer within {timeout:g} s: {log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def app_env(data_dir: Path) -> dict[str, str]:
    """This environment pointed at ``data_dir`` on the CSV storage, with no Snowflake or run variables leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "CRM_", "STREAMLIT_"))}
    env.update(CRM_DATA_DIR=str(data_dir), CRM_STORAGE="local", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


# --- driving it in Debian's chromium (Playwright) ------------------------------------------------------------------

#: Each page's address under the app's URL (the default page, Overview, is the root).
PAGE_PATHS = {
    "overview": "/",
    "territories": "/territories",
    "territory": "/territory",
    "advisors": "/advisors",
    "families": "/families",
    "rules_preview": "/rules_preview",
    "history": "/history",
    "quality": "/quality",
}


def wait_until_rendered(page, timeout_ms: int = 60_000) -> None:
    """Until the script has run (Streamlit marks its root) and the charts have drawn."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=timeout_ms)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(800)  # Vega draws after the data arrives


def shown_metrics(page) -> dict[str, str]:
    """label -> value of every st.metric on the page, as the browser shows them."""
    out = {}
    for metric in page.locator('[data-testid="stMetric"]').all():
        label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        out[label] = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def wait_for_metric(page, label: str, value: str, timeout_s: float = 30.0) -> None:
    """Until the metric ``label`` shows ``value`` (after a widget change the script re-runs, then the page updates)."""
    deadline = time.monotonic() + timeout_s
    while shown_metrics(page).get(label) != value:
        if time.monotonic() > deadline:
            raise AssertionError(f"{label!r} shows {shown_metrics(page).get(label)!r}, not {value!r}, after {timeout_s:g} s")
        page.wait_for_timeout(250)
    wait_until_rendered(page)


def full_screenshot(page, path: Path, most: int = 6000) -> None:
    """The whole page: Streamlit scrolls inside its main block, not the document, so the window is made as tall as it."""
    size = page.viewport_size or {"width": 1400, "height": 1000}
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(int(height), most)})
    page.wait_for_timeout(500)  # charts re-lay out for the new size
    page.screenshot(path=path)
    page.set_viewport_size(size)


def screenshots(data_dir: Path, out_dir: Path, names: tuple[str, ...] = ("overview", "territories")) -> list[Path]:
    """docs/images/app-<page>.png of a running app on ``data_dir``: the README's pictures."""
    from playwright.sync_api import sync_playwright

    from crm_territory_tests.support.ui_screenshots import ARGS, CHROMIUM

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with run_app(app_env(data_dir), out_dir / ".app.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name in names:
            page.goto(url + PAGE_PATHS[name])
            wait_until_rendered(page)
            path = out_dir / f"app-{name}.png"
            page.screenshot(path=path)
            written.append(path)
        browser.close()
    (out_dir / ".app.log").unlink(missing_ok=True)
    return written


if __name__ == "__main__":
    for shot in screenshots(Path(sys.argv[1]), Path(sys.argv[2])):
        print(shot)
