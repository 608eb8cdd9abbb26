"""The write-back for sources that take files, not API calls: the plan per file source, and its import file.

A file source (a source layout in ``data/sources/``, or the seed's ``csv_drop`` layout) tells the engine what it
holds only through its exports. Its plan is the difference between the owner its latest export gave a record
(``raw_clients.advisor_email``) and the current PRIMARY advisor of the record's client (through ``client_xref``).
The import file is that plan in the source's own layout, the mapping run in reverse: the id column (or the
columns a derived id comes from), the owner column, spelled as the source spells owners (a layout's ``map`` is
inverted), in its delimiter, encoding and quote character. It is written by an explicit act (``writeback
export``), never by a run: the file is what somebody imports into the source.

The layouts have no territory field (no export the engine reads carries one), so an import file changes owners;
``territory_after`` is kept in the plan for the people reviewing it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crm_territory.logic.ingest.layouts import DELIMITERS, Layout, Layouts
from crm_territory.schemas import CrmOutboundPlan, columns_of, empty_frame

SEED_SOURCE = "csv_drop"


@dataclass(frozen=True)
class OutboundLayout:
    """What an import file for one source looks like: the layout read in reverse."""

    source_system: str
    layout: str  # the layout file (or "the seed's layout")
    id_columns: list[tuple[str, str]]  # (source column, where its value comes from: source_record_id or a raw field)
    owner_column: str | None
    owner_spelling: dict[str, str]  # engine owner (lower-case) -> the source's spelling; empty: written as is
    mapped_owner: bool  # the layout maps owners: an owner its map cannot spell is refused
    delimiter: str
    encoding: str
    quote: str
    why_not: str | None = None  # set when the source cannot take owners back by file

    @property
    def file_name(self) -> str:
        return f"{self.source_system}-owners.csv"


SEED_LAYOUT = OutboundLayout(
    SEED_SOURCE, "the seed's layout", [("client_id", "source_record_id")], "advisor_email", {}, False, ",", "utf-8", '"'
)


def outbound_layout(layout: Layout) -> OutboundLayout:
    """``layout`` in reverse; ``why_not`` says when an import file cannot carry owners back."""
    spec = layout.fields.get("advisor_email")
    delimiter = DELIMITERS.get(layout.format.delimiter, ",")  # auto: the file is ours to write, a comma
    base = dict(
        source_system=layout.source_system, layout=layout.name, delimiter=delimiter,
        encoding=layout.format.encoding, quote=layout.format.quote,
    )  # fmt: skip
    if spec is None or spec.column is None:
        how = "maps no owner" if spec is None else "builds the owner from a template or a constant"
        return OutboundLayout(**base, id_columns=[], owner_column=None, owner_spelling={}, mapped_owner=False,
                              why_not=f"its layout {layout.name} {how} (fields.advisor_email needs a column)")  # fmt: skip
    spelling: dict[str, str] = {}
    for source_value, engine_value in (spec.map or {}).items():
        if engine_value is not None:
            spelling.setdefault(engine_value.strip().lower(), source_value)  # the first spelling the layout lists
    if layout.id.column is not None:
        id_columns = [(layout.id.column, "source_record_id")]
    else:
        plain = {s.column: name for name, s in layout.fields.items() if s.column is not None and not s.map and not s.number}
        missing = [c for c in layout.id.derive_from or [] if c not in plain]
        if missing:
            return OutboundLayout(**base, id_columns=[], owner_column=spec.column, owner_spelling=spelling,
                                  mapped_owner=bool(spec.map),
                                  why_not=f"its id is derived from {', '.join(missing)}, which no plain field reads back")  # fmt: skip
        id_columns = [(c, plain[c]) for c in layout.id.derive_from or []]
    return OutboundLayout(**base, id_columns=id_columns, owner_column=spec.column, owner_spelling=spelling,
                          mapped_owner=bool(spec.map))  # fmt: skip


def outbound_layouts(layouts: Layouts) -> dict[str, OutboundLayout]:
    """Every file source's layout in reverse, by source_system (the seed's layout included)."""
    found = {SEED_SOURCE: SEED_LAYOUT}
    for layout in layouts.valid:
        found[layout.source_system] = outbound_layout(layout)
    return found


def latest_source_records(raw_clients: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Per (source_system, source_record_id) of ``sources``: the row of the latest export that holds it."""
    rows = raw_clients[raw_clients["source_system"].isin(sources)]
    rows = rows.sort_values(["source_modified_at", "ingested_at", "source_row"], kind="stable", na_position="first")
    return rows.drop_duplicates(["source_system", "source_record_id"], keep="last")


def plan_id_of(rows: pd.DataFrame) -> str:
    parts = rows[["source_system", "source_record_id", "owner_after", "owner_before", "status"]].fillna("\x00").astype(str)
    digest = hashlib.sha256(pd.util.hash_pandas_object(parts, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def build_outbound_plan(
    raw_clients: pd.DataFrame,
    client_xref: pd.DataFrame,
    assignments_fact: pd.DataFrame,
    advisor_dim: pd.DataFrame,
    layouts: dict[str, OutboundLayout],
    planned_at: pd.Timestamp,
) -> pd.DataFrame:
    """One row per file-source record whose owner differs from its client's current PRIMARY advisor (empty: none).

    Refused (listed, never written to a file): no advisor placed, an advisor not known or not active in
    ``advisor_dim``, an owner the layout's map cannot spell, a source whose layout cannot carry owners back.
    """
    sources = sorted(layouts)
    records = latest_source_records(raw_clients, sources)
    if records.empty:
        return empty_frame(CrmOutboundPlan)
    primary = assignments_fact[(assignments_fact["assignment_type"] == "PRIMARY") & assignments_fact["is_current"].astype(bool)]
    wanted = client_xref[["source_system", "source_record_id", "client_key"]].merge(
        primary[["client_key", "territory_id", "primary_advisor_email", "assigned_by"]], on="client_key", how="inner"
    )
    field_columns = sorted({f for layout in layouts.values() for _, f in layout.id_columns} - {"source_record_id"})
    rows = records[["source_system", "source_record_id", "advisor_email", *field_columns]].merge(
        wanted, on=["source_system", "source_record_id"], how="inner"
    )
    owner_before = rows["advisor_email"].astype("string").str.strip().str.lower().replace("", pd.NA)
    owner_after = rows["primary_advisor_email"].astype("string").str.strip().str.lower().replace("", pd.NA)
    rows = rows[owner_before.fillna("\x00") != owner_after.fillna("\x00")].copy()
    if rows.empty:
        return empty_frame(CrmOutboundPlan)
    rows["owner_before"] = rows["advisor_email"].astype("string").str.strip()
    rows["owner_after"] = owner_after[rows.index]

    spelled = pd.Series(pd.NA, index=rows.index, dtype="string")
    reason = pd.Series(pd.NA, index=rows.index, dtype="string")
    for source, layout in layouts.items():  # per source (a handful), vectorised within
        mine = rows["source_system"] == source
        if not mine.any():
            continue
        if layout.why_not:
            reason[mine] = f"{source} cannot take owners back by file: {layout.why_not}"
            continue
        owner = rows.loc[mine, "owner_after"]
        if layout.mapped_owner:
            spelled[mine] = owner.map(layout.owner_spelling).astype("string")
            unspelled = mine & spelled.isna() & rows["owner_after"].notna()
            reason[unspelled] = f"the layout {layout.layout} has no spelling for owner " + rows.loc[
                unspelled, "owner_after"
            ].astype(str)
        else:
            spelled[mine] = owner
    active = set(advisor_dim.loc[advisor_dim["active"].astype(bool), "advisor_email"].str.lower())
    known = set(advisor_dim["advisor_email"].str.lower())
    owner = rows["owner_after"]
    reason[owner.isna()] = "no advisor placed for the client"
    reason[owner.notna() & ~owner.isin(known)] = "advisor " + owner + " is not in advisor_dim"
    reason[owner.notna() & owner.isin(known) & ~owner.isin(active)] = "advisor " + owner + " is not active"

    plan = pd.DataFrame(
        {
            "plan_id": "",
            "source_system": rows["source_system"],
            "source_record_id": rows["source_record_id"].astype(str),
            "client_key": rows["client_key"],
            "owner_before": rows["owner_before"],
            "owner_after": rows["owner_after"],
            "owner_as_written": spelled.where(reason.isna()),
            "territory_after": rows["territory_id"].astype(str),
            "assigned_by": rows["assigned_by"],
            "status": reason.isna().map({True: "send", False: "refused"}),
            "refusal_reason": reason,
            "planned_at": planned_at,
        }
    )
    id_values = {f: rows[f] for f in field_columns}
    plan = plan.join(pd.DataFrame(id_values).add_prefix("_id_")) if id_values else plan
    plan = plan.sort_values(["source_system", "source_record_id"], kind="stable").reset_index(drop=True)
    plan["plan_id"] = plan_id_of(plan)
    plan["id_values"] = _id_values(plan, layouts)
    plan = plan[columns_of(CrmOutboundPlan)]
    for column in ("owner_before", "owner_after", "owner_as_written", "refusal_reason", "id_values"):
        plan[column] = plan[column].astype(object).where(plan[column].notna(), None)
    plan["planned_at"] = pd.to_datetime(plan["planned_at"], utc=True).astype("datetime64[ns, UTC]")
    return plan


ID_SEPARATOR = "\x1f"  # the unit separator: never in a CSV value a source wrote


def _id_values(plan: pd.DataFrame, layouts: dict[str, OutboundLayout]) -> pd.Series:
    """The values of the import file's id columns, joined by the unit separator (one column, any layout)."""
    out = pd.Series(None, index=plan.index, dtype=object)
    for source, layout in layouts.items():
        mine = plan["source_system"] == source
        if not mine.any() or not layout.id_columns:
            continue
        parts = [
            plan.loc[mine, "source_record_id"] if origin == "source_record_id" else plan.loc[mine, f"_id_{origin}"]
            for _, origin in layout.id_columns
        ]
        joined = parts[0].astype(str)
        for part in parts[1:]:
            joined = joined + ID_SEPARATOR + part.astype(str)
        out[mine] = joined
    return out


def import_file(plan: pd.DataFrame, layout: OutboundLayout) -> bytes:
    """The source's import file for its ``send`` rows: its id column(s) and owner column, in its format (deterministic)."""
    assert layout.owner_column is not None and not layout.why_not, f"{layout.source_system}: {layout.why_not}"
    rows = plan[(plan["source_system"] == layout.source_system) & (plan["status"] == "send")]
    ids = rows["id_values"].astype(str).str.split(ID_SEPARATOR, expand=True) if len(rows) else pd.DataFrame()
    frame = pd.DataFrame({column: ids[i] if len(rows) else [] for i, (column, _) in enumerate(layout.id_columns)})
    frame[layout.owner_column] = rows["owner_as_written"].to_numpy()
    buffer = io.StringIO()
    frame.to_csv(
        buffer, index=False, sep=layout.delimiter, quotechar=layout.quote, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n"
    )
    text = buffer.getvalue()
    return ("\ufeff" + text).encode("utf-16-le") if layout.encoding == "utf-16" else text.encode(layout.encoding)


@dataclass(frozen=True)
class Exported:
    source_system: str
    path: Path | None
    records: int
    refused: int
    why_not: str | None = None


def export_import_files(plan: pd.DataFrame, layouts: dict[str, OutboundLayout], folder: Path) -> list[Exported]:
    """One import file per file source with records to change, under ``folder/<source_system>/``.

    The file is named after the plan (``<source>-owners-<plan_id>.csv``): the same plan gives the same bytes,
    a new plan a new file next to the old ones. Each is written whole (a temporary file renamed into place).
    """
    out = []
    for source in sorted(set(plan["source_system"])):
        layout = layouts.get(source)
        rows = plan[plan["source_system"] == source]
        sendable, refused = int((rows["status"] == "send").sum()), int((rows["status"] == "refused").sum())
        if layout is None or layout.why_not or not sendable:
            why = "no layout for this source any more" if layout is None else layout.why_not
            out.append(Exported(source, None, 0, refused, why or "nothing to send"))
            continue
        target = folder / source / f"{source}-owners-{rows['plan_id'].iloc[0]}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".csv.partial")
        temporary.write_bytes(import_file(plan, layout))
        os.replace(temporary, target)
        out.append(Exported(source, target, sendable, refused))
    return out
