"""Rules compiled to SQL vs the pandas engine: seconds to place a generated book, and whether the placements are identical.

``python -m crm_territory_tests.benchmarks.rules_sql [SIZES...] [--repeats N]`` prints one row per (clients, rules,
engine): ``engine`` is ``pandas`` (``engine.evaluate`` on the client_dim frame) or ``sql-fakesnow`` (the compiled
SQL inside fakesnow, i.e. DuckDB behind the real Snowflake connector: compile, run, fetch both result sets). Not
timed: generating the book, building client_dim, loading it into fakesnow. ``identical``: every column of the
PRIMARY and SECONDARY placements equal, row by row, sorted by client_key. Medians of ``repeats`` runs, a single
run where one takes a minute or more.

The book is the mock CRM's generator through ingestion and ``build_client_dim`` (as ``make bench``'s rules row).
The rules: the committed file, and the worked example with its one regular expression made ASCII (``(?ai)``): its
Unicode ``\\b`` has no exact SQL twin, so the compiler refuses the file as committed (naming the rule).

The helpers here (books, loading into fakesnow, comparing) are shared with
``crm_territory_tests/integration/test_rules_sql.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_ROOT / "data" / "rules"
SEED = 7
CLIENT_DIM_TABLE = "CORE.CLIENT_DIM"
TERRITORY_TABLE = "CORE.TERRITORY_DIM"
ONE_RUN_ONLY_ABOVE_SECONDS = 60.0
GENERATOR_LIMIT = 2_000_000  # books above it are tiled copies of this one (see generated_client_dim)


def generated_client_dim(n: int, seed: int = SEED) -> pd.DataFrame:
    """The mock CRM's book of ``n`` clients through ingestion and client_dim (no drop, no entity resolution).

    Above ``GENERATOR_LIMIT`` (the generator's name space ends at about 2.6M organisations) the book of
    ``GENERATOR_LIMIT`` clients tiled: copy i's client_keys end in ``~i``; names, and so parent names, repeat.
    """
    if n > GENERATOR_LIMIT:
        base = generated_client_dim(GENERATOR_LIMIT, seed)
        copies = []
        for i in range(-(-n // GENERATOR_LIMIT)):
            copy = base.copy()
            if i:
                copy["client_key"] = copy["client_key"] + f"~{i}"
            copies.append(copy)
        return pd.concat(copies, ignore_index=True).head(n).sort_values("client_key", kind="stable").reset_index(drop=True)
    from crm_territory.logic.ingest.api_snapshot import records_to_frame
    from crm_territory.logic.ingest.raw_clients import assemble_raw_clients
    from crm_territory.logic.matching.client_dim import build_client_dim
    from crm_territory.logic.reference.reference_data import load_reference_data
    from mock_api.generator import generate_clients

    now = pd.Timestamp("2026-11-02", tz="UTC")
    snapshot = records_to_frame([(1, generate_clients(n, seed=seed).to_dict(orient="records"))], now)
    return build_client_dim(
        assemble_raw_clients([], snapshot, now).raw_clients, load_reference_data(REPO_ROOT / "data" / "reference")
    )


def sample_client_dim() -> pd.DataFrame:
    """The sample book: the committed seed drop (data/landing/clients.csv) and the mock CRM's default book
    (2,000 clients, seed 42), through ingestion and client_dim."""
    from crm_territory.logic.ingest.api_snapshot import records_to_frame
    from crm_territory.logic.ingest.drops import read_drop
    from crm_territory.logic.ingest.raw_clients import LandingFile, assemble_raw_clients
    from crm_territory.logic.matching.client_dim import build_client_dim
    from crm_territory.logic.reference.reference_data import load_reference_data
    from mock_api.generator import generate_clients

    now = pd.Timestamp("2026-11-02", tz="UTC")
    drop = (REPO_ROOT / "data" / "landing" / "clients.csv").read_bytes()
    landing = LandingFile("clients.csv", len(drop), pd.Timestamp("2026-11-01", tz="UTC"))
    snapshot = records_to_frame([(1, generate_clients().to_dict(orient="records"))], now)
    raw = assemble_raw_clients([(landing, read_drop("clients.csv", drop))], snapshot, now).raw_clients
    return build_client_dim(raw, load_reference_data(REPO_ROOT / "data" / "reference"))


def rules_files() -> dict[str, Any]:
    """name -> parsed rules: the active file and every example file, as committed."""
    from crm_territory.logic.rules.loader import load_rules

    files = {"active": RULES_DIR / "territory_rules.yaml"} | {
        f"examples/{p.name}": p for p in sorted((RULES_DIR / "examples").glob("*.yaml"))
    }
    return {name: load_rules(path) for name, path in files.items()}


def ascii_variant(name: str) -> Any:
    """An example file with its regular expressions' inline flags made ASCII ((?i) -> (?ai)): the closest rules
    the SQL compiler accepts when the committed file uses Unicode \\b."""
    from crm_territory.logic.rules.loader import parse_rules

    text = (RULES_DIR / name).read_text(encoding="utf-8").replace("(?i)", "(?ai)")
    return parse_rules(text, f"{name} (ASCII regex)")


@contextmanager
def fake_warehouse() -> Iterator[Any]:
    """A fakesnow connection with the project's DDL applied (RAW and CORE schemas, every table)."""
    import snowflake.connector

    from crm_territory.storage.warehouse_ddl import apply_ddl
    from crm_territory_tests.support.snowflake_fake import FAKE_ENV, fake_snowflake

    with fake_snowflake():
        connection = snowflake.connector.connect(**{k.removeprefix("SNOWFLAKE_").lower(): v for k, v in FAKE_ENV.items()})
        try:
            for schema in ("RAW", "CORE"):  # what Terraform creates
                connection.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS CRM_TERRITORY.{schema}")
            apply_ddl(connection)
            yield connection
        finally:
            connection.close()


def load_table(connection, table: str, frame: pd.DataFrame) -> None:
    """Replace the rows of a DDL table (``client_dim``, ``territory_dim``) with ``frame``, conformed to its model."""
    import snowflake.connector.pandas_tools as pandas_tools

    from crm_territory.schemas import TABLES, conform

    spec = TABLES[table]
    connection.cursor().execute(f"DELETE FROM {spec.warehouse_name}")
    if len(frame):
        # looked up on the module at call time: fakesnow's patch replaces it there
        pandas_tools.write_pandas(
            connection, conform(frame, spec.model).rename(columns=str.upper), spec.warehouse_table,
            schema=spec.warehouse_schema, quote_identifiers=True, use_logical_type=True,
        )  # fmt: skip


def comparable(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows sorted by client_key (stable: a client's SECONDARY rows keep their order), missing values as None."""
    out = frame[columns].sort_values("client_key", kind="stable").reset_index(drop=True).astype(object)
    return out.where(out.notna(), None)


def differences(pandas_placement, sql_placement) -> list[str]:
    """What differs between the engines' placements (empty: identical), per frame and column."""
    from crm_territory.logic.rules.engine import PLACEMENT_COLUMNS, SECONDARY_COLUMNS

    found = []
    if pandas_placement.rules_version != sql_placement.rules_version:
        found.append(f"rules_version {pandas_placement.rules_version} != {sql_placement.rules_version}")
    if set(sql_placement.clients.get("rules_version", pd.Series(dtype=object))) - {pandas_placement.rules_version}:
        found.append("a row's rules_version differs")
    for name, columns in (("clients", PLACEMENT_COLUMNS), ("secondary", SECONDARY_COLUMNS)):
        a = comparable(getattr(pandas_placement, name), columns)
        b = comparable(getattr(sql_placement, name), columns)
        if len(a) != len(b):
            found.append(f"{name}: {len(a)} rows (pandas) vs {len(b)} (SQL)")
            continue
        for column in columns:
            differ = ~((a[column] == b[column]) | (a[column].isna() & b[column].isna()))
            if differ.any():
                first = int(differ.to_numpy().argmax())
                found.append(
                    f"{name}.{column}: {int(differ.sum())} row(s), first {a.at[first, 'client_key']}: "
                    f"{a.at[first, column]!r} (pandas) vs {b.at[first, column]!r} (SQL)"
                )
    return found


def _timed(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
        if times[-1] >= ONE_RUN_ONLY_ABOVE_SECONDS:
            break
    return statistics.median(times), result


def bench(sizes: tuple[int, ...] = (100_000, 1_000_000), repeats: int = 3, log: Callable[[str], None] = print) -> list[dict]:
    """Rows {clients, rules, engine, seconds, identical} for each size and rules file (see the module docstring)."""
    from crm_territory.logic.rules.engine import evaluate
    from crm_territory.logic.rules.sql import place_in_warehouse

    rules_sets = {
        "active": rules_files()["active"],
        "worked_example (ASCII regex)": ascii_variant("examples/worked_example.yaml"),
    }
    rows: list[dict] = []
    for n in sizes:
        started = time.perf_counter()
        clients = generated_client_dim(n)
        log(f"{n:,} clients: book built in {time.perf_counter() - started:.1f} s (not timed)")
        with fake_warehouse() as connection:
            started = time.perf_counter()
            load_table(connection, "client_dim", clients)
            log(f"  loaded into fakesnow in {time.perf_counter() - started:.1f} s (not timed)")
            for name, rules in rules_sets.items():
                pandas_s, expected = _timed(lambda rules=rules, clients=clients: evaluate(clients, rules), repeats)
                sql_s, got = _timed(lambda rules=rules: place_in_warehouse(connection, rules, CLIENT_DIM_TABLE), repeats)
                diff = differences(expected, got)
                for engine, seconds in (("pandas", pandas_s), ("sql-fakesnow", sql_s)):
                    rows.append(
                        {"clients": n, "rules": name, "engine": engine, "seconds": round(seconds, 2), "identical": not diff}
                    )
                log(f"  {name}: pandas {pandas_s:.2f} s, sql-fakesnow {sql_s:.2f} s, identical: {not diff}")
                for line in diff[:5]:
                    log(f"    {line}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = bench(tuple(args.sizes), args.repeats)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
