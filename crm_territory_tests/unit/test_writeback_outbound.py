"""The file sources' write-back plan and import files: each layout read in reverse (issue 13, item 5)."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_territory.logic.ingest.layouts import Layout, load_layouts
from crm_territory.logic.writeback.outbound import build_outbound_plan, export_import_files, import_file, outbound_layouts
from crm_territory.schemas import CrmOutboundPlan

NOW = pd.Timestamp("2026-12-01T09:00:00Z")

# a Dynamics-like export: ';' separated, cp1252, owners by display name (mapped to e-mails), ids in "Kunden-Nr."
MAPPED = """version: 1
source_system: dynamics
files: {folder: dynamics}
format: {delimiter: ";", encoding: cp1252}
id: {column: Kunden-Nr.}
fields:
  client_name: Name
  advisor_email:
    column: Besitzer
    map:
      "Ren\u00e9e M\u00fcller": renee.muller@northwind-advisors.com
      "R. M\u00fcller": renee.muller@northwind-advisors.com
      "Jan Ko": jan.ko@northwind-advisors.com
""".encode()  # a layout file is UTF-8; the export it describes is cp1252
# an export without ids: a stable id derived from the account's name; owners as e-mails
DERIVED = b"""version: 1
source_system: accounts
files: {folder: accounts}
id: {derive_from: [account]}
fields:
  client_name: account
  advisor_email: owner
"""
NO_OWNER = b"""version: 1
source_system: maven_like
files: {folder: maven_like}
id: {column: id}
fields:
  client_name: name
"""

ADVISORS = pd.DataFrame(
    {
        "advisor_email": ["renee.muller@northwind-advisors.com", "jan.ko@northwind-advisors.com", "old.hand@northwind-advisors.com", "gone@northwind-advisors.com"],
        "active": [True, True, True, False],
    }
)  # fmt: skip


def layouts():
    parsed = load_layouts([("dynamics.yaml", MAPPED), ("accounts.yaml", DERIVED), ("maven_like.yaml", NO_OWNER)])
    assert not parsed.broken and all(isinstance(x, Layout) for x in parsed.valid)
    return outbound_layouts(parsed)


def book(rows: list[tuple[str, str, str, str | None, str | None, str]]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(source, record id, client name, owner as raw_clients holds it (a layout's map already applied), PRIMARY advisor,
    modified) -> raw_clients, client_xref, assignments_fact."""
    frame = pd.DataFrame(
        rows, columns=["source_system", "source_record_id", "client_name", "advisor_email", "advisor", "modified"]
    )
    raw = frame.assign(
        source_modified_at=pd.to_datetime(frame["modified"], utc=True), ingested_at=NOW, source_row=range(1, len(frame) + 1)
    )
    keys = frame.drop_duplicates(["source_system", "source_record_id"])
    xref = keys.assign(client_key=keys["source_system"] + ":" + keys["source_record_id"])
    fact = xref.assign(
        territory_id="WES_RET", primary_advisor_email=xref["advisor"], assignment_type="PRIMARY", is_current=True,
        assigned_by="by-region-and-segment",
    )  # fmt: skip
    return raw, xref[["source_system", "source_record_id", "client_key"]], fact


def test_a_mapped_owner_is_written_as_the_source_spells_it_and_an_owner_it_cannot_spell_is_refused() -> None:
    raw, xref, fact = book(
        [
            ("dynamics", "K-1", "Alpha", "jan.ko@northwind-advisors.com", "renee.muller@northwind-advisors.com", "2026-11-01"),
            (
                "dynamics",
                "K-2",
                "Beta",
                "jan.ko@northwind-advisors.com",
                "old.hand@northwind-advisors.com",
                "2026-11-01",
            ),  # no spelling
            (
                "dynamics",
                "K-3",
                "Gamma",
                "jan.ko@northwind-advisors.com",
                "jan.ko@northwind-advisors.com",
                "2026-11-01",
            ),  # already right
        ]
    )
    plan = build_outbound_plan(raw, xref, fact, ADVISORS, layouts(), NOW).set_index("source_record_id")
    CrmOutboundPlan.validate(plan.reset_index())
    assert list(plan.index) == ["K-1", "K-2"]
    assert plan.loc["K-1", "owner_as_written"] == "Ren\u00e9e M\u00fcller"  # the first spelling the layout lists
    assert plan.loc["K-2", "status"] == "refused"
    assert (
        plan.loc["K-2", "refusal_reason"] == "the layout dynamics.yaml has no spelling for owner old.hand@northwind-advisors.com"
    )

    data = import_file(plan.reset_index(), layouts()["dynamics"])
    assert data.decode("cp1252") == "Kunden-Nr.;Besitzer\r\nK-1;Ren\u00e9e M\u00fcller\r\n"


def test_a_derived_id_is_written_as_the_columns_it_is_derived_from() -> None:
    raw, xref, fact = book(
        [
            ("accounts", "d41d8", 'Smith, Jones & "Co"', "a@b.com", "jan.ko@northwind-advisors.com", "2026-11-01"),
            ("accounts", "e5f6a", "Plain Ltd", "jan.ko@northwind-advisors.com", "jan.ko@northwind-advisors.com", "2026-11-01"),
        ]
    )
    plan = build_outbound_plan(raw, xref, fact, ADVISORS, layouts(), NOW)
    assert list(plan["source_record_id"]) == ["d41d8"]
    text = import_file(plan, layouts()["accounts"]).decode("utf-8")
    assert text == 'account,owner\r\n"Smith, Jones & ""Co""",jan.ko@northwind-advisors.com\r\n'


def test_the_latest_export_is_what_the_source_holds() -> None:
    raw, xref, fact = book(
        [
            ("accounts", "x1", "Old Name", "a@b.com", "jan.ko@northwind-advisors.com", "2026-10-01"),
            ("accounts", "x1", "Old Name", "jan.ko@northwind-advisors.com", "jan.ko@northwind-advisors.com", "2026-11-01"),
        ]
    )
    assert build_outbound_plan(raw, xref, fact, ADVISORS, layouts(), NOW).empty  # the later export already says jan.ko


@pytest.mark.parametrize(
    ("advisor", "reason"),
    [
        ("gone@northwind-advisors.com", "advisor gone@northwind-advisors.com is not active"),
        ("nobody@northwind-advisors.com", "advisor nobody@northwind-advisors.com is not in advisor_dim"),
        (None, "no advisor placed for the client"),
    ],
)
def test_an_advisor_who_cannot_own_clients_is_refused_never_written(advisor, reason, tmp_path) -> None:
    raw, xref, fact = book([("accounts", "x1", "A", "jan.ko@northwind-advisors.com", advisor, "2026-11-01")])
    plan = build_outbound_plan(raw, xref, fact, ADVISORS, layouts(), NOW)
    assert plan.loc[0, "status"] == "refused" and plan.loc[0, "refusal_reason"] == reason
    exported = export_import_files(plan, layouts(), tmp_path)
    assert [(e.path, e.records, e.refused) for e in exported] == [(None, 0, 1)] and not any(tmp_path.rglob("*.csv"))


def test_a_source_whose_layout_has_no_owner_column_is_refused_saying_why(tmp_path) -> None:
    raw, xref, fact = book([("maven_like", "m1", "A", None, "jan.ko@northwind-advisors.com", "2026-11-01")])
    plan = build_outbound_plan(raw, xref, fact, ADVISORS, layouts(), NOW)
    assert plan.loc[0, "status"] == "refused"
    assert "maven_like cannot take owners back by file: its layout maven_like.yaml maps no owner" in plan.loc[0, "refusal_reason"]
    assert export_import_files(plan, layouts(), tmp_path)[0].why_not.startswith("its layout maven_like.yaml maps no owner")


def test_export_names_the_file_after_the_plan_and_writes_the_same_bytes_again(tmp_path) -> None:
    raw, xref, fact = book(
        [
            ("dynamics", "K-1", "Alpha", "jan.ko@northwind-advisors.com", "renee.muller@northwind-advisors.com", "2026-11-01"),
            ("dynamics", "K-9", "Omega", "jan.ko@northwind-advisors.com", "renee.muller@northwind-advisors.com", "2026-11-01"),
        ]
    )
    plan = build_outbound_plan(raw, xref, fact, ADVISORS, layouts(), NOW)
    (first,) = export_import_files(plan, layouts(), tmp_path)
    assert first.path == tmp_path / "dynamics" / f"dynamics-owners-{plan['plan_id'].iloc[0]}.csv" and first.records == 2
    content = first.path.read_bytes()
    export_import_files(plan, layouts(), tmp_path)
    assert first.path.read_bytes() == content and [p.name for p in tmp_path.rglob("*")] == ["dynamics", first.path.name]
