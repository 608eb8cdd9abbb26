"""make bench's targets table (issue 15), its memory guard and the make-run timing: the verdicts, the wording of
what was not measured or was killed, the 10M extrapolation, and a real child killed above a small limit."""

import json
import sys
from pathlib import Path

import pytest

from crm_territory_tests.benchmarks import targets
from crm_territory_tests.benchmarks.bench import drop_files
from crm_territory_tests.benchmarks.guard import (
    GuardKilled,
    current_step,
    guard_report,
    run_guarded,
    step_seconds_from_progress,
)
from crm_territory_tests.benchmarks.make_run import run_seconds


def size(n, e2e, rss, floor=(2.0,), floor_rss=(900.0,), **extra):
    return {"n": n, "e2e": list(e2e), "e2e_rss": list(rss), "floor": list(floor), "floor_rss": list(floor_rss), **extra}


def test_guard_report_names_size_time_and_step():
    assert guard_report(12_134.0, 116.4, "client_xref") == "did not complete: killed at 12.1 GB after 116 s in step client_xref"
    assert guard_report(12_000.0, 3.0, None).endswith("before the first step")


def test_full_run_is_met_only_within_both_limits_and_shows_the_floor():
    met = targets.full_run_row(size(1_000_000, [44.0, 45.0, 50.0], [1900.0, 1990.0, 1950.0], floor=[4.5, 5.0, 6.0]))
    assert met.met and met.cells()[-1] == "met"
    assert met.measured == "45.0 s (median of 3), 1.99 GB"
    assert met.floor == "pandas floor 5.0 s, 0.90 GB (9x)"
    too_big = targets.full_run_row(size(1_000_000, [30.0], [2001.0]))
    assert not too_big.met and too_big.cells()[-1] == "NOT met"
    assert not targets.full_run_row(size(1_000_000, [45.1], [1000.0])).met


def test_a_target_not_measured_is_not_met_with_the_reason():
    row = targets.full_run_row(None)
    assert not row.met and "not measured (1M not in --sizes)" in row.measured
    inc = targets.incremental_row(None, "no incremental bench in this checkout")
    assert not inc.met and inc.measured == "not measured (no incremental bench in this checkout)"
    assert not targets.sql_row(None, "skipped: --skip sql").met
    whole, run = targets.make_run_rows(None, None, "100,000 not in --sizes")
    assert not whole.met and not run.met and "100,000 not in --sizes" in run.measured


def test_killed_large_run_shows_the_guard_report_and_is_not_met():
    row = targets.large_run_row(
        size(5_000_000, [], [], floor=[20.0], floor_rss=[4500.0], killed=guard_report(12_100, 116, "client_xref"))
    )
    assert not row.met
    assert row.measured == "did not complete: killed at 12.1 GB after 116 s in step client_xref"
    assert row.floor == "pandas floor 20.0 s, 4.50 GB"
    assert targets.large_run_row(size(5_000_000, [290.0], [7900.0])).met
    assert not targets.large_run_row(size(5_000_000, [301.0], [7900.0])).met


def test_make_run_rows_judge_the_whole_command_and_its_own_run():
    result = {"whole": [11.0, 13.0, 12.0], "run": [5.0, 7.0, 6.5], "rss": [800.0, 900.0, 850.0]}
    whole, run = targets.make_run_rows(result, size(100_000, [4.0, 4.2, 4.4], [700.0] * 3, floor=[1.0] * 3))
    assert whole.met and "12.0 s (median of 3)" in whole.measured
    assert not run.met and run.measured.startswith("6.5 s (median of 3; materialize_all_job")
    assert "drop_ingest_job alone (the bench's e2e child) 4.2 s" in run.measured


def test_fit_line_and_the_10m_extrapolation():
    intercept, slope = targets.fit_line({1_000_000: 3000.0, 2_000_000: 5000.0, 5_000_000: 11000.0})
    assert intercept == pytest.approx(1000.0) and slope * 1e6 == pytest.approx(2000.0)
    over = targets.huge_row({1_000_000: 3000.0, 2_000_000: 6000.0}, {1_000_000: 90.0, 2_000_000: 190.0}, 24_000.0)
    assert over.met and over.verdict == "met: limit explained (extrapolated)"
    assert over.measured.startswith("EXTRAPOLATED, not measured: peak RSS ~30.00 GB (least-squares line through 1M/2M")
    assert "time on the completed sizes' line ~" in over.measured and over.measured.endswith("does not fit in memory")
    fits = targets.huge_row({1_000_000: 1000.0, 2_000_000: 1500.0}, {}, 24_000.0)
    assert not fits.met and fits.verdict == "NOT met (not measured)" and "would fit" in fits.measured


def test_a_killed_size_is_checked_against_the_line_and_else_joins_it_as_a_lower_bound():
    consistent = targets.huge_row({1_000_000: 3000.0, 2_000_000: 6000.0}, {}, 24_000.0, {5_000_000: 12_000.0})
    assert "~30.00 GB" in consistent.measured and "at least" not in consistent.measured
    assert "it puts 5M at 15.00 GB, where the guard killed it at 12.00 GB" in consistent.measured
    short = targets.huge_row({1_000_000: 3000.0, 2_000_000: 4000.0}, {}, 24_000.0, {5_000_000: 12_000.0})
    assert "at least ~" in short.measured and "with the killed size as a lower bound" in short.measured
    alone = targets.huge_row({1_000_000: 3000.0}, {}, 24_000.0, {5_000_000: 12_000.0})
    assert "at least" in alone.measured and "through 1M/5M" in alone.measured
    assert not targets.huge_row({1_000_000: 3000.0}, {}, 24_000.0).met


def test_incremental_row_needs_both_speed_and_identical_tables():
    result = {
        "clients": 1_000_000,
        "changes": 1000,
        "full_seconds": 80.0,
        "incremental_seconds": 8.0,
        "incremental_peak_rss_mb": 1500.0,
        "identical": True,
        "differing_tables": [],
        "mode": "incremental",
    }
    row = targets.incremental_row(result)
    assert row.met and row.floor == "full run on the same book 80.0 s (10x the incremental)"
    differing = targets.incremental_row({**result, "identical": False, "differing_tables": ["client_dim"]})
    assert not differing.met and "NO (client_dim)" in differing.measured
    assert not targets.incremental_row({**result, "incremental_seconds": 10.5}).met
    assert not targets.incremental_row({"error": "boom"}).met


def test_sql_row_takes_every_rules_file_at_1m():
    rows = [
        {"clients": 100_000, "rules": "active", "engine": "sql-fakesnow", "seconds": 20.0, "identical": False},
        {"clients": 1_000_000, "rules": "active", "engine": "pandas", "seconds": 2.0, "identical": True},
        {"clients": 1_000_000, "rules": "active", "engine": "sql-fakesnow", "seconds": 6.0, "identical": True},
        {"clients": 1_000_000, "rules": "worked", "engine": "pandas", "seconds": 3.0, "identical": True},
        {"clients": 1_000_000, "rules": "worked", "engine": "sql-fakesnow", "seconds": 9.0, "identical": True},
    ]
    row = targets.sql_row(rows)
    assert row.met and row.measured == "active 6.0 s; worked 9.0 s; identical"
    assert row.floor == "pandas engine active 2.0 s; worked 3.0 s"
    rows[-1] = {**rows[-1], "seconds": 10.5}
    assert not targets.sql_row(rows).met


def test_markdown_escapes_pipes_and_bolds_the_verdict():
    text = targets.render_markdown([targets.Row("a | b", "<= 1 s", "2 s", "-", False)])
    assert text.splitlines()[-1] == "| a \\| b | <= 1 s | 2 s | - | **NOT met** |"


def test_scaling_table_shows_a_killed_size_partially():
    sizes = [
        size(1_000_000, [80.0], [3500.0], steps=[{"raw_clients": 10.0, "client_xref": 20.0}]),
        {
            **size(5_000_000, [], []),
            "steps": [],
            "killed": "did not complete",
            "killed_step": "client_xref",
            "killed_rss_mb": 12_100.0,
            "killed_steps": {"raw_clients": 50.0},
        },
    ]
    table = targets.scaling_table(sizes)
    assert table[0] == ["step", "1M", "5M"]
    body = {row[0]: row[1:] for row in table[1:]}
    assert body["client_xref"] == ["20.00", "killed"]
    assert body["raw_clients"] == ["10.00", "50.00"]
    assert body["peak RSS GB"] == ["3.50", ">= 12.1 (killed)"]
    assert body["Dagster run, wall s"] == ["80.0", "killed"]
    assert [row[0] for row in table[1:3]] == ["client_xref", "raw_clients"]  # slowest first at the largest completed size


def test_progress_file_gives_the_running_step_and_the_finished_steps(tmp_path: Path):
    progress = tmp_path / "progress.jsonl"
    assert current_step(progress) is None
    lines = [
        {"event": "start", "step": "raw_clients", "t": 100.0},
        {"event": "end", "step": "raw_clients", "t": 150.5},
        {"event": "start", "step": "client_xref", "t": 151.0},
    ]
    progress.write_text("\n".join(json.dumps(x) for x in lines) + "\n{half a line")
    assert current_step(progress) == "client_xref"
    assert step_seconds_from_progress(progress) == {"raw_clients": 50.5}


def test_the_guard_kills_a_child_above_its_limit(tmp_path: Path):
    hog = "import time\nblock = bytearray(400 * 1024 * 1024)\nblock[::4096] = b'x' * len(block[::4096])\ntime.sleep(60)\n"
    with pytest.raises(GuardKilled) as killed:
        run_guarded([sys.executable, "-c", hog], cwd=tmp_path, env={}, label="hog", limit_mb=150.0, timeout_s=30, poll_s=0.1)
    assert killed.value.rss_mb > 150.0 and killed.value.seconds < 30
    assert killed.value.report.startswith("did not complete: killed at 0.")


def test_the_guard_returns_a_small_childs_output(tmp_path: Path):
    done = run_guarded(
        [sys.executable, "-c", "print('hello')"], cwd=tmp_path, env={}, label="small", limit_mb=1000.0, timeout_s=30
    )
    assert done.returncode == 0 and done.stdout == "hello\n"


def test_make_run_summary_line_is_parsed():
    out = "mock CRM API started\ncrm-territory run 9824c0a0 (materialize_all_job): SUCCESS with 4 warnings in 6.5s\n  clients 2\n"
    assert run_seconds(out) == ("materialize_all_job", "SUCCESS", 6.5)
    assert run_seconds("no summary") is None


def test_drops_above_one_file_use_the_generators_second_lane():
    assert drop_files(1_000_000) == [("clients.csv", 1_000_000, None)]
    assert drop_files(5_000_000) == [("clients.csv", 2_500_000, None), ("clients_new.csv", 2_500_000, 0)]
    with pytest.raises(ValueError, match="distinct organisations"):
        drop_files(10_000_000)
