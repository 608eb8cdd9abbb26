"""An incremental run publishes exactly the tables a full run does (issue 15, item 2), through the real CLI.

The sample book is run once (``make run``'s command, into a temporary folder). The folder is copied; a change-feed
drop (records renamed, moved, a near-duplicate added) lands in both copies, with the same bytes and time. One copy
is run as ``make run`` runs it (entity resolution incremental: only the pairs the changes touch are scored again),
the other with ``--full-refresh``. Every published table is compared, table by table, value by value and row
order, run-time columns aside (``fingerprint_tables.EXCLUDED_COLUMNS``: time stamps and etags, which differ
between any two runs). The two runs share one Dagster instance: the first run's record of its inputs (reference
tables and matching code fingerprints) is what lets the next run be incremental.
"""

import os
import shutil

import pytest

from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.fingerprint_tables import (
    LANDING_MTIME_BASE,
    differences,
    fingerprint_folder,
    prepare_sample_book,
    run_sample_book,
)

pytestmark = pytest.mark.integration

# seed layout; ids 1-3 exist in data/landing/clients.csv (a new version of each), N1 and N2 are new
CHANGES = """client_id,client_name,region,segment,parent_org,advisor_email
1,Atlas Capital Partners Intl,Northeast,Institutional,Atlas Holdings,advisor1@example.com
2,Beacon Wealth Management,Midwest,Retail,Beacon Group,advisor2@example.com
3,Crescent Advisory Grp,Midwest,Institutional,Crescent Holdings,advisor7@example.com
N1,Beacon Wealth Mgmt,Northeast,Retail,Beacon Group,advisor2@example.com
N2,Quillfeather Partners,West,Retail,,advisor3@example.com
"""


# a second run's own time stamps, on top of EXCLUDED_COLUMNS (a first run closes no version and retires no key)
SECOND_RUN_TIMES = {
    "client_dim_history": {"valid_to": "the time of the run that closed the version"},
    "assignments_fact_history": {"valid_to": "the time of the run that closed the version"},
    "client_key_retirements": {"retired_at": "the time of the run that retired the key"},
}


def land_changes(data_dir):
    path = data_dir / "landing" / "clients_changes.csv"
    path.write_text(CHANGES)
    when = LANDING_MTIME_BASE + 100_000  # after every sample drop: these are the latest versions
    os.utime(path, (when, when))


def test_an_incremental_run_publishes_the_tables_a_full_run_does(tmp_path):
    home = tmp_path / "dagster_home"
    incremental_dir = prepare_sample_book(tmp_path / "incremental" / "data")
    first = run_sample_book(REPO_ROOT, incremental_dir, home)
    assert first.returncode == 0, first.stdout + first.stderr
    full_dir = tmp_path / "full" / "data"
    shutil.copytree(incremental_dir, full_dir)
    land_changes(incremental_dir)
    land_changes(full_dir)

    incremental = run_sample_book(REPO_ROOT, incremental_dir, home)
    assert incremental.returncode == 0, incremental.stdout + incremental.stderr
    full = run_sample_book(REPO_ROOT, full_dir, home, extra=("--full-refresh",))
    assert full.returncode == 0, full.stdout + full.stderr

    # each run did what it says: the first started from nothing, the second from the first, the third in full
    assert "entity resolution: full: no published client_xref" in first.stdout + first.stderr
    log = incremental.stdout + incremental.stderr
    assert "entity resolution: incremental: 5 records new or changed and 0 removed" in log, log[-3000:]
    assert "entity resolution: full: the run config asked for a full refresh" in full.stdout + full.stderr

    problems = differences(fingerprint_folder(full_dir), incremental_dir, SECOND_RUN_TIMES)
    assert not problems, "the incremental run's tables differ from the full run's:\n" + "\n".join(problems)
    # and the change batch reached the published tables (a run that ignored the drop would also be "identical")
    xref = (incremental_dir / "core" / "client_xref.csv").read_text()
    assert '"csv_drop","N1"' in xref and '"csv_drop","N2"' in xref
