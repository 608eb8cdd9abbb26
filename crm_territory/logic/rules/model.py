"""The territory rules file's typed model: what a valid rules file is (validated by pydantic), and ``Rules``.

The format, every operator and what is refused are documented in docs/rules.md (with a worked
example in data/rules/examples/). Reading a file, YAML's traps and the error messages are in
``crm_territory.logic.rules.loader``; what needs the clients and the reference data (unknown
columns, regions, segments; rules that can never fire; overlaps) in ``crm_territory.logic.rules.analysis``.
A file that is malformed or contradictory is refused as a whole (``RulesError``), naming the file,
the key path of every problem and the reason, because a half-understood rules file would silently
move clients.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
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
        raise PydanticCustomError(
            "reserved_id", "id '{value}' is reserved (assigned_by uses it); choose another", {"value": value}
        )
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
    in_: list[Text] | None = Field(default=None, alias="in")
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
    Annotated[Literal["client"], Tag(_ASSIGN_CLIENT_TAG)] | Annotated[Target, Tag(_ASSIGN_MAPPING_TAG)],
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
