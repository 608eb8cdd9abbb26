"""Reading one CSV drop: reject a file that is not a CSV of our layout, quarantine its bad rows.

A drop is judged in two stages. File level: empty, binary, not UTF-8, or missing columns means the
whole file is rejected with a message naming the file and what is wrong (the other drops still
load). Row level: a row with the wrong number of fields is kept aside with its text; the rows'
values are judged later, with the API's records, by ``crm_territory.logic.ingest.quarantine``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

# The seed's clients.csv layout.
DROP_COLUMNS = ["client_id", "client_name", "region", "segment", "parent_org", "advisor_email"]
# Columns a drop may add (status; size and kind, which segmentation rules can use); anything else is
# ignored with a warning.
OPTIONAL_DROP_COLUMNS = ["status", "aum_usd", "business_type"]
SOURCE_COLUMNS = DROP_COLUMNS + OPTIONAL_DROP_COLUMNS

_SNIFF_BYTES = 64 * 1024


@dataclass
class DropRead:
    """The outcome of reading one drop.

    ``rows``: one row per well-formed data row, the source columns as text (missing = None) and
    ``source_row`` (1 = first row after the header). ``malformed``: rows whose field count is
    wrong, with ``source_row``, ``text`` and ``reason``. ``error``: why the whole file was rejected.
    """

    name: str
    rows: pd.DataFrame | None = None
    malformed: pd.DataFrame | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Set by a source layout (``mapping.read_layout_drop``): the source_system its records carry, per-row reasons
    # a row cannot be used (missing where it can; aligned with ``rows``), and the source's own columns, which the
    # quarantine keeps as original values. The seed's layout leaves them as they are.
    source_system: str = "csv_drop"
    reasons: pd.Series | None = None
    source_values: pd.DataFrame | None = None

    @property
    def rows_read(self) -> int:
        return (0 if self.rows is None else len(self.rows)) + (0 if self.malformed is None else len(self.malformed))


def _reject(name: str, reason: str) -> DropRead:
    return DropRead(name=name, error=f"{name}: {reason}")


def _file_level_problem(data: bytes) -> str | None:
    head = data[:_SNIFF_BYTES]
    if not data.strip():
        return "the file is empty; a drop needs a header line and at least the columns " + ", ".join(DROP_COLUMNS)
    if head.startswith((b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        return "the file is UTF-32 encoded; save it as UTF-8 (CSV UTF-8) and drop it again"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "the file is UTF-16 encoded; save it as UTF-8 (CSV UTF-8) and drop it again"
    nul = data.find(b"\x00")  # anywhere in the file, not only its start: one NUL would reach the core tables
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        what = _container(head)
        return f"the file is binary: it contains a NUL byte at offset {nul:,} (line {line:,}), which no CSV text file has" + (
            f"; {what}" if what else ""
        )
    what = _container(head)
    if what:  # a compressed file or workbook without a NUL byte is still no CSV text
        return f"the file is binary; {what}"
    if b"\r" in data and b"\n" not in data:
        return (
            "its lines end in CR only (old Mac line endings), so it reads as one line; "
            "save it with Windows (CRLF) or Unix (LF) line endings and drop it again"
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (
            f"the file is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); "
            "save it as UTF-8 (CSV UTF-8) and drop it again"
        )
    return None


def _container(head: bytes) -> str | None:
    """What a binary file named .csv most often is (a compressed file, a workbook), and what to do."""
    if head.startswith(b"\x1f\x8b"):
        return "it is a gzip-compressed file: decompress it (gunzip) and drop the CSV"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive (an Excel .xlsx workbook is one): save the sheet as CSV UTF-8 and drop that"
    return None


def malformed_row_collector(bad_rows: list[tuple[int, str, str]], header_records: int) -> Callable[[pa_csv.InvalidRow], str]:
    """An Arrow ``invalid_row_handler`` that keeps each row with the wrong field count aside, with its text and why.

    ``header_records``: how many of Arrow's record numbers precede the first data row (1 when the header was
    parsed with the body), so that ``source_row`` 1 is the first data row either way.
    """

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        spans = row.text.count("\n") + 1
        reason = f"malformed row: {row.actual_columns} fields, expected {row.expected_columns}"
        if spans > 1:
            reason += f"; it spans {spans} lines (an unbalanced quote?)"
        bad_rows.append((row.number - header_records, row.text, reason))
        return "skip"

    return on_invalid_row


def refused(name: str, reason: str) -> DropRead:
    """A landing file that is not read at all (a link, a name that is not UTF-8): rejected alone, saying why."""
    return _reject(name, reason)


def read_drop(name: str, data: bytes) -> DropRead:
    """Read one drop's bytes. Never raises for bad content: the answer says what was wrong."""
    problem = _file_level_problem(data)
    if problem:
        return _reject(name, problem)
    if data.startswith(b"\xef\xbb\xbf"):  # Excel's "CSV UTF-8" starts with a byte-order mark
        data = data[3:]
    if not data.endswith(b"\n"):
        data += b"\n"  # a last line (or a lone header) without a line break is still a line

    first_line = data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    try:
        header = next(csv.reader([first_line]))
    except csv.Error as exc:
        return _reject(name, f"the header line cannot be parsed as CSV ({exc})")
    columns = [str(c).strip().lower() for c in header]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        return _reject(name, f"the header names column(s) {', '.join(duplicated)} more than once")
    missing = [c for c in DROP_COLUMNS if c not in columns]
    if missing:
        return _reject(
            name,
            f"wrong columns: missing {', '.join(missing)}; found {', '.join(columns)}. "
            f"A drop needs the columns {', '.join(DROP_COLUMNS)} (and optionally {', '.join(OPTIONAL_DROP_COLUMNS)})",
        )
    ignored = [c for c in columns if c not in SOURCE_COLUMNS]

    bad_rows: list[tuple[int, str, str]] = []
    # row.number counts the header as record 1 (single-threaded reads know it)
    on_invalid_row = malformed_row_collector(bad_rows, header_records=1)

    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=columns, skip_rows=1, use_threads=False),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid_row, newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={c: pa.string() for c in columns},
                include_columns=[c for c in columns if c in SOURCE_COLUMNS],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        return _reject(name, f"the file cannot be parsed as CSV: {exc}")

    # Trim and turn empty text into missing in Arrow (C++), not per row in Python.
    arrays = {}
    for col in table.column_names:
        trimmed = pc.utf8_trim_whitespace(table[col])
        arrays[col] = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    rows = pa.table(arrays).to_pandas()
    for col in SOURCE_COLUMNS:
        if col not in rows.columns:
            rows[col] = None
    rows = rows[SOURCE_COLUMNS]

    total = len(rows) + len(bad_rows)
    bad_numbers = [n for n, _, _ in bad_rows]
    good_numbers = pd.Index(range(1, total + 1)).difference(pd.Index(bad_numbers)) if bad_rows else pd.RangeIndex(1, total + 1)
    rows["source_row"] = pd.array(good_numbers, dtype="Int64")
    malformed = pd.DataFrame(bad_rows, columns=["source_row", "text", "reason"])
    malformed["source_row"] = malformed["source_row"].astype("Int64")

    warnings = []
    physical = data.count(b"\n") - 1 - data.count(b"\n\n") - data.count(b"\n\r\n")  # data lines, blank ones aside
    if total < physical:
        warnings.append(
            f"{name}: {physical:,} data lines hold {total:,} rows: some values span lines (quoted line breaks, "
            "or an unbalanced quote swallowing the lines after it); check this file's quarantined rows"
        )
    if ignored:
        warnings.append(f"{name}: ignored column(s) not in the drop layout: {', '.join(ignored)}")
    if total == 0:
        warnings.append(f"{name}: header only, no data rows")
    return DropRead(name=name, rows=rows, malformed=malformed, warnings=warnings)
