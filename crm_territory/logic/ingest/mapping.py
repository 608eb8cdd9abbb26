"""Applying a source layout to one landing file: the export's bytes to the engine's fields, vectorised.

File level (the whole file is rejected, the other files still load): a gzip or zip/xlsx file named .csv,
an empty file, a file that is not in its declared encoding (the byte and line), a NUL byte, duplicated
header names, a column the layout maps that the header lacks (the layout's key path and the file).
Row level: a row with the wrong number of fields is kept aside with its text; a row without an id or a
name, or whose required value a map does not cover, is quarantined with a reason naming the source's
own column. A value an optional field's map does not cover is not guessed: the field is left unknown
and the file's manifest message counts it.

Every column is read as text (ids ``007``, ``7``, ``7.0`` and ``1e5`` are four different ids) and
mapped with pandas/Arrow over whole columns; value maps work on the distinct values only.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from crm_territory.logic.ingest.drops import SOURCE_COLUMNS, DropRead, malformed_row_collector, read_drop, refused
from crm_territory.logic.ingest.layouts import (
    _TEMPLATE_PART,
    DELIMITERS,
    EXTRA_FIELDS,
    BrokenLayout,
    FieldSpec,
    Layout,
    Layouts,
)

ENGINE_COLUMNS = SOURCE_COLUMNS + list(EXTRA_FIELDS)
_DETECTABLE = [",", ";", "\t", "|"]  # in this order of preference when counts tie


def container_problem(data: bytes) -> str | None:
    """A compressed file or a workbook saved under a .csv name: say what it is and what to do."""
    if data.startswith(b"\x1f\x8b"):
        return "it is a gzip-compressed file, not CSV text; decompress it (gunzip) and drop the CSV"
    if data.startswith(b"PK\x03\x04"):
        return "it is a zip archive (an Excel .xlsx workbook is one), not CSV text; save the sheet as CSV and drop that"
    return None


def read_landing_file(name: str, data: bytes, layouts: Layouts) -> DropRead:
    """One landing file read by the layout that claims it, or by the seed's layout when none does."""
    owners = layouts.claims(name)
    if len(owners) > 1:
        names = " and ".join(f"data/sources/{o.name}" for o in owners)
        return refused(
            name, f"the file is claimed by two layouts, {names}; narrow their files (folder or pattern) so one owns it"
        )
    if not owners:
        return read_drop(name, data)
    owner = owners[0]
    if isinstance(owner, BrokenLayout):
        return refused(name, owner.message)
    return read_layout_drop(name, data, owner)


def _reject(name: str, layout: Layout, reason: str) -> DropRead:
    read = refused(name, reason)
    read.source_system = layout.source_system
    return read


def _decode(data: bytes, encoding: str) -> tuple[str | None, str | None]:
    """(text, None) or (None, why the bytes are not text in the declared encoding)."""
    if encoding == "utf-16":
        if not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return None, "the layout declares UTF-16 but the file has no UTF-16 byte-order mark"
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError as exc:
            return None, f"the file is not valid UTF-16: bytes at offset {exc.start} cannot be decoded"
    if encoding == "utf-8" and data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, "the file is UTF-16 encoded; declare format.encoding: utf-16 in its layout, or save it as UTF-8"
    try:
        return data.decode("utf-8-sig" if encoding == "utf-8" else encoding), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        hint = "declare its encoding (format.encoding: cp1252, latin-1 or utf-16) in the layout, or save it as UTF-8"
        label = "UTF-8" if encoding == "utf-8" else encoding
        return None, f"the file is not {label} text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); {hint}"


def read_layout_drop(name: str, data: bytes, layout: Layout) -> DropRead:
    """Read one file with its layout. Never raises for bad content: the answer says what was wrong."""
    where = f"data/sources/{layout.name}"
    problem = container_problem(data)
    if problem:
        return _reject(name, layout, problem)
    if not data.strip():
        return _reject(name, layout, f"the file is empty; {where} expects a header line on line {layout.format.header_row}")
    text, problem = _decode(data, layout.format.encoding)
    if text is None:
        return _reject(name, layout, problem or "cannot be decoded")
    nul = text.find("\x00")
    if nul >= 0:
        return _reject(name, layout, f"the file is binary: it contains a NUL character (line {text.count(chr(10), 0, nul) + 1})")
    if "\r" in text and "\n" not in text:
        return _reject(name, layout, "its lines end in CR only (old Mac line endings); save it with CRLF or LF line endings")
    lines = text.split("\n", layout.format.header_row)
    if len(lines) < layout.format.header_row or not lines[layout.format.header_row - 1].strip():
        return _reject(name, layout, f"no header on line {layout.format.header_row} ({where}: format.header_row)")
    header_line = lines[layout.format.header_row - 1].rstrip("\r")
    body = lines[layout.format.header_row] if len(lines) > layout.format.header_row else ""
    delimiter = _delimiter(header_line, layout.format.delimiter)
    quote = layout.format.quote
    try:
        header = [c.strip() for c in next(csv.reader([header_line], delimiter=delimiter, quotechar=quote))]
    except csv.Error as exc:
        return _reject(name, layout, f"the header line cannot be parsed ({exc})")
    folded = [c.casefold() for c in header]
    duplicated = sorted({c for c, f in zip(header, folded, strict=True) if folded.count(f) > 1})
    if duplicated:
        return _reject(
            name,
            layout,
            f"the header names column(s) {', '.join(map(repr, duplicated))} more than once; which one is meant is not guessed",
        )
    missing = [(key, col) for key, col in layout.columns_used() if col.casefold() not in folded]
    if missing:
        found = ", ".join(header)
        listed = "; ".join(f"{key}: column {col!r} is not in the file's header" for key, col in missing)
        return _reject(name, layout, f"{where} does not fit this file: {listed} (delimiter {_shown(delimiter)}; found: {found})")

    bad_rows: list[tuple[int, str, str]] = []
    on_invalid_row = malformed_row_collector(bad_rows, header_records=0)  # the body is parsed without its header

    positional = [f"c{i}" for i in range(len(header))]
    body_bytes = body.encode("utf-8")
    if body_bytes and not body_bytes.endswith(b"\n"):
        body_bytes += b"\n"
    try:
        table = pa_csv.read_csv(
            io.BytesIO(body_bytes),
            read_options=pa_csv.ReadOptions(column_names=positional, use_threads=False),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, quote_char=quote, invalid_row_handler=on_invalid_row, newlines_in_values=True
            ),
            convert_options=pa_csv.ConvertOptions(column_types={c: pa.string() for c in positional}, strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" not in str(exc):
            return _reject(name, layout, f"the file cannot be parsed as CSV: {exc}")
        table = pa.table({c: pa.array([], pa.string()) for c in positional})
    arrays = {}
    for col in table.column_names:
        trimmed = pc.utf8_trim_whitespace(table[col])
        arrays[col] = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    source = pa.table(arrays).to_pandas() if arrays else pd.DataFrame(columns=positional)
    source.columns = header  # the source's own column names, for the quarantine's original values
    by_folded = dict(zip(folded, range(len(header)), strict=True))

    def column(name_: str) -> pd.Series:
        return source.iloc[:, by_folded[name_.casefold()]]

    total = len(source) + len(bad_rows)
    good_numbers = pd.RangeIndex(1, total + 1).difference(pd.Index([n for n, _, _ in bad_rows]))
    rows, reasons, notes = map_fields(source, column, layout)
    rows["source_row"] = pd.array(good_numbers, dtype="Int64")
    source = source.set_axis(rows.index)
    malformed = pd.DataFrame(bad_rows, columns=["source_row", "text", "reason"])
    malformed["source_row"] = malformed["source_row"].astype("Int64")

    warnings = [f"{name}: {note}" for note in notes]
    if total == 0:
        warnings.append(f"{name}: header only, no data rows")
    physical = body.count("\n") + (0 if body.endswith("\n") or not body else 1) - body.count("\n\n")
    if total < physical:
        warnings.append(f"{name}: {physical:,} data lines hold {total:,} rows: some values span lines (quoted line breaks)")
    return DropRead(
        name=name,
        rows=rows,
        malformed=malformed,
        warnings=warnings,
        source_system=layout.source_system,
        reasons=reasons,
        source_values=source,
    )


def _delimiter(header_line: str, declared: str) -> str:
    if declared != "auto":
        return DELIMITERS[declared]
    counts = [header_line.count(d) for d in _DETECTABLE]
    return _DETECTABLE[int(np.argmax(counts))] if max(counts) else ","


def _shown(delimiter: str) -> str:
    return "TAB" if delimiter == "\t" else repr(delimiter)


def map_fields(source: pd.DataFrame, column, layout: Layout) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """The engine's columns from the source columns; per-row reasons a row cannot be used (missing where it can);
    notes on values left unknown (a map that does not cover them, a number or date that does not parse)."""
    n = len(source)
    index = source.index
    out = pd.DataFrame(index=index)
    notes: list[str] = []
    reason_parts: list[pd.Series] = []

    if layout.id.column is not None:
        out["client_id"] = column(layout.id.column)
        reason_parts.append(_reason(out["client_id"].isna(), f"no id: column {layout.id.column!r} is empty"))
    else:
        derive = layout.id.derive_from or []
        out["client_id"] = derived_ids([column(c) for c in derive])
        listed = ", ".join(repr(c) for c in derive)
        reason_parts.append(_reason(out["client_id"].isna(), f"no id: column(s) {listed} are empty, so none can be derived"))

    for field_name in ENGINE_COLUMNS[1:]:
        spec = layout.fields.get(field_name)
        if spec is None:
            out[field_name] = None
            continue
        values, note, uncovered = _field_values(field_name, spec, column, n, index)
        out[field_name] = values
        if note:
            notes.append(note)
        if field_name == "client_name":
            what = _source_words(spec)
            reason_parts.append(_reason(values.isna() & ~uncovered, f"no name: {what} empty"))
            where = ", ".join(repr(c) for c in spec.columns) or "the constant"
            reason_parts.append(_reason(uncovered, f"the name in column {where} is not covered by fields.client_name.map"))
    reasons = _join(reason_parts, index)
    if "status" in layout.fields:
        out["status"] = out["status"].str.lower()
    return out[ENGINE_COLUMNS], reasons, notes


def _source_words(spec: FieldSpec) -> str:
    cols = spec.columns
    return (
        f"column {cols[0]!r} is" if len(cols) == 1 else f"columns {', '.join(map(repr, cols))} are" if cols else "the constant is"
    )


def _reason(mask: pd.Series, text: str) -> pd.Series:
    out = np.full(len(mask), None, dtype=object)
    out[mask.to_numpy(dtype=bool)] = text
    return pd.Series(out, index=mask.index, dtype=object)


def _join(parts: list[pd.Series], index: pd.Index) -> pd.Series:
    out = pd.Series(None, index=index, dtype=object)
    for part in parts:
        out = out.where(part.isna(), np.where(out.isna(), part, out.fillna("") + "; " + part.fillna("")))
    return out.where(out.notna(), None)


def _field_values(field_name: str, spec: FieldSpec, column, n: int, index: pd.Index) -> tuple[pd.Series, str | None, pd.Series]:
    """(values, a note on values left unknown, mask of values a map did not cover)."""
    if spec.constant is not None:
        values = pd.Series(np.full(n, spec.constant, dtype=object), index=index)
    elif spec.column is not None:
        values = column(spec.column).astype(object)
    else:
        values = _template(spec.template or "", column, index)
    uncovered = pd.Series(False, index=index)
    note = None
    where = ", ".join(repr(c) for c in spec.columns) or "constant"
    if spec.map is not None:
        lookup = {str(k).strip().casefold(): v for k, v in spec.map.items()}
        keys = values.str.strip().str.casefold()
        uncovered = keys.notna() & ~keys.isin(list(lookup))
        mapped = _map_distinct(keys, lookup)
        if uncovered.any():
            missed = values[uncovered].value_counts()
            sample = ", ".join(f"{v!r} ({c})" for v, c in missed.head(5).items())
            note = (
                f"fields.{field_name}.map does not cover {int(uncovered.sum()):,} value(s) of column {where}: {sample}"
                + (f" and {len(missed) - 5} more" if len(missed) > 5 else "")
                + f"; {field_name} left unknown for those rows (add them to the map)"
            )
        values = mapped.where(mapped.notna(), None)
    if spec.number is not None:
        values, note = _numbers(values, spec, field_name, where, note)
    if spec.date_format is not None or field_name in ("date_of_birth", "last_modified_at"):
        parsed = pd.to_datetime(values, format=spec.date_format or "ISO8601", errors="coerce", utc=True)
        bad = values.notna() & parsed.isna()
        if bad.any():
            extra = f"{int(bad.sum()):,} value(s) of column {where} are not dates in the form {spec.date_format or 'ISO 8601'} (e.g. {values[bad].iloc[0]!r}); {field_name} left unknown"
            note = f"{note}; {extra}" if note else f"fields.{field_name}: {extra}"
        if field_name == "last_modified_at":
            return parsed.astype("datetime64[ns, UTC]"), note, uncovered
        text = parsed.dt.strftime("%Y-%m-%d")
        values = text.where(parsed.notna(), None).astype(object)
    return values, note, uncovered


def _numbers(values: pd.Series, spec: FieldSpec, field_name: str, where: str, note: str | None) -> tuple[pd.Series, str | None]:
    """'$1,234.5' -> '1234.5' (times the unit's scale), as plain decimal text client_dim parses; what does not parse is kept as sent."""
    number = spec.number
    assert number is not None
    cleaned = values.str.replace(r"[^0-9.,\-]", "", regex=True)
    thousands = "," if number.decimal == "." else "."
    cleaned = cleaned.str.replace(thousands, "", regex=False)
    if number.decimal == ",":
        cleaned = cleaned.str.replace(",", ".", regex=False)
    parsed = pd.to_numeric(cleaned, errors="coerce") * number.scale
    parsed = parsed.round(2)
    text = parsed.astype(str).str.replace(r"\.0$", "", regex=True)
    bad = values.notna() & parsed.isna()
    if bad.any():
        extra = f"{int(bad.sum()):,} value(s) of column {where} are not numbers (e.g. {values[bad].iloc[0]!r}); kept as sent"
        note = f"{note}; {extra}" if note else f"fields.{field_name}: {extra}"
    return text.where(parsed.notna(), values).where(values.notna(), None).astype(object), note


def _map_distinct(keys: pd.Series, lookup: dict[str, str | None]) -> pd.Series:
    """``keys.map(lookup)`` over the distinct keys only (an export has a handful of sectors or states)."""
    codes, uniques = pd.factorize(keys, use_na_sentinel=True)
    mapped = pd.Series(uniques, dtype=object).map(lookup).to_numpy(dtype=object)
    result = np.full(len(keys), None, dtype=object)
    present = codes >= 0
    result[present] = mapped[codes[present]]
    return pd.Series(result, index=keys.index, dtype=object)


def _template(template: str, column, index: pd.Index) -> pd.Series:
    """``"{First Name} {Last Name}"`` over whole columns; a missing part is left out, an all-missing result is missing."""
    pieces = _TEMPLATE_PART.split(template)  # literal, column, literal, column, ..., literal
    out = pd.Series("", index=index, dtype=object)
    any_value = pd.Series(False, index=index)
    for i, piece in enumerate(pieces):
        if i % 2:
            values = column(piece)
            any_value |= values.notna()
            out = out + values.fillna("")
        else:
            out = out + piece
    out = out.str.replace(r"\s+", " ", regex=True).str.strip()
    return out.where(any_value & (out != ""), None)


def derived_ids(columns: list[pd.Series]) -> pd.Series:
    """A stable record id from declared columns, for an export that has none (Maven's accounts).

    The values are trimmed, lower-cased and their inner spaces collapsed, then hashed with pandas'
    fixed-key SipHash (``hash_pandas_object``, vectorised); the id is ``k`` and the 64-bit hash in
    decimal. The same values give the same id on every run and machine; a renamed account gets a new
    id (a new record, which entity resolution links to the old one by name and parent). Rows whose
    declared columns are all empty get no id (and are quarantined).
    """
    if not columns:
        raise ValueError("derive_from names no column")
    normal = [c.str.strip().str.casefold().str.replace(r"\s+", " ", regex=True) for c in columns]
    joined = normal[0].fillna("")
    for part in normal[1:]:
        joined = joined + "\x1f" + part.fillna("")
    hashes = pd.util.hash_pandas_object(joined, index=False).to_numpy(dtype=np.uint64)
    ids = pd.Series("k" + pd.Series(hashes).astype(str).to_numpy(dtype=object), index=columns[0].index, dtype=object)
    present = pd.concat(normal, axis=1).notna().any(axis=1)
    return ids.where(present, None)
