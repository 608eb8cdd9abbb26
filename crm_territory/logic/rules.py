"""The territory rules file: its typed model and its loader.

Territory rules live in the repository as YAML, so a rules change is reviewed like code and every
assignment can say which version of the rules placed it (``Rules.version``, the first 12 hex
characters of the sha256 of the file's bytes). A file that is malformed or contradictory is
refused as a whole (``RulesError``), naming the file, the key path of every problem and the
reason, because a half-understood rules file would silently move clients.

The format (every section is optional except ``version``)::

    version: 1
    segmentation:
      precedence: rules        # rules: a matching tier replaces the source's segment; source: tiers only fill a missing (None) segment
      tiers:                   # first match in file order wins
        - id: tier-institutional
          segment: Institutional
          when: {aum_usd: {gte: 250000000}}
        - id: tier-private-wealth
          segment: Private Wealth
          when: {aum_usd: {gte: 5000000, lt: 250000000}, business_type: {in: [Family Office, Individual, Trust]}}
    territories:
      owner_roles: {Institutional: Institutional Relationship Manager}   # optional, per canonical segment
      rules:                   # first match by priority (lower first); equal priority -> file order (deterministic); the static analysis warns about overlaps
        - id: atlas-group
          priority: 10
          when: {parent_org: {eq: Atlas Holdings}}
          assign: {region: Northeast, segment: Institutional}
        - id: southwest-retail-into-west
          priority: 50
          when: {region: {eq: Southwest}, segment: {eq: Retail}}
          assign: {region: West, segment: Retail}
        - id: by-region-and-segment          # the seed's rule
          priority: 1000
          when: {region: {not_null: true}, segment: {not_null: true}}
          assign: client                     # the client's own region and (derived) segment
    overrides:                 # pin a client to a territory and/or an advisor; beats every rule
      - client_key: "csv_drop:1"
        assign: {region: Northeast, segment: Institutional}   # optional
        advisor: advisor1@example.com                          # optional (at least one of assign/advisor)
    exclusions:                # a client that must never land in a territory: that rule is skipped for it, the next match applies
      - client_key: "crm_api:100007"
        not_in: {region: Northeast, segment: Retail}
    secondary:
      parent_org: true         # a client whose parent_org is another client's name, placed in another territory, gets a SECONDARY row in the parent's territory
      overlays:                # specialist territories by criteria: SECONDARY rows
        - id: foundations
          overlay: FOUNDATIONS                 # overlay territory code (A-Z, 0-9, _), unique
          owner_role: Foundations Specialist
          when: {business_type: {eq: Foundation}}

Criteria (``when``): column -> operators, all ANDed (across columns and within one column). An
empty or absent ``when`` matches every client. Operators:

* ``eq``, ``ne``, ``in`` (list), ``not_in`` (list), ``regex``: compare the column *as text*
  (numbers as written: 5000000.0 is "5000000", booleans as "true"/"false"). ``regex`` is Python
  syntax and must match the whole value. Values are text or numbers; a YAML boolean (yes/no/on/off
  are booleans in YAML) is refused: quote it.
* ``gt``, ``gte``, ``lt``, ``lte``: numbers; the column must be numeric.
* ``is_null: true``, ``not_null: true``.

A missing value (None/NaN) matches ``is_null``, ``ne`` and ``not_in`` and nothing else: a client
without a region is "not Northeast". ``assign: client`` only places clients whose region and
segment are both known (there is no territory to name otherwise).

What the loader refuses (each with its key path): unknown keys and operators, wrong types, an
``assign`` that is neither ``client`` nor ``{region, segment}``, ids used twice (tier, rule and
overlay ids share one namespace), reserved ids (``fallback``, ``parent_org``), invalid regular
expressions, inverted ranges (``gte: 10, lt: 5``), an override with neither ``assign`` nor
``advisor``, one client overridden twice, an override that pins a client to a territory an
exclusion forbids it, duplicated YAML keys (YAML would silently keep the last one). What needs
the clients and the reference data (unknown columns, regions, segments; rules that can never
fire; overlaps; unreachable territories) is ``crm_territory.logic.rules_analysis``.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from crm_territory.schemas import EMAIL_PATTERN, UNASSIGNED_TERRITORY_ID

FORMAT_VERSION = 1
RESERVED_IDS = ("fallback", "parent_org")  # values of assigned_by that are not rule ids
DOCUMENT_KEY = "(document)"  # the key of problems that concern the whole file

_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_OVERLAY_PATTERN = re.compile(r"[A-Z0-9_]+")
_GEOGRAPHIC_ID = re.compile(r"[A-Z0-9]{1,3}_[A-Z0-9]{1,3}(_\d+)?")  # territory_dim's own ids
_EMAIL = re.compile(EMAIL_PATTERN)
# Tags of the `assign` union: internal, dropped from key paths.
_ASSIGN_CLIENT_TAG = "<assign:client>"
_ASSIGN_MAPPING_TAG = "<assign:mapping>"


class RulesError(ValueError):
    """The rules file cannot be used; ``problems`` holds (key path, reason), one per problem."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = list(problems)
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        lines = [f"  {key}: {reason}" for key, reason in self.problems]
        super().__init__(f"{source}: the rules file is invalid ({count}):\n" + "\n".join(lines))


# --- values ------------------------------------------------------------------------------------


def as_text(value: Any) -> str:
    """The text form values are compared in: numbers as written (5000000.0 -> "5000000"), booleans as
    "true"/"false". The engine renders column values the same way, so `eq: 5000000` matches 5e6."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        raise PydanticCustomError(
            "yaml_boolean",
            "got the YAML boolean {value} (yes/no/on/off/true/false are booleans in YAML); quote it if you mean text",
            {"value": "true" if value else "false"},
        )
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return as_text(value)
    raise PydanticCustomError("text_value", "expected text or a number, got {got}", {"got": _describe(value)})


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number", "expected a number, got {got}", {"got": _describe(value)})
    if not math.isfinite(value):
        raise PydanticCustomError("number", "expected a finite number, got {got}", {"got": _describe(value)})
    return float(value)


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        context = {"value": value, "error": str(exc)}
        raise PydanticCustomError("bad_regex", "invalid regular expression '{value}': {error}", context) from None
    return value


def _identifier(value: str) -> str:
    if not _ID_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "bad_id",
            "id '{value}' must start with a letter or digit and use only letters, digits, '-', '_' and '.'",
            {"value": value},
        )
    if value in RESERVED_IDS:
        raise PydanticCustomError("reserved_id", "id '{value}' is reserved (assigned_by uses it); choose another", {"value": value})
    return value


def _overlay_code(value: str) -> str:
    if not _OVERLAY_PATTERN.fullmatch(value):
        raise PydanticCustomError("bad_overlay", "overlay code '{value}' must use only A-Z, 0-9 and '_'", {"value": value})
    if value == UNASSIGNED_TERRITORY_ID or _GEOGRAPHIC_ID.fullmatch(value):
        raise PydanticCustomError(
            "overlay_collides",
            "overlay code '{value}' has the shape of a geographic territory id (like NOR_INS or UNASSIGNED); choose a longer code",
            {"value": value},
        )
    return value


def _email(value: str) -> str:
    cleaned = value.strip().lower()
    if not _EMAIL.fullmatch(cleaned):
        raise PydanticCustomError("bad_email", "'{value}' is not a valid e-mail address", {"value": value})
    return cleaned


def _non_empty(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("empty_text", "must not be empty", {})
    return value


def _none_as(empty: Any):
    """YAML reads a key with nothing after it (every item commented out) as null: treat it as empty."""
    return BeforeValidator(lambda value: empty() if value is None else value)


Text = Annotated[str, BeforeValidator(_text_value)]
Number = Annotated[float, BeforeValidator(_number)]
NonEmptyText = Annotated[str, AfterValidator(_non_empty)]
Identifier = Annotated[str, AfterValidator(_identifier)]


# --- the model ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


TEXT_OPERATORS = ("eq", "ne", "in", "not_in", "regex")
NUMERIC_OPERATORS = ("gt", "gte", "lt", "lte")
NULL_OPERATORS = ("is_null", "not_null")
OPERATORS = TEXT_OPERATORS + NUMERIC_OPERATORS + NULL_OPERATORS


@dataclass(frozen=True)
class Bound:
    """One end of a numeric range: the value, whether it is included, and the operator that set it."""

    value: float
    inclusive: bool
    operator: str


class Condition(_Strict):
    """The operators applied to one column, ANDed."""

    eq: Text | None = None
    ne: Text | None = None
    in_: list[Text] | None = Field(None, alias="in")
    not_in: list[Text] | None = None
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    regex: Annotated[str, AfterValidator(_regex)] | None = None
    is_null: Literal[True] | None = None
    not_null: Literal[True] | None = None

    @model_validator(mode="after")
    def _sensible(self) -> Condition:
        if not self.operators():
            raise PydanticCustomError("no_operator", "no operator: give at least one of {ops}", {"ops": ", ".join(OPERATORS)})
        lower, upper = self.lower_bound(), self.upper_bound()
        if lower is not None and upper is not None and lower.value > upper.value:
            # An inverted range is a typo (swapped bounds), never an intent: refuse it here. Empty ranges
            # with touching bounds (gte: 5, lt: 5) are subtler and reported by the static analysis.
            raise PydanticCustomError(
                "inverted_range",
                "{lo_op} {lo} is above {hi_op} {hi}: no number can match (swapped bounds?)",
                {
                    "at": lower.operator,  # the key path ends at the lower bound's operator
                    "lo_op": lower.operator,
                    "lo": as_text(lower.value),
                    "hi_op": upper.operator,
                    "hi": as_text(upper.value),
                },
            )
        return self

    def operators(self) -> list[str]:
        """The operators given, by their names in the file."""
        return [op for op in OPERATORS if self.get(op) is not None]

    def get(self, operator: str) -> Any:
        return getattr(self, "in_" if operator == "in" else operator)

    def lower_bound(self) -> Bound | None:
        """The tighter of gt/gte (at equal values gt, the exclusive one)."""
        bounds = [Bound(v, inc, op) for op, v, inc in (("gt", self.gt, False), ("gte", self.gte, True)) if v is not None]
        return max(bounds, key=lambda b: (b.value, not b.inclusive)) if bounds else None

    def upper_bound(self) -> Bound | None:
        """The tighter of lt/lte (at equal values lt, the exclusive one)."""
        bounds = [Bound(v, inc, op) for op, v, inc in (("lt", self.lt, False), ("lte", self.lte, True)) if v is not None]
        return min(bounds, key=lambda b: (b.value, b.inclusive)) if bounds else None


Criteria = Annotated[dict[NonEmptyText, Condition], _none_as(dict)]


class Target(_Strict):
    """A geographic territory: a canonical region and segment."""

    region: NonEmptyText
    segment: NonEmptyText

    def pair(self) -> tuple[str, str]:
        return (self.region, self.segment)


def _assign_shape(value: Any) -> str | None:
    if value == "client":
        return _ASSIGN_CLIENT_TAG
    if isinstance(value, dict):
        return _ASSIGN_MAPPING_TAG
    return None  # -> the custom error below


Assign = Annotated[
    Union[Annotated[Literal["client"], Tag(_ASSIGN_CLIENT_TAG)], Annotated[Target, Tag(_ASSIGN_MAPPING_TAG)]],
    Discriminator(
        _assign_shape,
        custom_error_type="assign_shape",
        custom_error_message="must be `client` (the client's own region and segment) or a mapping {region: ..., segment: ...}",
    ),
]


class Tier(_Strict):
    """A segmentation tier: clients matching ``when`` get ``segment``."""

    id: Identifier
    segment: NonEmptyText
    when: Criteria = {}


class Segmentation(_Strict):
    precedence: Literal["rules", "source"] = "rules"
    tiers: Annotated[list[Tier], _none_as(list)] = []


class TerritoryRule(_Strict):
    """A territory rule: clients matching ``when`` go to ``assign``; the lowest priority number wins."""

    id: Identifier
    priority: int
    when: Criteria = {}
    assign: Assign

    @property
    def assigns_client(self) -> bool:
        """True when the rule places the client in its own (region, segment)."""
        return self.assign == "client"


class Territories(_Strict):
    owner_roles: Annotated[dict[NonEmptyText, NonEmptyText], _none_as(dict)] = {}
    rules: Annotated[list[TerritoryRule], _none_as(list)] = []


class Override(_Strict):
    """Pins one client to a territory and/or an advisor, above every rule."""

    client_key: NonEmptyText
    assign: Target | None = None
    advisor: Annotated[str, AfterValidator(_email)] | None = None

    @model_validator(mode="after")
    def _pins_something(self) -> Override:
        if self.assign is None and self.advisor is None:
            raise PydanticCustomError("empty_override", "an override needs `assign`, `advisor` or both; it pins nothing", {})
        return self


class Exclusion(_Strict):
    """A territory one client must never land in."""

    client_key: NonEmptyText
    not_in: Target


class Overlay(_Strict):
    """A specialist territory: every client matching ``when`` gets a SECONDARY row in it."""

    id: Identifier
    overlay: Annotated[str, AfterValidator(_overlay_code)]
    owner_role: NonEmptyText
    when: Criteria = {}


class Secondary(_Strict):
    parent_org: bool = False
    overlays: Annotated[list[Overlay], _none_as(list)] = []


class RulesFile(_Strict):
    """The YAML document as written (``version`` is the format version)."""

    version: Literal[1]
    segmentation: Annotated[Segmentation, _none_as(dict)] = Segmentation()
    territories: Annotated[Territories, _none_as(dict)] = Territories()
    overrides: Annotated[list[Override], _none_as(list)] = []
    exclusions: Annotated[list[Exclusion], _none_as(list)] = []
    secondary: Annotated[Secondary, _none_as(dict)] = Secondary()


@dataclass(frozen=True)
class Rules:
    """A validated rules file. ``version`` is a content hash, not the format version: it changes with
    every edit, so an assignment stamped with it names the exact rules that placed it."""

    source: str
    version: str
    segmentation: Segmentation
    territories: Territories
    overrides: list[Override]
    exclusions: list[Exclusion]
    secondary: Secondary

    def rules_in_order(self) -> list[tuple[int, TerritoryRule]]:
        """(file index, rule) in evaluation order: priority, then file order (a stable, documented tie-break)."""
        indexed = list(enumerate(self.territories.rules))
        return sorted(indexed, key=lambda item: (item[1].priority, item[0]))


def content_version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


# --- loading -----------------------------------------------------------------------------------


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file; ``RulesError`` lists every problem with its key path."""
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RulesError(source, [(DOCUMENT_KEY, "the rules file does not exist")]) from None
    except OSError as exc:
        raise RulesError(source, [(DOCUMENT_KEY, f"cannot read the rules file: {exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        reason = f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})"
        raise RulesError(source, [(DOCUMENT_KEY, reason)]) from None
    return _parse(text, source, content_version(data))


def parse_rules(text: str, source_name: str) -> Rules:
    """Validate rules given as text (``source_name`` is what error messages call it)."""
    return _parse(text, source_name, content_version(text.encode("utf-8")))


def _parse(text: str, source: str, version: str) -> Rules:
    document = _read_yaml(text, source)
    try:
        parsed = RulesFile.model_validate(document)
    except ValidationError as exc:
        raise RulesError(source, _problems(exc)) from None
    problems = _cross_checks(parsed)
    if problems:
        raise RulesError(source, problems)
    return Rules(
        source=source,
        version=version,
        segmentation=parsed.segmentation,
        territories=parsed.territories,
        overrides=list(parsed.overrides),
        exclusions=list(parsed.exclusions),
        secondary=parsed.secondary,
    )


def _read_yaml(text: str, source: str) -> dict:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise RulesError(source, [(DOCUMENT_KEY, _yaml_error(exc))]) from None
    if root is None:
        raise RulesError(source, [(DOCUMENT_KEY, "the file is empty; it needs at least `version: 1`")])
    duplicates = list(_duplicate_keys(root, ""))
    if duplicates:
        raise RulesError(source, duplicates)
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        reason = f"expected a mapping of sections (version, segmentation, ...), got {_describe(document)}"
        raise RulesError(source, [(DOCUMENT_KEY, reason)])
    return document


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"not valid YAML{where}: {problem}" + (f" ({context})" if context else "")


def _duplicate_keys(node: yaml.Node, path: str):
    """(key path, reason) for every key written twice in one mapping: YAML keeps the last one silently."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            child = f"{path}.{key}" if path else key
            if key in seen:
                yield child, f"written twice in one mapping (lines {seen[key]} and {line}); YAML would silently keep only the last"
            else:
                seen[key] = line
            yield from _duplicate_keys(value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{path}[{i}]")


def _cross_checks(parsed: RulesFile) -> list[tuple[str, str]]:
    """Problems that span several entries: ids, overlay codes, overrides against exclusions."""
    problems: list[tuple[str, str]] = []

    first_use: dict[str, str] = {}
    ids = (
        [(f"segmentation.tiers[{i}].id", t.id) for i, t in enumerate(parsed.segmentation.tiers)]
        + [(f"territories.rules[{i}].id", r.id) for i, r in enumerate(parsed.territories.rules)]
        + [(f"secondary.overlays[{i}].id", o.id) for i, o in enumerate(parsed.secondary.overlays)]
    )
    for key, rule_id in ids:
        if rule_id in first_use:
            reason = f"duplicate id {rule_id!r} (already used at {first_use[rule_id]}); tier, rule and overlay ids must be unique"
            problems.append((key, reason))
        else:
            first_use[rule_id] = key

    codes: dict[str, str] = {}
    for i, overlay in enumerate(parsed.secondary.overlays):
        key = f"secondary.overlays[{i}].overlay"
        if overlay.overlay in codes:
            problems.append((key, f"duplicate overlay code {overlay.overlay!r} (already used at {codes[overlay.overlay]})"))
        else:
            codes[overlay.overlay] = key

    pinned: dict[str, int] = {}
    for i, override in enumerate(parsed.overrides):
        if override.client_key in pinned:
            reason = f"client {override.client_key!r} is already overridden at overrides[{pinned[override.client_key]}]; merge the two"
            problems.append((f"overrides[{i}].client_key", reason))
        else:
            pinned[override.client_key] = i

    for i, override in enumerate(parsed.overrides):
        if override.assign is None:
            continue
        for j, exclusion in enumerate(parsed.exclusions):
            if exclusion.client_key == override.client_key and exclusion.not_in.pair() == override.assign.pair():
                region, segment = override.assign.pair()
                problems.append(
                    (
                        f"overrides[{i}].assign",
                        f"pins client {override.client_key!r} to ({region}, {segment}), which exclusions[{j}] forbids for that client; drop one of them",
                    )
                )
    return problems


# --- pydantic's errors, in words ---------------------------------------------------------------


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if part not in (_ASSIGN_CLIENT_TAG, _ASSIGN_MAPPING_TAG)]
        ctx = error.get("ctx") or {}
        about_key = bool(loc) and loc[-1] == "[key]"
        if about_key:
            loc = loc[:-1]
        if isinstance(ctx.get("at"), str):
            loc.append(ctx["at"])
        reason = _reason(error, loc)
        problems.append((key_path(loc) or DOCUMENT_KEY, f"(the key itself) {reason}" if about_key else reason))
    return problems


def key_path(loc: list | tuple) -> str:
    """("territories", "rules", 2, "when", "aum_usd", "gte") -> "territories.rules[2].when.aum_usd.gte"."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _reason(error: dict, loc: list) -> str:
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    in_condition = len(loc) >= 3 and loc[-3] == "when"
    if kind == "extra_forbidden":
        name = str(loc[-1])
        if in_condition:
            return f"unknown operator {name!r}{_did_you_mean(name, OPERATORS)} (operators: {', '.join(OPERATORS)})"
        known = _known_keys(loc[:-1])
        return f"unknown key {name!r}{_did_you_mean(name, known)}" + (f" (expected: {', '.join(known)})" if known else "")
    if kind == "missing":
        return "required key is missing"
    expected = {
        "string_type": "text",
        "int_type": "a whole number",
        "int_from_float": "a whole number",
        "float_type": "a number",
        "bool_type": "true or false",
        "list_type": "a list",
        "dict_type": "a mapping (key: value)",
        "model_type": "a mapping (key: value)",
    }.get(kind)
    if kind in ("dict_type", "model_type") and len(loc) >= 2 and loc[-2] == "when":
        expected = "a mapping of operator to value, e.g. {eq: Northeast}"
    if expected is not None:
        return f"expected {expected}, got {_describe(given)}"
    if kind == "literal_error":
        wanted = str(ctx.get("expected", "")).replace("True", "true")
        return f"must be {wanted}, got {_describe(given)}"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known_keys(loc: list) -> list[str]:
    """The keys allowed where ``loc`` points, found by walking the model's annotations."""
    annotation: Any = RulesFile
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    model = _model_in(annotation)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _step(annotation: Any, part: Any) -> Any:
    model = _model_in(annotation)
    if model is not None and isinstance(part, str):
        for name, field in model.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    for option in _options(annotation):
        origin = typing.get_origin(option)
        if origin is list and isinstance(part, int):
            return typing.get_args(option)[0]
        if origin is dict and isinstance(part, str):
            return typing.get_args(option)[1]
    return None


def _options(annotation: Any) -> list[Any]:
    """The alternatives of an annotation, unwrapping Annotated and unions."""
    if typing.get_origin(annotation) is Annotated:
        return _options(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [opt for arg in typing.get_args(annotation) for opt in _options(arg)]
    return [annotation]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for option in _options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {as_text(value)}"
    if isinstance(value, str):
        return f"the text '{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} ({value!s})"
