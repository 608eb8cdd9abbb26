"""The write-back's bench: a published plan of N changed assignments applied to the mock CRM over HTTP.

    python -m crm_territory_tests.benchmarks.writeback [--sizes 10000,100000] [--repeats 3]

For each size N and repeat: the writable mock CRM (``python -m mock_api``, N + 500 clients, 2% of requests
answered 503 and 2% of writes' connections dropped after the write was applied) and a plan moving N of its
records (``support.mock_crm_writes.synthetic_plan``, written as the published ``crm_writeback_plan`` CSV; not
timed). Then, each in a fresh subprocess so its peak RSS is its own:

* apply: ``apply_published_plan`` exactly as ``writeback apply`` runs it (the plan streamed from the CSV, batches
  of 200 with their idempotency keys, retries with the production back-off, the log appended and fsync'd per batch);
* re-apply: the same again, which must send nothing (the no-op target);
* floor: the same batches POSTed back to back with httpx to a second, fault-free mock (no plan reading, no log,
  no retries): what the HTTP round trips alone cost on this machine.

Every apply is checked: every record ok, the log holding each record once. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRATCH = REPO_ROOT / ".bench" / "writeback"
RESULT_MARKER = "WRITEBACK_RESULT "
ERROR_RATE = 0.02
SIZES = (10_000, 100_000)
# issue 13: 100,000 changed assignments applied in under 2 minutes with 2% injected errors; a no-op re-run in under
# 5 s; memory bounded by the batch, not the plan
APPLY_TARGET_S = {100_000: 120.0}
NOOP_TARGET_S = 5.0


def _peak_rss_mb() -> float:
    from crm_territory_tests.benchmarks.bench import _peak_rss_mb as peak

    return peak()


def child_apply(data_dir: Path, url: str) -> int:
    from crm_territory.logic.writeback.acts import apply_published_plan
    from crm_territory.logic.writeback.journal import WritebackJournal
    from crm_territory.storage.local import LocalCsvTableStore

    started = time.perf_counter()
    summary = apply_published_plan(LocalCsvTableStore(data_dir=str(data_dir)), WritebackJournal(data_dir), url, lambda _: None)
    seconds = time.perf_counter() - started
    payload = {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "batches_sent": summary.batches_sent, **summary.records}
    print(RESULT_MARKER + json.dumps(payload), flush=True)
    return 0


def child_floor(bodies: Path, url: str, token: str) -> int:
    import httpx

    requests = json.loads(bodies.read_text())
    started = time.perf_counter()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0) as client:
        for records in requests:
            client.post("/clients/bulk-assign", json={"records": records}).raise_for_status()
    seconds = time.perf_counter() - started
    print(RESULT_MARKER + json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}), flush=True)
    return 0


def _child(args: list[str], env: dict[str, str]) -> dict:
    env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "crm_territory_tests.benchmarks.writeback", "--child", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    raise RuntimeError(f"write-back bench child {args[0]} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def run_once(n: int, repeat: int) -> dict:
    from crm_territory.logic.writeback.batches import bulk_records, plan_batches
    from crm_territory.logic.writeback.journal import WritebackJournal
    from crm_territory.storage.csv_tables import CsvTables
    from crm_territory_tests.support.mock_api_server import TEST_TOKEN
    from crm_territory_tests.support.mock_crm_writes import WRITE_TOKEN, run_writable_mock_api, synthetic_plan

    data_dir = SCRATCH / f"n{n}" / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    env = {"CRM_WRITE_TOKEN": WRITE_TOKEN, "CRM_API_TOKEN": TEST_TOKEN}
    book = {"clients": n + 500, "seed": 100 + repeat}
    # each mock's etags are its own: every plan is read from the CRM it is sent to
    with run_writable_mock_api(**book) as clean_url:
        bodies = SCRATCH / f"n{n}" / "bodies.json"
        bodies.write_text(json.dumps([bulk_records(b.rows) for b in plan_batches(synthetic_plan(clean_url, n))]))
        floor = _child(["floor", "--bodies", str(bodies), "--url", clean_url, "--token", WRITE_TOKEN], env)
    faults = {"error_rate": ERROR_RATE, "drop_after_write_rate": ERROR_RATE, "fault_seed": repeat + 1}
    with run_writable_mock_api(**book, **faults) as url:
        CsvTables(data_dir).write("crm_writeback_plan", synthetic_plan(url, n))
        apply = _child(["apply", "--data-dir", str(data_dir), "--url", url], env)
        again = _child(["apply", "--data-dir", str(data_dir), "--url", url], env)
    log = WritebackJournal(data_dir).read()
    problems = []
    if apply["ok"] != n or not log["crm_client_id"].is_unique or len(log) != n:
        problems.append(f"apply: {apply['ok']:,} ok of {n:,}, {len(log):,} log rows ({log['crm_client_id'].nunique():,} records)")
    if again["batches_sent"]:
        problems.append(f"re-apply sent {again['batches_sent']} batch(es)")
    return {"n": n, "apply": apply, "again": again, "floor": floor, "problems": problems}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def measure(sizes: tuple[int, ...] = SIZES, repeats: int = 3, log=print) -> tuple[list[dict], list[str]]:
    """Rows (one per size, medians over the repeats) and the target lines."""
    rows, lines = [], []
    for n in sizes:
        runs = []
        for r in range(repeats):
            run = run_once(n, r)
            runs.append(run)
            log(
                f"   write-back {n:,} run {r + 1}/{repeats}: apply {run['apply']['seconds']:.1f}s "
                f"({run['apply']['peak_rss_mb']:,.0f} MB), re-apply {run['again']['seconds']:.2f}s, "
                f"floor {run['floor']['seconds']:.1f}s" + (f"  PROBLEM: {'; '.join(run['problems'])}" if run["problems"] else "")
            )
        rows.append(
            {
                "n": n,
                "apply_s": _median([x["apply"]["seconds"] for x in runs]),
                "apply_rss_mb": max(x["apply"]["peak_rss_mb"] for x in runs),
                "noop_s": _median([x["again"]["seconds"] for x in runs]),
                "noop_rss_mb": max(x["again"]["peak_rss_mb"] for x in runs),
                "floor_s": _median([x["floor"]["seconds"] for x in runs]),
                "floor_rss_mb": max(x["floor"]["peak_rss_mb"] for x in runs),
                "problems": [p for x in runs for p in x["problems"]],
            }
        )
    for row in rows:
        target = APPLY_TARGET_S.get(row["n"])
        if target:
            verdict = "met" if row["apply_s"] <= target and not row["problems"] else "NOT met"
            lines.append(
                f"{row['n']:,} changed assignments applied with 2% injected errors <= {target:.0f} s: {row['apply_s']:.1f} s -> {verdict}"
            )
        verdict = "met" if row["noop_s"] <= NOOP_TARGET_S else "NOT met"
        lines.append(f"no-op re-apply of {row['n']:,} <= {NOOP_TARGET_S:.0f} s: {row['noop_s']:.2f} s -> {verdict}")
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        growth = large["apply_rss_mb"] - small["apply_rss_mb"]
        per_record = growth * 1e6 / max(1, large["n"] - small["n"])
        verdict = "met" if per_record < 200 else "NOT met"
        lines.append(
            f"memory bounded by the batch: peak RSS {small['apply_rss_mb']:,.0f} MB at {small['n']:,} vs "
            f"{large['apply_rss_mb']:,.0f} MB at {large['n']:,} ({per_record:,.0f} bytes per extra record; a plan row "
            f"held in pandas is ~1,000) -> {verdict}"
        )
    return rows, lines


def table(rows: list[dict]) -> list[list[str]]:
    out = [["plan rows", "apply s", "apply RSS MB", "no-op s", "no-op RSS MB", "HTTP floor s", "apply / floor"]]
    for r in rows:
        out.append(
            [
                f"{r['n']:,}", f"{r['apply_s']:.1f}", f"{r['apply_rss_mb']:,.0f}", f"{r['noop_s']:.2f}", f"{r['noop_rss_mb']:,.0f}",
                f"{r['floor_s']:.1f}", f"{r['apply_s'] / r['floor_s']:.1f}x",
            ]
        )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_territory_tests.benchmarks.writeback")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["apply", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "apply":
        return child_apply(args.data_dir, args.url)
    if args.child == "floor":
        return child_floor(args.bodies, args.url, args.token)
    rows, lines = measure(tuple(int(s) for s in args.sizes.split(",")), args.repeats)
    for row in table(rows):
        print("  ".join(f"{cell:>14}" for cell in row))
    for line in lines:
        print(line)
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
