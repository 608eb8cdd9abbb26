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
