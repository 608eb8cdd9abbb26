"""Lean frames change no output (issue 15, item 1): the sample book's tables are those of the code before them.

The sample book (``make run``'s: ``data/``'s inputs and the mock CRM's default book) is run by this checkout's
``python -m crm_territory.cli run --start-mock-api``, as ``make run`` runs it, into a temporary data folder with the
landing files' mtimes fixed; every published table is fingerprinted as its CSV file's text and compared, table by
table, with the fingerprints of ``crm_territory/`` at 70f4053 (before f3c9055, aeb6742, 3403903, 2c789d1) in
``crm_territory_tests/fixtures/sample_book_before_lean.json``. Compared: every value and the row order (two runs
of the old code agree on both), the columns, the row counts. Not compared: the run's time stamps and the mock CRM's
etags (``fingerprint_tables.EXCLUDED_COLUMNS``: they differ between two runs of the same code). How the fixture was
made and how to regenerate it: ``crm_territory_tests/support/fingerprint_tables.py``.
"""

import json
import warnings

import pytest

from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.fingerprint_tables import (
    BEFORE_LEAN_COMMIT,
    FIXTURE,
    differences,
    fingerprint_folder,
    prepare_sample_book,
    run_sample_book,
    sample_book_digest,
)

pytestmark = pytest.mark.integration

#: Tables or columns of the fixture changed since 70f4053 on purpose, for a reason other than lean frames: not
#: compared. ``{table: {column or "*" (the whole table): "<commit>: why"}}``. None so far: crm_territory/schemas.py
#: has not changed since 70f4053, and 70f4053..2c789d1 changed no output. Tables and columns added since are not in
#: the fixture: compared on the common columns, and named in a warning.
NOT_COMPARED: dict[str, dict[str, str]] = {}

REGENERATE = "python -m crm_territory_tests.support.fingerprint_tables regenerate"


@pytest.fixture(scope="module")
def before() -> dict:
    fixture = json.loads(FIXTURE.read_text())
    # the fingerprints are the old code's, never the code under test's
    assert fixture["commit"].startswith(BEFORE_LEAN_COMMIT), fixture["commit"]
    return fixture


def test_the_sample_books_tables_are_those_of_the_code_before_lean_frames(before, tmp_path):
    if sample_book_digest() != before["sample_book_digest"]:
        pytest.fail(
            f"the sample book's inputs under {REPO_ROOT / 'data'} (landing, reference, rules, matching, sources) changed "
            f"since the fixture was made: run the old code on them ({REGENERATE}, about a minute) and commit the fixture",
            pytrace=False,
        )
    data_dir = prepare_sample_book(tmp_path / "data")
    proc = run_sample_book(REPO_ROOT, data_dir, tmp_path / "dagster_home")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    problems = differences(before["tables"], data_dir, NOT_COMPARED)
    if problems:
        pytest.fail(
            f"the sample book's tables differ from those of {BEFORE_LEAN_COMMIT} (before lean frames), run-time columns "
            f"aside ({len(problems)} table(s)):\n" + "\n".join(problems) + f"\nThis run's tables: {data_dir}. The old code's: "
            f"{REGENERATE} --keep DIR --out DIR/fixture.json, then "
            f"python -m crm_territory_tests.support.compare_tables DIR/run0/data {data_dir}",
            pytrace=False,
        )

    now = fingerprint_folder(data_dir)
    added = [t for t in now if t not in before["tables"]]
    added += [f"{t}.{c}" for t, old in before["tables"].items() if t in now for c in now[t]["columns"] if c not in old["columns"]]
    if added:
        warnings.warn(f"not in the fixture of {BEFORE_LEAN_COMMIT}, so not compared: {added}", stacklevel=1)
