"""How long each page of the analytics app takes to compute at 100,000 clients: the first load and a cached one.

    python -m crm_territory_tests.benchmarks.app_pages [--n 100000] [--reuse | --data-dir DIR]

The book is the bench's own (``bench._prepare``: one drop of N generated clients under ``.bench/n<N>/data``) and the
pipeline runs as the bench runs it (``bench._run_child`` -> ``drop_ingest_job`` in a fresh subprocess); ``--reuse``
skips both when that folder already holds a published run; ``--data-dir`` times a published folder as it is. Then, in this process, each page's figures are computed
through the app's own cached functions (``crm_territory.app.cache``, outside a Streamlit server: st.cache_data keeps
them in memory all the same): ``seconds_first`` with every cache emptied (the tables read from disk, then the
figures), ``seconds_cached`` the same call again. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm_territory_tests.benchmarks.bench import BENCH_DIR, _prepare, _run_child

PAGES = ("Overview", "Territories", "Territory", "Advisors", "Account families", "Rules preview", "History", "Data quality")


def page_calls(version: str) -> dict[str, Callable[[], Any]]:
    """Each page's cached computation, with the arguments the page passes by default."""
    import pandas as pd

    from crm_territory.app import cache

    def territory() -> Any:
        first = cache.territories(version)["Territory"].iloc[0]  # the page opens on the largest territory
        return cache.territory(version, str(first), "")

    def history() -> Any:
        key = str(cache.table(version, "client_dim")["client_key"].iloc[0])
        return cache.history(version, key, pd.Timestamp.now(tz="UTC").normalize() + pd.Timedelta(days=1) - pd.Timedelta(1, "ns"))

    return {
        "Overview": lambda: cache.overview(version),
        "Territories": lambda: cache.territories(version),
        "Territory": territory,
        "Advisors": lambda: cache.advisors(version),
        "Account families": lambda: cache.families(version),
        "Rules preview": lambda: cache.rules_preview(version, cache.candidate_stamp()),
        "History": history,
        "Data quality": lambda: cache.quality(version),
    }


def time_pages(data_dir: Path) -> list[dict[str, Any]]:
    """Rows {page, seconds_first, seconds_cached} for the published tables of ``data_dir`` (CSV storage)."""
    os.environ["CRM_DATA_DIR"] = str(data_dir)
    os.environ["CRM_STORAGE"] = "local"
    # outside a server Streamlit warns on every cached call that there is no script run context
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    import streamlit as st

    from crm_territory.app import cache

    st.cache_resource.clear()
    version = cache.version()
    rows = []
    for page, call in page_calls(version).items():
        st.cache_data.clear()
        started = time.perf_counter()
        call()
        first = time.perf_counter() - started
        started = time.perf_counter()
        call()
        rows.append({"page": page, "seconds_first": round(first, 3), "seconds_cached": round(time.perf_counter() - started, 3)})
    return rows


def prepare_book(n: int, reuse: bool) -> Path:
    """``.bench/n<N>/data`` with a published run of the bench's N-client drop (built by bench.py's own helpers)."""
    data_dir = BENCH_DIR / f"n{n}" / "data"
    if reuse and (data_dir / "published.json").is_file():
        return data_dir
    data_dir, _ = _prepare(n)
    _run_child(["e2e", "--data-dir", str(data_dir)], f"app pages book, {n:,} clients")
    return data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="clients in the book (default 100000)")
    parser.add_argument("--reuse", action="store_true", help="reuse .bench/n<N>/data if a run was published there")
    parser.add_argument("--data-dir", type=Path, help="time this published data folder (no book built, no run)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or prepare_book(args.n, args.reuse)
    rows = time_pages(data_dir)
    print(f"\nAnalytics app pages ({data_dir}):")
    print(f"{'page':<18} {'first (s)':>10} {'cached (s)':>11}")
    for row in rows:
        print(f"{row['page']:<18} {row['seconds_first']:>10.2f} {row['seconds_cached']:>11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
