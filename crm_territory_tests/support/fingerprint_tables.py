"""Fingerprints of the sample book's published tables: the fixture of the lean-frames identity test (issue 15, item 1).

The sample book is ``make run``'s: the inputs under ``data/`` (``SAMPLE_BOOK_FOLDERS``: the landing files with their
source layouts, the reference data, the rules, the match decisions) and the mock CRM's default book (2,000 clients,
seed 42). A checkout's own ``python -m crm_territory.cli run --start-mock-api`` runs it into a scratch data folder,
the landing files' mtimes fixed (drops are applied in mtime order); each published table's CSV file is then
fingerprinted as the text it holds (Python's ``csv`` module, none of the engine's readers): its columns, its row
count, a digest of each compared column and a short one of each row, in file order. Two runs of the same code agree
on every value and on the row order, apart from the columns of ``EXCLUDED_COLUMNS`` (the run's time, and the mock
CRM's etags, new at every start of the mock): those are left out.

The committed fixture, ``crm_territory_tests/fixtures/sample_book_before_lean.json``, holds the fingerprints of the
code **before** the lean-frames commits (``crm_territory/`` at ``70f4053``, ahead of f3c9055, aeb6742, 3403903 and
2c789d1), never of the code under test. It was produced, and is regenerated (about a minute), with::

    .venv/bin/python -m crm_territory_tests.support.fingerprint_tables regenerate

which unpacks ``git archive 70f4053`` into a scratch folder, runs that code twice on this checkout's sample book
(``data/``), refuses to write anything if the two runs' fingerprints differ, and writes the fixture. ``--keep DIR``
keeps the old code's checkout and its runs' data folders (``DIR/run0/data``) to compare tables by hand
(``python -m crm_territory_tests.support.compare_tables DIR/run0/data OTHER_DATA_DIR``).
``check DATA_DIR`` compares a data folder's published tables (the sample book run by any code) with the fixture.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from crm_territory_tests.support import REPO_ROOT
from crm_territory_tests.support.cli_run import cli_run_env
from crm_territory_tests.support.compare_tables import RUN_TIME_COLUMNS

__all__ = [
    "BEFORE_LEAN_COMMIT",
    "EXCLUDED_COLUMNS",
    "FIXTURE",
    "differences",
    "fingerprint_folder",
    "fingerprint_table",
    "prepare_sample_book",
    "read_published",
    "run_sample_book",
    "sample_book_digest",
]

#: crm_territory/ before the lean-frames commits (f3c9055, aeb6742, 3403903, 2c789d1)
BEFORE_LEAN_COMMIT = "70f4053"
FIXTURE = REPO_ROOT / "crm_territory_tests" / "fixtures" / "sample_book_before_lean.json"

#: What ``make run`` reads from data/ (it writes raw/, core/, quarantine/ there, never these).
SAMPLE_BOOK_FOLDERS = ("landing", "reference", "rules", "matching", "sources")
#: Drops are applied in mtime order, and a clone's mtimes are its checkout's: each landing file gets a fixed one,
#: a minute apart in path order, long settled (2026-08-29 10:40 UTC onwards).
LANDING_MTIME_BASE = 1_788_000_000
LAYERS = ("raw", "core", "quarantine")
COLUMN_DIGEST_CHARS = 16  # 64 bits of a column's sha256
ROW_DIGEST_CHARS = 5

#: The crm_etag the mock CRM serves and the etag and plan id derived from it: ``<boot>-<revision>``, the boot id new at
#: every start of the mock.
MOCK_BOOT_COLUMNS = {"crm_etag", "etag", "plan_id"}

#: Per table, the columns that differ between two runs of the same code on the same book (found by running 70f4053
#: twice: every other value, and the row order, agreed). Each is a run-time column of compare_tables or a mock etag.
#: compare_tables' other run-time columns are compared here: on a fresh data folder's one run they are constant
#: (valid_to empty, no retirements, match_model estimated "no match_model stored yet"), and its ``reason`` is
#: quarantined_clients' reason for each row, content.
EXCLUDED_COLUMNS: dict[str, list[str]] = {
    "crm_api_clients": ["pulled_at", "crm_etag"],
    "crm_api_advisors": ["pulled_at"],
    "raw_clients": ["ingested_at"],
    "quarantined_clients": ["ingested_at"],
    "ingest_manifest": ["ingested_at"],
    "client_xref": ["client_key_issued_at", "first_seen_at"],
    "match_model": ["estimated_at"],
    "territory_dim": ["issued_at"],
    "client_dim_history": ["valid_from"],
    "assignments_fact_history": ["valid_from"],
    "crm_writeback_plan": ["planned_at", "etag", "plan_id"],  # plan_id: a hash over the plan's etags
    "crm_outbound_plan": ["planned_at"],
}
assert all(c in RUN_TIME_COLUMNS | MOCK_BOOT_COLUMNS for cs in EXCLUDED_COLUMNS.values() for c in cs)


def _sample_book_files(source: Path) -> list[Path]:
    return sorted(p for folder in SAMPLE_BOOK_FOLDERS for p in (source / folder).rglob("*") if p.is_file())


def sample_book_digest(source: Path = REPO_ROOT / "data") -> str:
    """A digest of the sample book's input files under ``source`` (their paths and bytes; not their mtimes)."""
    h = hashlib.sha256()
    for path in _sample_book_files(source):
        for part in (path.relative_to(source).as_posix().encode(), path.read_bytes()):
            h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


def prepare_sample_book(data_dir: Path, source: Path = REPO_ROOT / "data") -> Path:
    """``data_dir`` holding copies of the sample book's inputs from ``source``, the landing files' mtimes fixed."""
    for folder in SAMPLE_BOOK_FOLDERS:
        shutil.copytree(source / folder, data_dir / folder)
    landing = data_dir / "landing"
    for i, path in enumerate(sorted(p for p in landing.rglob("*") if p.is_file())):
        when = LANDING_MTIME_BASE + 60 * i
        os.utime(path, (when, when))
    return data_dir


def run_sample_book(
    checkout: Path, data_dir: Path, dagster_home: Path, timeout: float = 600, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m crm_territory.cli run --start-mock-api`` of ``checkout`` (its code, its mock CRM) on ``data_dir``
    (``extra``: more arguments of ``run``, such as ``--full-refresh``).

    What ``make run`` executes. The outer environment cannot change the run: every ``CRM_*``, ``MOCK_CRM_*`` and
    ``SNOWFLAKE_*`` variable is dropped (the mock CRM serves its default book; the storage is the local CSV one).
    """
    env = cli_run_env(data_dir, dagster_home, drop=("DAGSTER_HOME",), drop_prefixes=("CRM_", "MOCK_CRM_", "SNOWFLAKE_"))
    env["CRM_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(checkout), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "crm_territory.cli", "run", "--start-mock-api", *extra],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_path(data_dir: Path, table: str) -> Path:
    (path,) = [data_dir / layer / f"{table}.csv" for layer in LAYERS if (data_dir / layer / f"{table}.csv").is_file()]
    return path


def read_published(data_dir: Path) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Each published table (``published.json``) as its CSV file holds it: header and rows, every field as text."""
    out = {}
    for table in sorted(json.loads((data_dir / "published.json").read_text())["tables"]):
        with table_path(data_dir, table).open(newline="", encoding="utf-8") as handle:
            header, *rows = list(csv.reader(handle))
        out[table] = (header, rows)
    return out


def _digest(values: list[str]) -> str:
    # each value length-prefixed: two different lists of texts never give the same bytes
    h = hashlib.sha256()
    for value in values:
        data = value.encode("utf-8")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _row_digests(rows: list[list[str]]) -> list[str]:
    """The first ``ROW_DIGEST_CHARS`` base64 characters of each row's digest: short, and enough to say which rows
    differ (30 bits: two of a table's 2,500 rows share one with a chance of 1 in 300, which only blurs where)."""
    return [base64.b64encode(bytes.fromhex(_digest(row))).decode("ascii")[:ROW_DIGEST_CHARS] for row in rows]


def fingerprint_table(header: list[str], rows: list[list[str]], compared: list[str]) -> dict[str, Any]:
    """A table's fingerprint over the ``compared`` columns (in that order): row count, a digest per column, per row."""
    index = [header.index(c) for c in compared]
    kept = [[row[i] for i in index] for row in rows]
    full = [_digest([row[j] for row in kept]) for j in range(len(compared))]
    return {
        "columns": header,
        "compared": compared,
        "rows": len(rows),
        "digest": _digest([*full, str(len(rows))]),
        "column_digests": {c: d[:COLUMN_DIGEST_CHARS] for c, d in zip(compared, full)},
        "row_digests": "".join(_row_digests(kept)),
    }


def fingerprint_folder(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The fingerprint of every published table of ``data_dir``, ``EXCLUDED_COLUMNS`` left out."""
    out = {}
    for table, (header, rows) in read_published(data_dir).items():
        excluded = EXCLUDED_COLUMNS.get(table, [])
        out[table] = fingerprint_table(header, rows, [c for c in header if c not in excluded])
    return out


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def differences(
    before: dict[str, Any], data_dir: Path, not_compared: dict[str, dict[str, str]], rows_shown: int = 5
) -> list[str]:
    """What differs between the fixture's tables (``before``: its ``tables``) and ``data_dir``'s published tables.

    One entry per table that differs, readable: the columns whose values differ, how many rows, the first differing
    rows as the file holds them now (the first compared column and the differing ones). ``not_compared``: per table,
    the columns (``"*"``: the whole table) left out on purpose, each with why (the commit that changed it).
    """
    now = read_published(data_dir)
    problems = []
    for table, old in sorted(before.items()):
        skip = not_compared.get(table, {})
        if "*" in skip:
            continue
        if table not in now:
            problems.append(f"{table}: published before, not now")
            continue
        header, rows = now[table]
        compared = [c for c in old["compared"] if c not in skip]
        missing = [c for c in compared if c not in header]
        if missing:
            problems.append(f"{table}: column(s) {missing} gone (columns now: {header})")
            continue
        if [c for c in header if c in compared] != compared:
            problems.append(f"{table}: the columns' order changed: before {old['columns']}, now {header}")
            continue
        new = fingerprint_table(header, rows, compared)
        columns = [c for c in compared if new["column_digests"][c] != old["column_digests"][c]]
        same_digest = compared != old["compared"] or new["digest"] == old["digest"]  # the full digest, when it applies
        if not columns and new["rows"] == old["rows"] and same_digest:
            continue
        lines = [f"{table}: {old['rows']:,} rows before, {new['rows']:,} now; column(s) whose values differ: {columns or 'none'}"]
        if compared == old["compared"]:  # the row digests cover the same columns: say which rows differ
            old_rows, new_rows = _split(old["row_digests"]), _split(new["row_digests"])
            at = [
                i
                for i in range(max(len(old_rows), len(new_rows)))
                if i >= len(old_rows) or i >= len(new_rows) or old_rows[i] != new_rows[i]
            ]
            gone, added = Counter(old_rows) - Counter(new_rows), Counter(new_rows) - Counter(old_rows)
            reordered = " (the same rows, in another order)" if at and not added and not gone else ""
            lines.append(
                f"  {len(at):,} row position(s) differ, the first at data row {at[0] + 1 if at else '-'} of the file; "
                f"{sum(added.values()):,} row(s) now that were not before, {sum(gone.values()):,} row(s) before that are gone"
                + reordered
            )
            shown = dict.fromkeys([*compared[:1], *columns])  # the first compared column names the row, mostly its key
            for i in [i for i in at if i < len(rows)][:rows_shown]:
                values = ", ".join(f"{c}={_shown(rows[i][header.index(c)])}" for c in shown)
                lines.append(f"    now, data row {i + 1}: {values}")
        else:
            lines.append("  (columns left out since the fixture: rows cannot be located, only columns)")
        problems.append("\n".join(lines))
    return problems


def _split(row_digests: str) -> list[str]:
    return [row_digests[i : i + ROW_DIGEST_CHARS] for i in range(0, len(row_digests), ROW_DIGEST_CHARS)]


def checkout_of(commit: str, folder: Path) -> Path:
    """``git archive`` of ``commit`` unpacked into ``folder``."""
    archive = subprocess.run(["git", "archive", commit], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def regenerate(commit: str, out: Path, runs: int, keep: Path | None) -> int:
    """Run ``commit``'s code ``runs`` times on this checkout's sample book; write the fixture if the runs agree."""
    with tempfile.TemporaryDirectory(prefix="fingerprint_tables_") as tmp:
        scratch = keep or Path(tmp)
        checkout = checkout_of(commit, scratch / "checkout")
        prints = []
        for i in range(runs):
            data_dir = prepare_sample_book(scratch / f"run{i}" / "data")
            proc = run_sample_book(checkout, data_dir, scratch / f"run{i}" / "dagster_home")
            if proc.returncode != 0:
                print(f"run {i} of {commit} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}", file=sys.stderr)
                return 1
            prints.append(fingerprint_folder(data_dir))
        for i, other in enumerate(prints[1:], start=1):
            if other != prints[0]:
                differ = sorted(t for t in set(prints[0]) | set(other) if prints[0].get(t) != other.get(t))
                print(f"runs 0 and {i} of {commit} differ in {differ}: no fixture written", file=sys.stderr)
                return 1
    full = subprocess.run(["git", "rev-parse", commit], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    fixture = {
        "produced_by": (
            f"python -m crm_territory_tests.support.fingerprint_tables regenerate --commit {commit} --runs {runs}: "
            f"crm_territory/ and mock_api/ of `git archive {commit}`, its `python -m crm_territory.cli run "
            "--start-mock-api` on this checkout's sample book (data/, landing mtimes fixed); the published tables "
            "fingerprinted by crm_territory_tests/support/fingerprint_tables.py"
        ),
        "commit": full.stdout.strip(),
        "sample_book_digest": sample_book_digest(),
        "excluded_columns": EXCLUDED_COLUMNS,
        "tables": prints[0],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
    print(
        f"{out}: {len(prints[0])} tables of {commit}, {sum(t['rows'] for t in prints[0].values()):,} rows, {runs} run(s) agreeing"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm_territory_tests.support.fingerprint_tables",
        description="The lean-frames identity test's fixture: fingerprints of the sample book's tables.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    regen = sub.add_parser("regenerate", help="run the old code on the sample book and write the fixture")
    regen.add_argument("--commit", default=BEFORE_LEAN_COMMIT, help=f"the code to fingerprint (default {BEFORE_LEAN_COMMIT})")
    regen.add_argument("--out", type=Path, default=FIXTURE, help="where to write it (default: the committed fixture)")
    regen.add_argument("--runs", type=int, default=2, help="runs of the old code that must agree (default 2)")
    regen.add_argument("--keep", type=Path, default=None, help="keep the checkout and the runs' data folders in this folder")
    check = sub.add_parser("check", help="compare a data folder's published tables (the sample book) with the fixture")
    check.add_argument("data_dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = differences(json.loads(FIXTURE.read_text())["tables"], args.data_dir, {})
        print("\n".join(problems) if problems else "every table of the fixture identical")
        return 1 if problems else 0
    return regenerate(args.commit, args.out, args.runs, args.keep)


if __name__ == "__main__":
    sys.exit(main())
