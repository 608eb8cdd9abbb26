"""The run after a batch of changed clients: ``drop_ingest_job`` incremental against the same run in full.

``measure(n, changes)`` on ``.bench/incremental<n>`` (git-ignored), never the repository's ``data/``:

1. folder A gets the inputs of the bench's ``.bench/n<n>/data`` (``make_run.prepare``: reference, rules and the drop of
   ``n`` clients with its times; the bench's ``_prepare`` writes that folder first when it is missing) and a Dagster
   instance on disk beside it; ``drop_ingest_job`` runs once (the first run, timed and reported, not compared).
2. A, its published tables and its instance, is copied to B: both start from the same published state. A second drop
   file, ``landing/changes.csv`` (``change_rows``: ``changes`` rows, part re-sending existing clients with a changed
   name, region or parent, the rest new clients), lands in both, one minute newer than the book's drop so that it is
   applied after it (drops apply in mtime order) and long settled.
3. A runs the job as configured by default (incremental), B with ``client_xref``'s ``full_refresh``; each in a
   fresh process under the memory guard, timed as the bench's end-to-end runs are (``bench._run_child``).
4. Every published table of A is compared with B's (``table_differences``), the run-time columns aside.

``mode`` is the ``resolution_mode`` metadata of client_xref's materialization in A's run, read from A's instance.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from crm_territory_tests.benchmarks import bench, make_run
from crm_territory_tests.support.compare_tables import RUN_TIME_COLUMNS
from crm_territory_tests.support.fingerprint_tables import EXCLUDED_COLUMNS, table_path

CHANGE_FILE = "changes.csv"
CHANGE_SEED = 2027
ADDED_SHARE = 0.3  # the rest re-send existing clients, changed
FULL_RUN_CONFIG = {"ops": {"client_xref": {"config": {"full_refresh": True}}}}
MODE_UNREAD = "incremental run config (resolution_mode not read from run A's instance)"


def change_rows(book: pd.DataFrame, changes: int, seed: int = CHANGE_SEED) -> pd.DataFrame:
    """A drop of ``changes`` rows in ``book``'s columns (the book as text, as its drop file holds it).

    About ``1 - ADDED_SHARE`` of them re-send distinct existing clients, each with one of name, region or parent
    changed (a name taken from another client, which makes a candidate duplicate, a region of the book, another
    client's parent or a new one); the rest are new clients, copies of existing ones under new ids, half with the
    name shortened by a letter (a likely duplicate for the matcher to find)."""
    rng = np.random.default_rng(seed)
    n_added = min(int(round(changes * ADDED_SHARE)), changes)
    n_changed = min(changes - n_added, len(book))
    n_added = changes - n_changed
    book = book.reset_index(drop=True)
    changed = book.iloc[rng.choice(len(book), n_changed, replace=False)].copy()
    regions = sorted(set(book["region"]) - {""})
    for serial, (at, kind) in enumerate(zip(changed.index, rng.integers(0, 3, n_changed), strict=True)):
        other = book.iloc[int(rng.integers(0, len(book)))]
        if kind == 0:
            name = other["client_name"]
            changed.at[at, "client_name"] = name if name != changed.at[at, "client_name"] else f"{name} Group"
        elif kind == 1 and len(regions) > 1:
            choices = [r for r in regions if r != changed.at[at, "region"]]
            changed.at[at, "region"] = choices[int(rng.integers(0, len(choices)))]
        else:
            parent = other["parent_org"]
            changed.at[at, "parent_org"] = parent if parent != changed.at[at, "parent_org"] else f"Parent {seed}-{serial}"
    added = book.iloc[rng.integers(0, len(book), n_added)].copy()
    taken = set(book["client_id"])
    ids = [f"INC{seed}-{k:06d}" for k in range(n_added)]
    assert not taken.intersection(ids), "new client ids collide with the book's"
    added["client_id"] = ids
    shorten = rng.random(n_added) < 0.5
    names = added["client_name"].astype(str)
    added["client_name"] = np.where(shorten & (names.str.len() > 4), names.str[:-1], names)
    return pd.concat([changed, added], ignore_index=True)


# compare_tables drops these everywhere for match_model's sake (whether and why this run estimated the model); in
# other tables a reason is content (a key's retirement, a quarantined row) and an incremental run must match it
MODEL_RUN_COLUMNS = {"re_estimated", "reason"}


def excluded_columns(table: str) -> set[str]:
    """Columns two runs differ on whatever they computed: the lean identity test's (time stamps, etags, plan ids)
    and compare_tables' run-time columns (a second run also stamps valid_to and retired_at)."""
    run_time = RUN_TIME_COLUMNS - MODEL_RUN_COLUMNS if table != "match_model" else RUN_TIME_COLUMNS
    return set(EXCLUDED_COLUMNS.get(table, [])) | run_time


def published_tables(data_dir: Path) -> set[str]:
    """The tables ``published.json`` names (what fingerprint_tables.read_published reads)."""
    return set(json.loads((data_dir / "published.json").read_text())["tables"])


def table_digest(path: Path, excluded: set[str]) -> tuple[list[str], int, int, dict[str, int]]:
    """(header, rows, a digest of the rows as a multiset, {column: a digest of its values as a multiset}) of a
    published CSV file, every field as the text the file holds, the ``excluded`` columns left out.

    Summed 64-bit hashes rather than fingerprint_tables' sorted lists of texts: at 1M clients the two folders' tables
    held as Python lists took 12 GB in the bench's own process; this holds one table at a time, as arrays."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    kept = [c for c in header if c not in excluded]
    # every field as text, an empty one included (no null, no type inference: "NA" and "007" stay as written)
    convert = pa_csv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        include_columns=kept,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    frame = pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(newlines_in_values=True), convert_options=convert)
    frame = frame.to_pandas()
    rows = int(pd.util.hash_pandas_object(frame, index=False).to_numpy().sum())  # uint64: wraps, as a digest may
    columns = {c: int(pd.util.hash_array(frame[c].to_numpy(dtype=object)).sum()) for c in kept}
    return header, len(frame), rows, columns


def table_differences(a_dir: Path, b_dir: Path) -> dict[str, str]:
    """{table: how it differs} over the published tables of two data folders, ``excluded_columns`` aside; rows
    compared as a multiset (row order is not a table property, as in compare_tables)."""
    in_a, in_b = published_tables(a_dir), published_tables(b_dir)
    out = {}
    for table in sorted(in_a | in_b):
        if table not in in_a or table not in in_b:
            out[table] = f"published in {'A' if table in in_a else 'B'} only"
            continue
        excluded = excluded_columns(table)
        header_a, rows_a, digest_a, columns_a = table_digest(table_path(a_dir, table), excluded)
        header_b, rows_b, digest_b, columns_b = table_digest(table_path(b_dir, table), excluded)
        if header_a != header_b:
            out[table] = f"columns differ: A {header_a}, B {header_b}"
        elif (rows_a, digest_a) != (rows_b, digest_b):
            differing = [c for c in columns_a if columns_a[c] != columns_b[c]]
            out[table] = f"{rows_a:,} rows in A, {rows_b:,} in B; columns whose values differ: {differing or 'none (rows do)'}"
    return out


def resolution_mode(home: Path) -> str | None:
    """client_xref's ``resolution_mode`` metadata in the latest run of the instance at ``home`` (None: not recorded)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef  # not re-exported by dagster

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return None
        records = instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        for record in records:
            event = record.event_log_entry.dagster_event
            materialization = record.event_log_entry.asset_materialization
            if event is not None and event.asset_key.path[-1] == "client_xref" and materialization is not None:
                entry = materialization.metadata.get("resolution_mode")
                return None if entry is None else str(entry.value)
    return None


def _run(folder: Path, label: str, run_config: dict | None = None) -> dict:
    (folder / "dagster_home").mkdir(exist_ok=True)
    args = ["e2e", "--data-dir", str(folder / "data"), "--dagster-home", str(folder / "dagster_home")]
    if run_config:
        args += ["--run-config", json.dumps(run_config)]
    result, _ = bench._run_child(args, label, progress=folder / "progress.jsonl")
    return result


def _land_changes(a: Path, b: Path, n: int, changes: int) -> int:
    """``CHANGE_FILE`` in A's and B's landing, the same bytes and mtime; returns its rows."""
    landing = a / "data" / "landing"
    book_file = landing / bench.drop_files(n)[0][0]  # the generator's book (the file of API ids)
    book = pd.read_csv(book_file, dtype=str, keep_default_na=False)
    rows = change_rows(book, changes)
    del book
    target = landing / CHANGE_FILE
    rows.to_csv(target, index=False, encoding="utf-8")
    newer = book_file.stat().st_mtime + 60  # applied after the book, and long past the settle time
    os.utime(target, (newer, newer))
    shutil.copy2(target, b / "data" / "landing" / CHANGE_FILE)
    return len(rows)


def measure(n: int, changes: int, log: Callable[[str], None] = print) -> dict:
    """{clients, changes, full_seconds, incremental_seconds, incremental_peak_rss_mb, identical, differing_tables,
    mode, ...}: see the module's docstring. A run that fails raises (``bench.RunFailed``, ``guard.GuardKilled``)."""
    source = bench.BENCH_DIR / f"n{n}" / "data"
    if not (source / "landing").is_dir():
        log(f"no drop of {n:,} clients in {source}: writing it (not timed)")
        bench._prepare(n)
    scratch = (bench.BENCH_DIR / f"incremental{n}").resolve()
    if scratch.exists():
        shutil.rmtree(scratch)
    a, b = scratch / "A", scratch / "B"
    make_run.prepare(source, a)

    first = _run(a, f"incremental bench, first run on {n:,} clients")
    log(f"first run (A): {first['seconds']:.2f}s in Dagster, peak RSS {first['peak_rss_mb']:,.0f} MB")
    shutil.copytree(a, b)  # data/ with its published tables and dagster_home/ with the first run's records
    landed = _land_changes(a, b, n, changes)
    log(f"{CHANGE_FILE}: {landed:,} rows landed in A and B")

    incremental = _run(a, f"incremental bench, incremental run on {n:,} clients")
    mode = resolution_mode(a / "dagster_home")
    log(
        f"incremental run (A): {incremental['seconds']:.2f}s in Dagster, peak RSS {incremental['peak_rss_mb']:,.0f} MB; "
        f"mode: {mode or 'not recorded'}"
    )
    full = _run(b, f"incremental bench, full run on {n:,} clients", FULL_RUN_CONFIG)
    log(
        f"full run (B): {full['seconds']:.2f}s in Dagster, peak RSS {full['peak_rss_mb']:,.0f} MB; "
        f"mode: {resolution_mode(b / 'dagster_home') or 'not recorded'}"
    )

    differing = table_differences(a / "data", b / "data")
    for table, how in differing.items():
        log(f"differs: {table}: {how}")
    log("every published table identical (run-time columns aside)" if not differing else f"{len(differing)} table(s) differ")
    return {
        "clients": n,
        "changes": landed,
        "full_seconds": full["seconds"],
        "incremental_seconds": incremental["seconds"],
        "incremental_peak_rss_mb": incremental["peak_rss_mb"],
        "identical": not differing,
        "differing_tables": sorted(differing),
        "mode": mode or MODE_UNREAD,
        "first_seconds": first["seconds"],
        "full_peak_rss_mb": full["peak_rss_mb"],
        "differences": differing,
        "incremental_steps": incremental["steps"],
        "full_steps": full["steps"],
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the incremental run against the full run after a change batch")
    parser.add_argument("--n", type=bench._parse_size, default=20_000)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(measure(args.n, args.changes), indent=1, default=str))
