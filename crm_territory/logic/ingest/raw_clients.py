"""From source batches to ``raw_clients``: the union of every usable row, with provenance.

Inputs are the CSV drops (already read by ``crm_territory.logic.ingest.drops``) and the CRM API
snapshot. Output is three tables: the usable rows, the quarantined rows, and a manifest with one
row per batch saying what was read, loaded, quarantined or rejected. For every batch,
rows_read == rows_loaded + rows_quarantined: nothing is lost on the way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_territory.logic.ingest.drops import SOURCE_COLUMNS, DropRead
from crm_territory.logic.ingest.layouts import EXTRA_FIELDS
from crm_territory.logic.ingest.quarantine import judge_rows, original_values, parse_timestamps
from crm_territory.schemas import (
    IngestManifest,
    QuarantinedClients,
    RawClients,
    columns_of,
    conform,
    empty_frame,
)

API_BATCH = "crm_api:/clients"
API_SOURCE_COLUMNS = SOURCE_COLUMNS + ["updated_at"]


@dataclass(frozen=True)
class LandingFile:
    """A file in the landing zone, identified by name, size and modification time."""

    name: str  # as people read it: a name that is not UTF-8 is shown with its bytes escaped
    size: int
    modified_at: pd.Timestamp  # UTC
    refusal: str | None = None  # why the file is not read at all (a symbolic link, a name that is not UTF-8)

    @property
    def modified_second(self) -> pd.Timestamp:
        """The modification time to the second: what drop order uses. Sub-second mtimes differ between
        file systems and copies, and are lost in storage; ties are broken by name, deterministically."""
        return self.modified_at.floor("s")

    @property
    def version(self) -> str:
        """Name, size and mtime: a new value means a new or changed file (the sensor's run key)."""
        return f"{self.name}:{self.size}:{self.modified_at.value}"


@dataclass
class IngestResult:
    raw_clients: pd.DataFrame
    quarantined: pd.DataFrame
    manifest: pd.DataFrame

    @property
    def rejected_batches(self) -> pd.DataFrame:
        return self.manifest[self.manifest["status"] == "rejected"]


def drop_order(files: list[LandingFile]) -> list[LandingFile]:
    """Drops apply oldest first: by modification time (to the second), then by name. Later drops win per client."""
    return sorted(files, key=lambda f: (f.modified_second, f.name))


def _const(value, n: int) -> np.ndarray:
    return np.full(n, value, dtype=object)


def _split(
    rows: pd.DataFrame,
    *,
    source_system: str,
    require_updated_at: bool,
    source_columns: list[str],
    ingested_at: pd.Timestamp,
    extra_reasons: pd.Series | None = None,
    source_values: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Judge rows (source columns + provenance) and return (usable raw rows, quarantine rows).

    ``extra_reasons`` (a layout's: the source's own column named) come before the engine's; ``source_values``
    (a layout's rows in the export's own columns) are what the quarantine keeps as original values.
    """
    reasons = judge_rows(rows, require_updated_at=require_updated_at)
    if extra_reasons is not None:
        both = extra_reasons.notna() & reasons.notna()
        reasons = reasons.where(~both, extra_reasons + "; " + reasons.fillna("")).fillna(extra_reasons)
        reasons = reasons.where(reasons.notna(), None)
    bad = reasons.notna()
    good_rows = rows[~bad]
    bad_rows = rows[bad]

    raw = pd.DataFrame(
        {
            "client_id": good_rows["client_id"],
            "client_name": good_rows["client_name"],
            "region": good_rows["region"],
            "segment": good_rows["segment"],
            "parent_org": good_rows["parent_org"],
            "advisor_email": good_rows["advisor_email"],
            "status": good_rows["status"].str.lower(),
            "aum_usd": good_rows["aum_usd"],
            "business_type": good_rows["business_type"],
            **{name: (good_rows[name] if name in good_rows.columns else _const(None, len(good_rows))) for name in EXTRA_FIELDS},
            "source_system": _const(source_system, len(good_rows)),
            "source_record_id": good_rows["client_id"],
            "source_file": good_rows["source_file"],
            "source_row": good_rows["source_row"],
            "source_page": good_rows["source_page"],
            "source_modified_at": good_rows["source_modified_at"],
            "ingested_at": ingested_at,
        }
    )
    if "last_modified_at" not in good_rows.columns:
        raw["last_modified_at"] = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    originals = (
        original_values(source_values.loc[bad_rows.index], list(source_values.columns))
        if source_values is not None
        else original_values(bad_rows, source_columns)
    )
    quarantined = pd.DataFrame(
        {
            "source_system": _const(source_system, len(bad_rows)),
            "source_file": bad_rows["source_file"],
            "source_row": bad_rows["source_row"],
            "source_page": bad_rows["source_page"],
            "source_record_id": bad_rows["client_id"],
            "reason": reasons[bad],
            "original_values": originals,
            "ingested_at": ingested_at,
        }
    )
    return raw, quarantined


def carry_deferred(
    deferred: list[tuple[LandingFile, str]],
    previous_raw: pd.DataFrame | None,
    previous_quarantined: pd.DataFrame | None,
    ingested_at: pd.Timestamp,
    source_systems: dict[str, str] | None = None,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, list[dict]]:
    """The rows an earlier run read from each deferred file (its previous version stays in force), and its manifest rows.

    A file rewritten in place is deferred while it is written; dropping its rows meanwhile would make its
    clients vanish for a run and come back in the next, in client_dim and both histories.
    """
    names = [f.name for f, _ in deferred]

    def of_deferred(previous: pd.DataFrame | None) -> pd.DataFrame | None:
        if previous is None:
            return None
        # every landing file's rows (the seed's layout or a source layout's) name their file; the API's none
        return previous[previous["source_file"].notna() & previous["source_file"].isin(names)]

    raw, quarantined = of_deferred(previous_raw), of_deferred(previous_quarantined)
    loaded = raw["source_file"].value_counts() if raw is not None else pd.Series(dtype="int64")
    set_aside = quarantined["source_file"].value_counts() if quarantined is not None else pd.Series(dtype="int64")
    manifest_rows = []
    for landing_file, reason in sorted(deferred, key=lambda item: item[0].name):
        rows = int(loaded.get(landing_file.name, 0)) + int(set_aside.get(landing_file.name, 0))
        kept = (
            f"until then its previous version stays in force ({rows:,} row(s), as an earlier run read them)"
            if rows
            else "no earlier version of it was loaded"
        )
        manifest_rows.append(
            {
                "source_system": (source_systems or {}).get(landing_file.name, "csv_drop"),
                "batch": landing_file.name,
                "size_bytes": landing_file.size,
                "modified_at": landing_file.modified_second,
                "ingested_at": ingested_at,
                "status": "deferred",
                "rows_read": rows,
                "message": f"deferred, {reason}; {kept}",
            }
        )
    return raw, quarantined, manifest_rows


def assemble_raw_clients(
    drops: list[tuple[LandingFile, DropRead]],
    api_snapshot: pd.DataFrame | None,
    ingested_at: pd.Timestamp,
    deferred: list[tuple[LandingFile, str]] | None = None,
    previous_raw: pd.DataFrame | None = None,
    previous_quarantined: pd.DataFrame | None = None,
    deferred_source_systems: dict[str, str] | None = None,
) -> IngestResult:
    """The three tables from the drops read, the files deferred (``deferred``: the previous run's rows of each,
    from ``previous_raw`` and ``previous_quarantined``, stay in force) and the API snapshot."""
    raw_parts: list[pd.DataFrame] = []
    quarantine_parts: list[pd.DataFrame] = []
    manifest_rows: list[dict] = []
    if deferred:
        carried_raw, carried_quarantined, manifest_rows = carry_deferred(
            deferred, previous_raw, previous_quarantined, ingested_at, deferred_source_systems
        )
        raw_parts += [carried_raw] if carried_raw is not None and len(carried_raw) else []
        quarantine_parts += [carried_quarantined] if carried_quarantined is not None and len(carried_quarantined) else []

    accepted: list[pd.DataFrame] = []
    reads = dict((f.name, read) for f, read in drops)
    for landing_file in drop_order([f for f, _ in drops]):
        read = reads[landing_file.name]
        entry = {
            "source_system": read.source_system,
            "batch": landing_file.name,
            "size_bytes": landing_file.size,
            "modified_at": landing_file.modified_second,
            "ingested_at": ingested_at,
        }
        if read.error:
            manifest_rows.append(
                {**entry, "status": "rejected", "rows_read": 0, "rows_loaded": 0, "rows_quarantined": 0, "message": read.error}
            )
            continue
        # a drop read without an error has its rows and malformed rows
        assert read.rows is not None and read.malformed is not None
        rows = read.rows.copy()
        rows["source_file"] = landing_file.name
        rows["source_page"] = pd.array([pd.NA] * len(rows), dtype="Int64")
        rows["source_modified_at"] = landing_file.modified_second
        if read.source_system == "csv_drop" and read.reasons is None:
            accepted.append(rows)  # the seed's layout: judged together below
        else:
            raw, quarantined = _split(
                rows,
                source_system=read.source_system,
                require_updated_at=False,
                source_columns=SOURCE_COLUMNS,
                ingested_at=ingested_at,
                extra_reasons=read.reasons,
                source_values=read.source_values,
            )
            raw_parts.append(raw)
            quarantine_parts.append(quarantined)
        if len(read.malformed):
            malformed = read.malformed
            quarantine_parts.append(
                pd.DataFrame(
                    {
                        "source_system": _const(read.source_system, len(malformed)),
                        "source_file": landing_file.name,
                        "source_row": malformed["source_row"],
                        "source_page": pd.array([pd.NA] * len(malformed), dtype="Int64"),
                        "source_record_id": None,
                        "reason": malformed["reason"],
                        "original_values": original_values(malformed.rename(columns={"text": "raw_text"}), ["raw_text"]),
                        "ingested_at": ingested_at,
                    }
                )
            )
        manifest_rows.append(
            {**entry, "status": "loaded", "rows_read": read.rows_read, "message": "; ".join(read.warnings) or None}
        )

    if accepted:
        drop_rows = pd.concat(accepted, ignore_index=True)
        raw, quarantined = _split(
            drop_rows, source_system="csv_drop", require_updated_at=False, source_columns=SOURCE_COLUMNS, ingested_at=ingested_at
        )
        raw_parts.append(raw)
        quarantine_parts.append(quarantined)

    if api_snapshot is not None:
        api_rows = api_snapshot.copy()
        for col in SOURCE_COLUMNS + ["updated_at"]:
            stripped = api_rows[col].str.strip()
            api_rows[col] = stripped.where(stripped != "", None)
        api_rows["source_file"] = None
        api_rows["source_row"] = pd.array([pd.NA] * len(api_rows), dtype="Int64")
        api_rows["source_modified_at"] = parse_timestamps(api_rows["updated_at"])
        raw, quarantined = _split(
            api_rows, source_system="crm_api", require_updated_at=True, source_columns=API_SOURCE_COLUMNS, ingested_at=ingested_at
        )
        raw_parts.append(raw)
        quarantine_parts.append(quarantined)
        manifest_rows.append(
            {
                "source_system": "crm_api",
                "batch": API_BATCH,
                "size_bytes": None,
                # like a file's mtime: when the newest record in the batch changed at the source
                "modified_at": raw["source_modified_at"].max() if len(raw) else None,
                "status": "loaded",
                "rows_read": len(api_snapshot),
                "message": None,
                "ingested_at": ingested_at,
            }
        )

    # each part conformed first: a source without an optional field has it all-empty, and concatenating an all-NA
    # column of another dtype is deprecated in pandas (and would decide the result's dtype by accident)
    raw_clients = (
        pd.concat([conform(part, RawClients) for part in raw_parts], ignore_index=True) if raw_parts else empty_frame(RawClients)
    )
    quarantined = (
        conform(pd.concat(quarantine_parts, ignore_index=True), QuarantinedClients)
        if quarantine_parts
        else empty_frame(QuarantinedClients)
    )
    quarantined = quarantined.sort_values(
        ["source_system", "source_file", "source_page", "source_row"], kind="stable"
    ).reset_index(drop=True)

    manifest = pd.DataFrame(
        manifest_rows, columns=[c for c in columns_of(IngestManifest) if c not in ("rows_loaded", "rows_quarantined")]
    )
    batch_of_raw = raw_clients["source_file"].fillna(API_BATCH)
    batch_of_quarantined = quarantined["source_file"].fillna(API_BATCH)
    manifest["rows_loaded"] = manifest["batch"].map(batch_of_raw.value_counts()).fillna(0)
    manifest["rows_quarantined"] = manifest["batch"].map(batch_of_quarantined.value_counts()).fillna(0)
    manifest = conform(manifest, IngestManifest)
    return IngestResult(raw_clients=raw_clients, quarantined=quarantined, manifest=manifest)
