"""Source layouts: how one CRM's export maps onto the engine's fields, written as ``data/sources/<source>.yaml``.

A layout says which landing files it owns (a sub-folder or a name pattern), the ``source_system`` its
records carry, how the file is written (delimiter, encoding, quote, header row), the record id, and
where each engine field comes from (a column, a template of columns, or a constant), with value maps,
number and timestamp formats. Files no layout claims keep the seed's layout (``drops.read_drop``).

A layout file is validated like the rules file: YAML aliases and keys written twice are refused,
unknown keys and wrong types are reported with their key path and the file's name. A broken layout
rejects the files it claims (with its problems) and nothing else. Applying a layout to a file is
``crm_territory.logic.ingest.mapping``.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crm_territory.logic.rules.loader import _duplicate_keys, _yaml_error, key_path
from crm_territory.logic.size_limits import too_large

# a layout is a page of YAML; anything far larger was generated or pasted by mistake
MAX_LAYOUT_BYTES = 200_000
# The name records carry: the record key is <source_system>:<id>, so no ':' and nothing a decision file could misread.
SOURCE_SYSTEM_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
RESERVED_SOURCE_SYSTEMS = ("crm_api",)  # the CRM API's records; csv_drop stays usable (the seed's drops)

# The engine's fields a layout may fill. The first two are required (a row without them is quarantined);
# the optional ones are kept in raw_clients when a source has them.
REQUIRED_FIELDS = ("client_name",)
CORE_FIELDS = ("client_name", "region", "segment", "parent_org", "advisor_email", "status", "aum_usd", "business_type")
EXTRA_FIELDS = (
    "address",
    "postal_code",
    "city",
    "country",
    "phone",
    "website",
    "email_domain",
    "tax_id",
    "date_of_birth",
    "revenue_usd",
    "last_modified_at",
)
FIELDS = CORE_FIELDS + EXTRA_FIELDS
NUMBER_FIELDS = ("aum_usd", "revenue_usd")
DATE_FIELDS = ("date_of_birth", "last_modified_at")

DELIMITERS = {",": ",", ";": ";", "TAB": "\t", "\\t": "\t", "\t": "\t", "|": "|"}
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "cp1252": "cp1252", "windows-1252": "cp1252", "latin-1": "latin-1",
             "latin1": "latin-1", "iso-8859-1": "latin-1", "utf-16": "utf-16"}  # fmt: skip
_TEMPLATE_PART = re.compile(r"\{([^{}]+)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilesSpec(_Strict):
    """Which landing files the layout owns: every file of a sub-folder of landing/, and/or names matching a pattern."""

    folder: str | None = None
    pattern: str | None = None

    @field_validator("folder")
    @classmethod
    def _plain_folder(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "/" in value or "\\" in value or value.startswith(".")):
            raise ValueError("a folder is one plain name inside landing/ (no '/', not hidden)")
        return value

    @model_validator(mode="after")
    def _one_at_least(self) -> FilesSpec:
        if self.folder is None and self.pattern is None:
            raise ValueError("say which files the layout owns: folder (a sub-folder of landing/) or pattern (e.g. accounts*.csv)")
        return self

    def claims(self, name: str) -> bool:
        """Whether the landing file ``name`` (``folder/file`` for a file in a sub-folder) is this layout's."""
        folder, _, base = name.rpartition("/")
        if self.folder is not None and folder != self.folder:
            return False
        if self.folder is None and folder:
            return False  # a pattern alone claims files at the top of landing/ only
        return self.pattern is None or fnmatch.fnmatchcase(base, self.pattern)


class FormatSpec(_Strict):
    delimiter: str = "auto"  # one of , ; TAB | or auto (detected from the header line among those four)
    encoding: str = "utf-8"
    quote: str = '"'
    header_row: int = Field(default=1, ge=1, le=100)  # the line the header is on; lines above it are skipped

    @field_validator("delimiter")
    @classmethod
    def _known_delimiter(cls, value: str) -> str:
        if value != "auto" and value not in DELIMITERS:
            raise ValueError("expected one of ',', ';', 'TAB', '|' or 'auto'")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        if value.lower() not in ENCODINGS:
            raise ValueError("expected utf-8, cp1252, latin-1 or utf-16 (with its byte-order mark)")
        return ENCODINGS[value.lower()]

    @field_validator("quote")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("expected one character")
        return value


class NumberSpec(_Strict):
    """A number as the export writes it: currency symbols, spaces and thousands separators are dropped."""

    decimal: Literal[".", ","] = "."
    scale: float = Field(default=1.0, gt=0)  # the unit: 1000000 for "revenue in millions"


class FieldSpec(_Strict):
    """Where one engine field comes from: exactly one of column, template, constant."""

    column: str | None = None
    template: str | None = None  # "{First Name} {Last Name}"
    constant: str | None = None
    map: dict[str, str | None] | None = None  # source value -> engine value; a value it does not cover is not guessed
    number: NumberSpec | None = None
    date_format: str | None = None  # strftime form, e.g. "%m/%d/%Y %H:%M"; default ISO 8601

    @model_validator(mode="after")
    def _exactly_one_source(self) -> FieldSpec:
        given = [k for k in ("column", "template", "constant") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of column, template, constant (found {', '.join(given) or 'none'})")
        if self.template is not None and not _TEMPLATE_PART.search(self.template):
            raise ValueError("a template names columns in braces, e.g. '{First Name} {Last Name}'")
        return self

    @property
    def columns(self) -> list[str]:
        """The source columns the field reads."""
        if self.column is not None:
            return [self.column]
        if self.template is not None:
            return _TEMPLATE_PART.findall(self.template)
        return []


class IdSpec(_Strict):
    """The record id: a column of the export, or (an export without one) a stable id derived from declared columns."""

    column: str | None = None
    derive_from: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> IdSpec:
        if (self.column is None) == (self.derive_from is None):
            raise ValueError("give exactly one of column (the export's id) or derive_from (columns a stable id is derived from)")
        return self


class LayoutFile(_Strict):
    version: Literal[1]
    source_system: str
    description: str | None = None
    files: FilesSpec
    format: FormatSpec = FormatSpec()
    id: IdSpec
    fields: dict[str, FieldSpec | str]  # a plain string is a column name

    @field_validator("source_system")
    @classmethod
    def _source_name(cls, value: str) -> str:
        if not re.fullmatch(SOURCE_SYSTEM_PATTERN, value):
            raise ValueError("expected a lower-case name: a letter, then letters, digits or '_' (at most 32), e.g. maven_crm")
        if value in RESERVED_SOURCE_SYSTEMS:
            raise ValueError(f"{value!r} is the CRM API's source_system; name this source after its export")
        return value


@dataclass(frozen=True)
class Layout:
    """A valid layout, ready to apply."""

    name: str  # the layout file's name, e.g. maven_crm.yaml
    source_system: str
    files: FilesSpec
    format: FormatSpec
    id: IdSpec
    fields: dict[str, FieldSpec]

    def columns_used(self) -> list[tuple[str, str]]:
        """(key path, column) for every source column the layout reads, to check against a file's header."""
        used = [("id.column", self.id.column)] if self.id.column is not None else []
        used += [(f"id.derive_from[{i}]", c) for i, c in enumerate(self.id.derive_from or [])]
        for name, spec in self.fields.items():
            key = f"fields.{name}.column" if spec.column is not None else f"fields.{name}.template"
            used += [(key, c) for c in spec.columns]
        return used


@dataclass(frozen=True)
class BrokenLayout:
    """A layout that cannot be used: its problems as (key path, reason); ``files`` if that part could be read."""

    name: str
    problems: list[tuple[str, str]]
    files: FilesSpec | None = None

    @property
    def message(self) -> str:
        lines = "; ".join(f"{key}: {reason}" for key, reason in self.problems)
        return f"the layout data/sources/{self.name} is invalid ({len(self.problems)} problem(s)): {lines}"


@dataclass
class Layouts:
    """Every layout file read: the valid ones and the broken ones."""

    valid: list[Layout] = field(default_factory=list)
    broken: list[BrokenLayout] = field(default_factory=list)

    def claims(self, name: str) -> list[Layout | BrokenLayout]:
        """The layouts (valid or broken, whose ``files`` could be read) claiming the landing file ``name``."""
        owners: list[Layout | BrokenLayout] = [layout for layout in self.valid if layout.files.claims(name)]
        owners += [b for b in self.broken if b.files is not None and b.files.claims(name)]
        return owners

    @property
    def folders(self) -> set[str]:
        """Sub-folders of landing/ some layout owns: only these are looked into (other folders are no drops)."""
        return {x.files.folder for x in [*self.valid, *self.broken] if x.files is not None and x.files.folder}

    def unclaiming(self, names: list[str]) -> list[str]:
        """A note per layout whose files claim none of ``names`` (reported, not an error: its export may come later)."""
        notes = []
        for layout in [*self.valid, *self.broken]:
            if layout.files is not None and not any(layout.files.claims(n) for n in names):
                what = ", ".join(f"{k} {v!r}" for k, v in layout.files.model_dump(exclude_none=True).items())
                notes.append(f"data/sources/{layout.name}: its files ({what}) match no landing file; nothing read for it")
        return notes


# --- reading -------------------------------------------------------------------------------------


def parse_layout(name: str, data: bytes) -> Layout | BrokenLayout:
    """A layout file's bytes to a ``Layout``, or a ``BrokenLayout`` listing every problem with its key path."""
    if len(data) > MAX_LAYOUT_BYTES:
        remedy = "a layout is a page of YAML; a file this size was generated or pasted by mistake"
        return BrokenLayout(name, [("(file)", too_large(len(data), MAX_LAYOUT_BYTES, "layout file", remedy))])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return BrokenLayout(name, [("(file)", f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})")])
    problem = _yaml_problem(text)
    if problem:
        return BrokenLayout(name, problem)
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        return BrokenLayout(name, [("(file)", "expected a mapping (version, source_system, files, format, id, fields)")])
    files = _files_alone(document.get("files"))
    problems = _field_problems(document.get("fields"))
    try:
        parsed = LayoutFile.model_validate(document)
    except ValidationError as exc:
        return BrokenLayout(name, _problems(exc) + problems, files)
    if problems:
        return BrokenLayout(name, problems, parsed.files)
    fields = {key: FieldSpec(column=spec) if isinstance(spec, str) else spec for key, spec in parsed.fields.items()}
    return Layout(name, parsed.source_system, parsed.files, parsed.format, parsed.id, fields)


def _field_problems(fields: object) -> list[tuple[str, str]]:
    """What the model cannot see: field names the engine does not have, numbers and dates on other fields, no name."""
    if not isinstance(fields, dict):
        return []  # the model says what is wrong with it
    problems = []
    for key, spec in fields.items():
        if key not in FIELDS:
            hint = difflib.get_close_matches(str(key), FIELDS, n=1)
            reason = (
                f"unknown field {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (fields: {', '.join(FIELDS)})"
            )
            problems.append((f"fields.{key}", reason))
            continue
        if isinstance(spec, dict) and spec.get("number") is not None and key not in NUMBER_FIELDS:
            problems.append((f"fields.{key}.number", f"only {', '.join(NUMBER_FIELDS)} are numbers"))
        if isinstance(spec, dict) and spec.get("date_format") is not None and key not in DATE_FIELDS:
            problems.append((f"fields.{key}.date_format", f"only {', '.join(DATE_FIELDS)} are dates"))
    problems += [(f"fields.{f}", "required: every record needs a name") for f in REQUIRED_FIELDS if f not in fields]
    return problems


def load_layouts(files: list[tuple[str, bytes]]) -> Layouts:
    """Every layout of ``data/sources/`` (name, bytes); two layouts with one source_system are both refused."""
    layouts = Layouts()
    for name, data in sorted(files):
        parsed = parse_layout(name, data)
        (layouts.valid if isinstance(parsed, Layout) else layouts.broken).append(parsed)  # type: ignore[arg-type]
    by_system: dict[str, list[Layout]] = {}
    for layout in layouts.valid:
        by_system.setdefault(layout.source_system, []).append(layout)
    for system, same in by_system.items():
        if len(same) > 1:
            names = ", ".join(x.name for x in same)
            for layout in same:
                reason = (
                    f"source_system {system!r} is also declared by {names}: record keys would collide; give each source its own"
                )
                layouts.valid.remove(layout)
                layouts.broken.append(BrokenLayout(layout.name, [("source_system", reason)], layout.files))
    return layouts


def read_layout_folder(folder: Path) -> list[tuple[str, bytes]]:
    """The layout files of a folder (``data/sources``) as (name, bytes), each read with a bound; none if it is absent."""
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.iterdir()):
        if path.suffix in (".yaml", ".yml") and not path.name.startswith(".") and path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:  # an oversized layout is reported by its parser, never read whole
                files.append((path.name, handle.read(MAX_LAYOUT_BYTES + 1)))
    return files


def layout_source_systems(folder: Path) -> list[str]:
    """The source_system of every valid layout in ``folder``: the record-key prefixes a decision may name."""
    return sorted({layout.source_system for layout in load_layouts(read_layout_folder(folder)).valid})


def _yaml_problem(text: str) -> list[tuple[str, str]] | None:
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1
                return [
                    (
                        "(file)",
                        f"YAML anchors and aliases (&name, *name) are not allowed in a layout (line {line}); write the values out",
                    )
                ]
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return [("(file)", _yaml_error(exc))]
    if root is None:
        return [("(file)", "the file is empty; it needs version, source_system, files, id and fields")]
    duplicates = list(_duplicate_keys(root, ""))
    return duplicates or None


def _files_alone(value: object) -> FilesSpec | None:
    """The ``files`` section on its own, so a layout broken elsewhere still rejects the files it meant to own."""
    try:
        return FilesSpec.model_validate(value)
    except ValidationError:
        return None


_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "literal_error": None,
}


def _known_keys(parent: list) -> list[str]:
    """The keys the mapping at ``parent`` may have (for "did you mean")."""
    if parent and parent[0] == "fields":
        model = {2: FieldSpec, 4: NumberSpec}.get(len(parent)) if len(parent) != 4 or parent[2] == "number" else None
    else:
        model = {(): LayoutFile, ("files",): FilesSpec, ("format",): FormatSpec, ("id",): IdSpec}.get(tuple(parent))
    return list(model.model_fields) if model else []


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    seen = set()
    for error in exc.errors():
        raw_loc = error["loc"]
        # a field is a column name or a mapping: pydantic tries both; report once, in the author's terms
        branch = raw_loc[2] if len(raw_loc) >= 3 and raw_loc[0] == "fields" else None
        loc = [p for p in raw_loc if not (isinstance(p, str) and (p.startswith("function-after[") or p in ("FieldSpec", "str")))]
        given = error.get("input")
        if branch is not None and len(raw_loc) == 3:
            if branch == "str" and isinstance(given, dict):
                continue  # a mapping: its own errors say what is wrong
            if not isinstance(given, dict | str):
                if tuple(loc) in seen:
                    continue
                seen.add(tuple(loc))
                problems.append(
                    (key_path(loc), f"expected a column name or a mapping (column, template or constant), got {given!r}")
                )
                continue
        kind = error["type"]
        if kind == "extra_forbidden":
            known = _known_keys(loc[:-1])
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
            reason = (
                f"unknown key {loc[-1]!r}"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
                + (f" (expected: {', '.join(known)})" if known else "")
            )
        elif kind == "missing":
            reason = "required key is missing"
        elif _EXPECTED.get(kind):
            reason = f"expected {_EXPECTED[kind]}, got {type(given).__name__} {given!r}"
        else:
            reason = error["msg"].removeprefix("Value error, ")
        problems.append((key_path(loc) or "(file)", reason))
    return problems
