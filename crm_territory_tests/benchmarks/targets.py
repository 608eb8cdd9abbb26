"""Issue 15's targets as one table: target, limit, measured, the floor of the same run, met / NOT met.

Pure functions over what ``bench`` measured (no process is started here), so the verdicts and the wording are
unit-tested. ``bench`` prints the table at the end of its output and writes it at the top of ``.bench/results.md``.
A target that was not measured is NOT met, with the reason in place of the figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MB_PER_GB = 1000.0  # MB = 10^6 bytes, GB = 10^9 bytes

# issue 15's targets
FULL_N = 1_000_000
FULL_LIMIT_S, FULL_LIMIT_MB = 45.0, 2000.0
MAKE_RUN_N = 100_000
MAKE_RUN_LIMIT_S, DAGSTER_RUN_LIMIT_S = 12.0, 6.0
LARGE_N = 5_000_000
LARGE_LIMIT_S, LARGE_LIMIT_MB = 300.0, 8000.0
HUGE_N = 10_000_000
INCREMENTAL_N, INCREMENTAL_CHANGES = 1_000_000, 1_000
INCREMENTAL_LIMIT_S = 10.0
SQL_N = 1_000_000
SQL_LIMIT_S = 10.0
SCALING_SIZES = (1_000_000, 2_000_000, 5_000_000)


@dataclass(frozen=True)
class Row:
    target: str
    limit: str
    measured: str
    floor: str
    met: bool
    verdict: str = ""  # empty: "met" / "NOT met" from ``met``

    def cells(self) -> list[str]:
        return [self.target, self.limit, self.measured, self.floor, self.verdict or mark(self.met)]


HEADER = ["target", "limit", "measured (time / peak RSS)", "floor in the same run", "met?"]


def mark(met: bool) -> str:
    return "met" if met else "NOT met"


def seconds(value: float) -> str:
    """12.3 s; from two minutes on also in minutes: 312 s (5.2 min)."""
    if value >= 120:
        return f"{value:,.0f} s ({value / 60:.1f} min)"
    return f"{value:.1f} s" if value >= 1 else f"{value:.2f} s"


def gigabytes(mb: float) -> str:
    return f"{mb / MB_PER_GB:.2f} GB"


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def runs_note(count: int) -> str:
    return "median of 3" if count == 3 else f"median of {count}" if count > 1 else "one run"


def _floor(size: Mapping | None, e2e_s: float | None = None) -> str:
    """The pandas floor of a size's runs (median, its peak RSS) and the ratio to ``e2e_s``."""
    if not size or not size.get("floor"):
        return "-"
    floor_s = median(size["floor"])
    assert floor_s is not None
    text = f"pandas floor {seconds(floor_s)}, {gigabytes(max(size['floor_rss']))}"
    if e2e_s is not None and floor_s > 0:
        text += f" ({e2e_s / floor_s:.0f}x)"
    return text


def _whole_run_row(size: Mapping | None, target: str, limit: str, n_label: str, limit_s: float, limit_mb: float) -> Row:
    """A whole drop_ingest_job at one size against its time and memory limits (the 1M and the 5M targets)."""
    if not size:
        return Row(target, limit, f"not measured ({n_label} not in --sizes)", "-", False)
    if size.get("killed"):
        return Row(target, limit, size["killed"], _floor(size), False)
    if not size.get("e2e"):
        return Row(target, limit, f"not measured: {size.get('error') or 'no run'}", _floor(size), False)
    e2e, rss = median(size["e2e"]), max(size["e2e_rss"])
    assert e2e is not None
    measured = f"{seconds(e2e)} ({runs_note(len(size['e2e']))}), {gigabytes(rss)}"
    return Row(target, limit, measured, _floor(size, e2e), e2e <= limit_s and rss <= limit_mb)


def full_run_row(size: Mapping | None) -> Row:
    return _whole_run_row(
        size,
        f"{FULL_N:,} clients, first run, whole drop_ingest_job with every check",
        f"<= {FULL_LIMIT_S:.0f} s and <= {gigabytes(FULL_LIMIT_MB)}",
        "1M",
        FULL_LIMIT_S,
        FULL_LIMIT_MB,
    )


def make_run_rows(make_run: Mapping | None, size: Mapping | None, reason: str = "") -> list[Row]:
    """Two rows: ``make run`` as a whole, and the Dagster run inside it (with drop_ingest_job alone beside it)."""
    whole_target = f"{MAKE_RUN_N // 1000}k clients: `make run` as a whole, warm venv"
    run_target = f"{MAKE_RUN_N // 1000}k clients: the Dagster run of `make run`"
    whole_limit, run_limit = f"<= {MAKE_RUN_LIMIT_S:.0f} s", f"<= {DAGSTER_RUN_LIMIT_S:.0f} s"
    if not make_run or not make_run.get("whole"):
        why = reason or (make_run or {}).get("error") or "no run"
        return [
            Row(whole_target, whole_limit, f"not measured ({why})", _floor(size), False),
            Row(run_target, run_limit, f"not measured ({why})", _floor(size), False),
        ]
    whole, run = median(make_run["whole"]), median(make_run["run"])
    assert whole is not None and run is not None
    note = runs_note(len(make_run["whole"]))
    alone = ""
    if size and size.get("e2e"):
        alone_s = median(size["e2e"])
        assert alone_s is not None
        alone = f"; drop_ingest_job alone (the bench's e2e child) {seconds(alone_s)}"
    return [
        Row(
            whole_target,
            whole_limit,
            f"{seconds(whole)} ({note}), {gigabytes(max(make_run['rss']))} (the run's process and the mock API)",
            _floor(size, whole),
            whole <= MAKE_RUN_LIMIT_S,
        ),
        Row(
            run_target,
            run_limit,
            f"{seconds(run)} ({note}; materialize_all_job as `make run` reports it){alone}",
            _floor(size, run),
            run <= DAGSTER_RUN_LIMIT_S,
        ),
    ]


def large_run_row(size: Mapping | None) -> Row:
    return _whole_run_row(
        size,
        f"{LARGE_N:,} clients, whole drop_ingest_job",
        f"completes in <= {LARGE_LIMIT_S / 60:.0f} min and <= {gigabytes(LARGE_LIMIT_MB)}",
        "5M",
        LARGE_LIMIT_S,
        LARGE_LIMIT_MB,
    )


def fit_line(points: Mapping[int, float]) -> tuple[float, float]:
    """Least-squares (intercept, slope per client) through (clients, value); one point: through the origin."""
    if not points:
        raise ValueError("no points to fit")
    if len(points) == 1:
        ((n, value),) = points.items()
        return 0.0, value / n
    xs, ys = list(points), list(points.values())
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def huge_row(
    rss_points: Mapping[int, float],
    time_points: Mapping[int, float],
    machine_mb: float,
    killed: Mapping[int, float] | None = None,
    generator_limit: int | None = None,
) -> Row:
    """10M: not run; its limit explained from the measured sizes' peak RSS (an extrapolation, labelled as such).

    ``rss_points`` / ``time_points``: clients -> peak MB / seconds of the sizes from 1M up that completed;
    ``killed``: clients -> MB at which the guard killed that size (a lower bound of its peak). The line goes
    through the completed sizes (least squares); a killed size is checked against it (the line must put it at or
    above where it was killed) and, if the line falls short of it or only one size completed, joins the fit as a
    lower bound, so the 10M figure becomes "at least". Met when the extrapolated peak is beyond the machine's
    memory (the limit is then explained); otherwise the row says it would fit and was not measured (NOT met).
    """
    target = f"{HUGE_N:,} clients"
    limit = "measured, or its limit explained"
    killed = dict(killed or {})
    fit, bound = dict(rss_points), ""
    if len(fit) < 2 or any(_at(fit, n) < mb for n, mb in killed.items()):
        fit.update(killed)
        bound = "at least " if killed else ""
    if len(fit) < 2:
        return Row(target, limit, "not measured, and too few sizes from 1M up measured to extrapolate", "-", False)
    intercept, slope = fit_line(fit)
    rss = intercept + slope * HUGE_N
    through = "/".join(_label(n) for n in sorted(fit))
    text = (
        f"EXTRAPOLATED, not measured: peak RSS {bound}~{gigabytes(rss)} (least-squares line through {through}"
        + (" with the killed size as a lower bound" if bound else "")
        + f": {slope * 1e6 / MB_PER_GB:.2f} GB per 1M clients"
    )
    for n, mb in sorted(killed.items()):
        text += f"; it puts {_label(n)} at {gigabytes(intercept + slope * n)}, where the guard killed it at {gigabytes(mb)}"
    text += f") against this machine's {gigabytes(machine_mb)}"
    if len(time_points) >= 2:
        t_intercept, t_slope = fit_line(time_points)
        text += f"; time on the completed sizes' line ~{seconds(t_intercept + t_slope * HUGE_N)} if it fitted"
    if generator_limit is not None:
        text += f"; the bench's generator names at most ~{generator_limit / 1e6:.0f}M distinct organisations"
    if rss > machine_mb:
        return Row(target, limit, text + ": does not fit in memory", "-", True, "met: limit explained (extrapolated)")
    return Row(target, limit, text + ": would fit, not run", "-", False, "NOT met (not measured)")


def _at(points: Mapping[int, float], n: int) -> float:
    intercept, slope = fit_line(points)
    return intercept + slope * n


def _label(n: int) -> str:
    return f"{n / 1_000_000:g}M"


def incremental_row(result: Mapping | None, reason: str = "") -> Row:
    target = f"a run after {INCREMENTAL_CHANGES:,} changed clients on a {INCREMENTAL_N // 1_000_000}M book"
    limit = f"<= {INCREMENTAL_LIMIT_S:.0f} s, tables identical to a full run"
    if not result:
        return Row(target, limit, f"not measured ({reason or 'no result'})", "-", False)
    if result.get("error"):
        return Row(target, limit, f"not measured (the incremental bench failed: {result['error']})", "-", False)
    inc, full = float(result["incremental_seconds"]), float(result["full_seconds"])
    identical = bool(result["identical"])
    differing = list(result.get("differing_tables") or [])
    measured = (
        f"{seconds(inc)} ({result.get('mode', '?')}), {gigabytes(float(result['incremental_peak_rss_mb']))}; identical tables: "
        + ("yes" if identical else f"NO ({', '.join(differing) or 'differing tables not named'})")
    )
    floor = f"full run on the same book {seconds(full)}" + (f" ({full / inc:.0f}x the incremental)" if inc > 0 else "")
    return Row(target, limit, measured, floor, inc <= INCREMENTAL_LIMIT_S and identical)


def sql_row(rows: Sequence[Mapping] | None, reason: str = "") -> Row:
    """From ``rules_sql.bench``'s rows at 1M: every rules file placed in fakesnow within the limit, identical."""
    target = f"rules compiled to SQL: {SQL_N // 1_000_000}M clients placed inside fakesnow"
    limit = f"<= {SQL_LIMIT_S:.0f} s, identical placements"
    at_n = [r for r in rows or [] if r["clients"] == SQL_N]
    sql = [r for r in at_n if r["engine"] == "sql-fakesnow"]
    if not sql:
        return Row(target, limit, f"not measured ({reason or 'no 1M row'})", "-", False)
    pandas = {r["rules"]: r["seconds"] for r in at_n if r["engine"] == "pandas"}
    identical = all(r["identical"] for r in sql)
    measured = "; ".join(f"{r['rules']} {seconds(r['seconds'])}" for r in sql) + (
        "; identical" if identical else "; NOT identical"
    )
    floor = "pandas engine " + "; ".join(f"{name} {seconds(s)}" for name, s in pandas.items()) if pandas else "-"
    return Row(target, limit, measured, floor, identical and all(r["seconds"] <= SQL_LIMIT_S for r in sql))


def render_plain(rows: Sequence[Row]) -> str:
    """The table as the terminal shows it: one block per target (the cells are long)."""
    lines = []
    for row in rows:
        lines += [
            f"[{row.verdict or mark(row.met)}] {row.target} ({row.limit})",
            f"    measured: {row.measured}",
            f"    floor:    {row.floor}",
        ]
    return "\n".join(lines)


def render_markdown(rows: Sequence[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(HEADER) + " |", "|---|---|---|---|---|"]
    for row in rows:
        cells = row.cells()
        cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines)


def scaling_table(sizes: Sequence[Mapping], wanted: Sequence[int] | None = None) -> list[list[str]]:
    """Per-step median seconds of the Dagster run at each size (columns), the run's wall time and peak RSS.

    A killed size shows its completed steps, ``killed`` in the step it was in and ``-`` after it.
    """
    cols = [s for s in sizes if (wanted is None or s["n"] in wanted) and (s.get("steps") or s.get("killed_steps") is not None)]
    if not cols:
        return []
    per_size: list[dict[str, float]] = []
    for s in cols:
        runs = s.get("steps") or []
        keys = sorted({k for steps in runs for k in steps})
        medians = {k: statistics.median([r[k] for r in runs if k in r]) for k in keys}
        if s.get("killed_steps") is not None:
            medians = dict(s["killed_steps"])
        per_size.append(medians)
    completed = [m for s, m in zip(cols, per_size) if not s.get("killed")]
    largest = completed[-1] if completed else per_size[-1]  # rows ordered by the largest size that completed
    keys = sorted({k for m in per_size for k in m}, key=lambda k: (-largest.get(k, 0.0), k))
    header = ["step"] + [_size_label(s["n"]) for s in cols]
    body = [header]
    for key in keys:
        body.append([key] + [_step_cell(s, m, key) for s, m in zip(cols, per_size)])
    body.append(
        ["sum of steps"] + [f"{sum(m.values()):.1f}" + (" (partial)" if s.get("killed") else "") for s, m in zip(cols, per_size)]
    )
    body.append(["Dagster run, wall s"] + [("killed" if s.get("killed") else f"{median(s['e2e']):.1f}") for s in cols])
    body.append(
        ["peak RSS GB"]
        + [
            (f">= {s['killed_rss_mb'] / MB_PER_GB:.1f} (killed)" if s.get("killed") else f"{max(s['e2e_rss']) / MB_PER_GB:.2f}")
            for s in cols
        ]
    )
    return body


def _step_cell(size: Mapping, medians: Mapping[str, float], key: str) -> str:
    if key in medians:
        return f"{medians[key]:.2f}"
    if size.get("killed") and size.get("killed_step") == key:
        return "killed"
    return "-"


def _size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"
