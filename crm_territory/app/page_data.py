"""Each page's figures from the tables: what a page shows, computed once per published version (``cache.py``).

No Streamlit: the bench times these functions (``crm_territory_tests/benchmarks/app_pages.py``). ``read(table)``
returns a published table (cached by the app).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from crm_territory.app.data import TableSource, rules_preview
from crm_territory.logic.analytics import advisors, families, history, overview, preview, quality, territories

Read = Callable[[str], pd.DataFrame]


def overview_page(read: Read) -> dict[str, Any]:
    client_dim = read("client_dim")
    client_history, assignment_history = read("client_dim_history"), read("assignments_fact_history")
    at = overview.last_change_at(client_history, assignment_history)
    changes = overview.primary_changes(assignment_history, at) if at is not None else None
    return {
        "headline": overview.headline(client_dim, read("territory_dim"), read("advisor_dim")),
        "grid": overview.region_segment_grid(client_dim),
        "last_change_at": at,
        "client_changes": overview.client_changes(client_history, at) if at is not None else {},
        "change_summary": overview.change_summary(changes) if changes is not None else None,
        "changes": changes,
    }


def territories_page(read: Read) -> pd.DataFrame:
    return territories.territory_summary(read("assignments_fact"), read("client_dim"), read("territory_dim"), read("advisor_dim"))


def territory_page(read: Read, territory_id: str, search: str = "") -> dict[str, pd.DataFrame]:
    fact = read("assignments_fact")
    return {
        "clients": territories.territory_clients(fact, read("client_dim"), territory_id, search),
        "advisors": territories.territory_advisors(fact, read("advisor_dim"), territory_id),
        "rules": territories.territory_rules_used(fact, read("territory_rules"), territory_id),
    }


def advisors_page(read: Read) -> dict[str, Any]:
    history_rows = read("assignments_fact_history")
    at = overview.last_change_at(read("client_dim_history"), history_rows)
    changes = overview.primary_changes(history_rows, at) if at is not None else None
    moved = advisors.advisor_changes(changes) if changes is not None else None
    if moved is not None:
        moved = moved.assign(Why=advisors.reason_in_words(moved["Advisor reason"]))
    return {"load": advisors.advisor_load(read("assignments_fact"), read("advisor_dim")), "changes": moved, "at": at}


def families_page(read: Read) -> pd.DataFrame:
    return families.family_rollup(read("client_dim"), read("assignments_fact"))


def preview_page(read: Read, source: TableSource) -> dict[str, Any]:
    result = rules_preview(source, read)
    fact, changes = read("assignments_fact"), result.changes
    return {
        "status": result.status,
        "version": result.version,
        "message": result.message,
        "headline": preview.preview_headline(changes),
        "flows": preview.flows(changes),
        "diff": preview.client_diff(changes, read("client_dim")),
        "territories": preview.territory_load(fact, changes),
        "advisors": preview.advisor_load(fact, changes, read("advisor_dim")),
    }


def history_page(read: Read, client_key: str, when: pd.Timestamp) -> dict[str, Any]:
    assignment_history = read("assignments_fact_history")
    now = pd.Timestamp.now(tz="UTC")
    return {
        "owner": history.owner_on_date(assignment_history, client_key, when),
        "timeline": history.client_timeline(assignment_history, client_key, now),
        "versions": history.client_versions(read("client_dim_history"), client_key),
        "map": history.territory_map(assignment_history, when),
    }


def quality_page(read: Read) -> dict[str, pd.DataFrame]:
    manifest = read("ingest_manifest")
    return {
        "quarantine": quality.quarantine_summary(read("quarantined_clients")),
        "spellings": quality.unknown_spellings(read("client_dim")),
        "duplicates": quality.possible_duplicates(read("client_matches")),
        "files": quality.file_problems(manifest),
        "batches": quality.ingest_totals(manifest),
    }
