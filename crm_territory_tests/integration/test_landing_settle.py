"""A drop written in place is taken only once settled (issue 10, finding 5): the probe's writer, replayed.

The probe wrote a file in place (no ``.part`` name) over 80 s, each flush ending mid-row; three runs read
it half-written and a row cut inside its e-mail became a client version in both history tables. Here a
real writer thread rewrites ``clients.csv`` in place, flushing mid-row, while ``drop_ingest_job`` runs:
the run defers the file, keeps its previous version, and loads the whole file once the writer is done.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.settings import Settings
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET

pytestmark = pytest.mark.integration

SETTLE = 2.0
HEADER = "client_id,client_name,region,segment,parent_org,advisor_email\n"
SEED_NAMES = {"Atlas Capital Partners", "Beacon Wealth Management", "Crescent Advisory Group"}


def row(i: int) -> str:
    return f"{i},Rewritten Client {i},Northeast,Retail,,advisor{i}@example.com\n"


class InPlaceWriter(threading.Thread):
    """Rewrites a drop in place (its old rows, then new ones), a row every 0.2 s, each flush cut in the middle of a
    row as the probe's were."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.old_rows = path.read_text().splitlines(keepends=True)[1:]
        self.done = threading.Event()
        self.rows = 0

    def run(self) -> None:
        with self.path.open("w") as handle:
            handle.write(HEADER)
            while not self.done.is_set() or self.rows < len(self.old_rows):
                text = self.old_rows[self.rows] if self.rows < len(self.old_rows) else row(100 + self.rows)
                handle.write(text[:20])  # the e-mail is in the second half: a cut row would lose it
                handle.flush()
                time.sleep(0.1)
                handle.write(text[20:])
                self.rows += 1
                time.sleep(0.1)


def run(settings: Settings) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def("drop_ingest_job")
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), run_config=QUIET, raise_on_error=False)


def check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_a_drop_rewritten_in_place_is_deferred_while_written_then_loaded_whole(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, storage="local", api_url="http://127.0.0.1:9", landing_settle_seconds=SETTLE)
    tables = CsvTables(data_dir)
    assert run(settings).success  # the sample drop, copied with its old mtime: settled, read at once
    assert set(tables.read("client_dim")["client_name"]) == SEED_NAMES

    writer = InPlaceWriter(data_dir / "landing" / "clients.csv")
    writer.start()
    try:
        time.sleep(0.5)
        during = run(settings)  # the writer goes on for the whole run
    finally:
        writer.done.set()
        writer.join(timeout=10)
    assert during.success
    manifest = tables.read("ingest_manifest").set_index("batch")
    assert manifest.loc["clients.csv", "status"] == "deferred"
    message = manifest.loc["clients.csv", "message"]
    assert message.startswith(f"deferred, still being written: it changed during the {SETTLE:g} s settle wait")
    assert "until then its previous version stays in force (3 row(s)" in message
    assert check(during, "raw_rows_conserved").passed
    assert set(tables.read("client_dim")["client_name"]) == SEED_NAMES  # nothing vanished, nothing half-read

    time.sleep(SETTLE)  # the writer is done: nothing writes for the interval
    after = run(settings)
    assert after.success
    final = pd.read_csv(data_dir / "landing" / "clients.csv", dtype=str)
    assert len(final) == writer.rows > 3
    raw = tables.read("raw_clients")
    assert tables.read("ingest_manifest").set_index("batch").loc["clients.csv", "status"] == "loaded"
    assert sorted(raw["advisor_email"]) == sorted(final["advisor_email"])  # every e-mail whole
    history = tables.read("client_dim_history")
    written = SEED_NAMES | set(final["client_name"])
    assert set(history["client_name"]) <= written, set(history["client_name"]) - written  # no cut row, ever
