"""The rules file compiled to Snowflake SQL: the same placement as ``engine.evaluate``, computed where CLIENT_DIM lives.

Why: ``engine.evaluate`` needs the whole client book in one pandas process. A book that outgrows one
machine (issue 15) is placed inside the warehouse instead, by SQL this module writes from the parsed
``Rules``; the pandas engine stays the reference and the tests compare the two row by row.

What the SQL does, in the engine's order of decisions (``engine``'s docstring):

1. ``base``: segmentation as one ``CASE`` (first tier in file order; ``precedence: source`` only where
   the source sent no segment), giving the derived segment and ``segment_rule``;
2. ``matches``: one ``SELECT`` per territory rule (``UNION ALL``), each row a (client, rule) match with
   the rule's rank in (priority, file order) and its target; ``assign: client`` rules only match clients
   whose region and derived segment are known;
3. exclusions: an anti-join of the matches against a ``VALUES`` table of (client_key, region, segment):
   the excluded rule is skipped and the next match applies;
4. the first remaining match per client: ``QUALIFY ROW_NUMBER() OVER (PARTITION BY client_key ORDER BY rank) = 1``;
5. overrides: a ``LEFT JOIN`` to a ``VALUES`` table: its territory beats every rule, its advisor is pinned;
   no match and no override: no target, ``assigned_by = 'fallback'``;
6. SECONDARY rows (in the same statement, from the same placement): the parent's territory (names compared
   like ``canonical.alias_key``) and one row per matching overlay.

Every value from the rules file is a bind parameter (the connector's ``pyformat`` style), never text
pasted into the SQL; identifiers (columns, tables) are checked against a strict pattern and quoted.

Faithful or refused: a construct whose SQL would not give exactly the pandas engine's answer raises
``NotCompilableError`` naming the rule, its key path and why (never a silently different placement).
Refused today: a regular expression the warehouse cannot match exactly like Python (Unicode ``\\b``,
``\\w``, ``\\d`` without the ASCII flag ``(?a)``, look-arounds, back-references, possessive/atomic
groups, local flags, ``^``/``$`` inside the pattern, character classes needing more than
``MAX_CLASS_RANGES`` ranges), a text operator on a column that is neither text, number nor boolean,
and ``regex`` on a non-text column.

In a run (CRM_STORAGE=snowflake): the asset ``client_placement_in_warehouse`` (``crm_territory/defs/rules/``) creates
its table from ``placement_table_sql`` and its check compares it with assignments_fact by ``placement_differences``,
both inside the warehouse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

# re's own parser and compiler: the pattern is read exactly as Python reads it, rather than by guessing at its syntax
from re import _compiler as sre_compile  # type: ignore[attr-defined]
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pandas as pd

from crm_territory.logic.rules.engine import (
    FALLBACK,
    OVERRIDE_PREFIX,
    PARENT_ORG,
    PLACEMENT_COLUMNS,
    SECONDARY_COLUMNS,
)
from crm_territory.logic.rules.model import TEXT_OPERATORS, Condition, Rules, RulesError, Target

UNASSIGNED = "UNASSIGNED"
MAX_CLASS_RANGES = 64  # a character class needing more ranges (Unicode \w, \d) is refused, not pasted in by the thousand
MAX_REPEAT_COUNT = 1000  # RE2 (fakesnow's engine) refuses counted repeats above 1000
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLE_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
# Characters with a meaning in a POSIX ERE outside brackets: escaped with a backslash (the same in Snowflake and RE2).
_ERE_SPECIAL = set(".[]{}()*+?^$|\\")
# Characters never left bare inside brackets: backslash is literal in POSIX brackets but an escape in RE2, so the
# bracket would read differently in the warehouse and in fakesnow; they are emitted outside brackets instead.
_BRACKET_SPECIAL = set("]\\^-[")
# An empty table that still has typed columns: a FROM clause, since not every dialect takes WHERE without one.
_NO_ROWS = "FROM (SELECT 1 AS ONE) AS nothing WHERE FALSE"
_SURROGATES = (0xD800, 0xDFFF)  # never in a warehouse string: left out of emitted ranges
# Non-ASCII letters whose lower case is ASCII: Arrow's utf8_lower (the engine's parent-name keys) maps them so;
# spelled out in the SQL so the key does not depend on the warehouse's Unicode tables.
_LOWER_TO_ASCII = {"\u0130": "i", "\u212a": "k"}


class NotCompilableError(ValueError):
    """A rule that the SQL compiler cannot translate faithfully; ``rule_id`` and ``key`` name it."""

    def __init__(self, source: str, rule_id: str, key: str, reason: str):
        self.source, self.rule_id, self.key, self.reason = source, rule_id, key, reason
        super().__init__(
            f"{source}: rule '{rule_id}' ({key}) cannot be compiled to Snowflake SQL with the same result as the "
            f"pandas engine: {reason}. Place this book with the pandas engine, or change the rule."
        )


class _Unsupported(Exception):
    """A regular expression construct without an exact warehouse equivalent (the reason)."""


# --- column types ------------------------------------------------------------------------------


def column_kind(warehouse_type: str) -> str:
    """A warehouse column type (DESCRIBE TABLE's ``type``) as the engine sees it: text, number, boolean or other."""
    base = warehouse_type.upper().split("(")[0].strip()
    if base in ("VARCHAR", "TEXT", "STRING", "CHAR", "CHARACTER", "NVARCHAR", "NCHAR"):
        return "text"
    if base in ("NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT", "FLOAT",
                "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL", "HUGEINT"):  # fmt: skip
        return "number"
    if base == "BOOLEAN":
        return "boolean"
    return "other"


def warehouse_columns(connection, table: str) -> dict[str, str]:
    """{lower-case column name: kind} of ``table`` (``DESCRIBE TABLE``)."""
    cursor = connection.cursor()
    cursor.execute(f"DESCRIBE TABLE {_table_name(table)}")
    return {str(row[0]).lower(): column_kind(str(row[1])) for row in cursor.fetchall()}


# --- the compiled statements -------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRules:
    """SQL for one rules version over one table: one read-only ``SELECT`` (a role that may only read CLIENT_DIM can
    run it) taking ``params``. Its rows: ``ROW_TYPE`` PRIMARY (one per client: the placement's columns) or SECONDARY
    (one per SECONDARY placement), sorted by client_key, then type, then ``KIND`` (0 the parent's territory,
    1.. the overlays in file order); ``RULES_VERSION``; ``TERRITORY_ID`` when a territory table was given."""

    sql: str
    params: dict[str, Any]
    rules_version: str
    with_territory_id: bool = False  # compiled with a territory table: each row has its TERRITORY_ID


@dataclass
class _Binder:
    """Bind parameters: every value from the rules file becomes ``%(pN)s``, escaped by the connector."""

    params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, value: Any, cast: str | None = None) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        placeholder = f"%({name})s"
        return f"{placeholder}::{cast}" if cast else placeholder


def compile_rules(rules: Rules, table: str, columns: Mapping[str, str], territory_table: str | None = None) -> CompiledRules:
    """Compile ``rules`` to SQL over ``table`` (``[DATABASE.]SCHEMA.TABLE``) whose columns are ``columns``
    ({lower-case name: column_kind}). With ``territory_table`` (TERRITORY_DIM) each row also gets its territory_id
    (UNASSIGNED when its territory is not issued yet, as ``placement.territories.territory_ids`` gives it)."""
    for required in ("client_key", "region", "segment") + (("client_name", "parent_org") if rules.secondary.parent_org else ()):
        if required not in columns:
            raise ValueError(f"compile_rules: {table} lacks column {required!r}")
    bind = _Binder()
    source_table = _table_name(table)

    tiers = _Criteria(rules, columns, bind, derived_segment=False)
    rules_c = _Criteria(rules, columns, bind, derived_segment=True)

    # 1. segmentation
    if rules.segmentation.tiers:
        only_missing = 'c."SEGMENT" IS NULL AND ' if rules.segmentation.precedence == "source" else ""
        seg_cases, rule_cases = [], []
        for i, tier in enumerate(rules.segmentation.tiers):
            cond = only_missing + tiers.when(tier.when, f"segmentation.tiers[{i}]", tier.id)
            seg_cases.append(f"WHEN {cond} THEN {bind(tier.segment, 'VARCHAR')}")
            rule_cases.append(f"WHEN {cond} THEN {bind(tier.id, 'VARCHAR')}")
        segment_rule = "CASE " + " ".join(rule_cases) + " END"
        segment = f'COALESCE(CASE {" ".join(seg_cases)} END, c."SEGMENT")'
    else:
        segment, segment_rule = 'c."SEGMENT"', "CAST(NULL AS VARCHAR)"
    base = f'SELECT c.*, {segment} AS "__SEGMENT", {segment_rule} AS "__SEGMENT_RULE" FROM {source_table} c'

    # 2. every (client, rule) match, ranked by (priority, file order)
    selects = []
    for rank, (i, rule) in enumerate(rules.rules_in_order()):
        cond = rules_c.when(rule.when, f"territories.rules[{i}]", rule.id, prefix="b")
        if isinstance(rule.assign, Target):
            region, seg = bind(rule.assign.region, "VARCHAR"), bind(rule.assign.segment, "VARCHAR")
        else:  # assign: client -- only where there is a territory to name
            region, seg = 'b."REGION"', 'b."__SEGMENT"'
            cond = f'({cond}) AND b."REGION" IS NOT NULL AND b."__SEGMENT" IS NOT NULL'
        selects.append(
            f'SELECT b."CLIENT_KEY" AS "CLIENT_KEY", {rank} AS "RANK", {bind(rule.id, "VARCHAR")} AS "RULE_ID", '
            f'{region} AS "REGION", {seg} AS "SEGMENT" FROM base b WHERE {cond}'
        )
    if not selects:
        selects.append(
            'SELECT CAST(NULL AS VARCHAR) AS "CLIENT_KEY", 0 AS "RANK", CAST(NULL AS VARCHAR) AS "RULE_ID", '
            f'CAST(NULL AS VARCHAR) AS "REGION", CAST(NULL AS VARCHAR) AS "SEGMENT" {_NO_ROWS}'
        )
    matches = "\n    UNION ALL\n    ".join(selects)

    # 3. exclusions: (client_key, region, segment) a rule must not place that client in
    exclusions = _values(
        bind,
        [(e.client_key, e.not_in.region, e.not_in.segment) for e in rules.exclusions],
        ["CLIENT_KEY", "REGION", "SEGMENT"],
    )
    # 5. overrides
    overrides = _values(
        bind,
        [
            (
                o.client_key,
                o.assign.region if o.assign else None,
                o.assign.segment if o.assign else None,
                OVERRIDE_PREFIX + o.client_key if o.assign else None,
                o.advisor,
            )
            for o in rules.overrides
        ],
        ["CLIENT_KEY", "REGION", "SEGMENT", "ASSIGNED_BY", "ADVISOR"],
    )
    fallback = bind(FALLBACK, "VARCHAR")
    version = bind(rules.version, "VARCHAR")
    territory_join, territory_column = "", ""
    if territory_table is not None:
        # an overlay row's territory is its code; any other row's, the registry's id of its target
        territory_join = (
            f'LEFT JOIN (SELECT "REGION", "SEGMENT", MIN("TERRITORY_ID") AS "TERRITORY_ID" FROM {_table_name(territory_table)} '
            'WHERE "REGION" IS NOT NULL AND "SEGMENT" IS NOT NULL GROUP BY "REGION", "SEGMENT") t '
            'ON t."REGION" = u."TARGET_REGION" AND t."SEGMENT" = u."TARGET_SEGMENT"'
        )
        territory_column = f', COALESCE(u."OVERLAY", t."TERRITORY_ID", {bind(UNASSIGNED, "VARCHAR")}) AS "TERRITORY_ID"'

    # One read-only statement for PRIMARY and SECONDARY rows: the SECONDARY rows need every client's final territory
    # (a parent's), so both read the same ``placed`` CTE, computed once; no scratch table to create or clean up.
    placement_ctes = f"""WITH base AS ({base}),
matches AS (
    {matches}
),
exclusions AS ({exclusions}),
allowed AS (
    SELECT m.* FROM matches m
    LEFT JOIN exclusions x ON x."CLIENT_KEY" = m."CLIENT_KEY" AND x."REGION" = m."REGION" AND x."SEGMENT" = m."SEGMENT"
    WHERE x."CLIENT_KEY" IS NULL
),
first_match AS (
    SELECT * FROM allowed QUALIFY ROW_NUMBER() OVER (PARTITION BY "CLIENT_KEY" ORDER BY "RANK") = 1
),
overrides AS ({overrides}),
placed AS (
SELECT b."CLIENT_KEY" AS "CLIENT_KEY", b."__SEGMENT" AS "SEGMENT", b."__SEGMENT_RULE" AS "SEGMENT_RULE",
    CASE WHEN o."ASSIGNED_BY" IS NOT NULL THEN o."REGION" ELSE f."REGION" END AS "TARGET_REGION",
    CASE WHEN o."ASSIGNED_BY" IS NOT NULL THEN o."SEGMENT" ELSE f."SEGMENT" END AS "TARGET_SEGMENT",
    COALESCE(o."ASSIGNED_BY", f."RULE_ID", {fallback}) AS "ASSIGNED_BY",
    o."ADVISOR" AS "PINNED_ADVISOR"
FROM base b
LEFT JOIN first_match f ON f."CLIENT_KEY" = b."CLIENT_KEY"
LEFT JOIN overrides o ON o."CLIENT_KEY" = b."CLIENT_KEY"
)"""
    secondary_ctes = _secondary_ctes(rules, columns, bind, source_table)
    secondary_rows = (
        '\n    UNION ALL\n    SELECT \'SECONDARY\', s."KIND", s."CLIENT_KEY", NULL, NULL, s."TARGET_REGION", s."TARGET_SEGMENT", '
        's."OVERLAY", s."ASSIGNED_BY", NULL FROM secondary s'
        if secondary_ctes
        else ""
    )
    sql = f"""{placement_ctes}{secondary_ctes},
all_rows AS (
    SELECT 'PRIMARY' AS "ROW_TYPE", 0 AS "KIND", p."CLIENT_KEY", p."SEGMENT", p."SEGMENT_RULE", p."TARGET_REGION",
        p."TARGET_SEGMENT", CAST(NULL AS VARCHAR) AS "OVERLAY", p."ASSIGNED_BY", p."PINNED_ADVISOR" FROM placed p{secondary_rows}
)
SELECT u.*, {version} AS "RULES_VERSION"{territory_column} FROM all_rows u {territory_join}
ORDER BY u."CLIENT_KEY", u."ROW_TYPE", u."KIND\""""
    return CompiledRules(sql=sql, params=bind.params, rules_version=rules.version, with_territory_id=territory_table is not None)


def _secondary_ctes(rules: Rules, columns: Mapping[str, str], bind: _Binder, source_table: str) -> str:
    """The CTEs ``sbase`` and ``secondary`` (one row per SECONDARY placement) after the placement's; "" when none."""
    parts = []
    # kind orders a client's rows as the engine does: the parent's territory first, then overlays in file order
    if rules.secondary.parent_org:
        name_key = _name_key_sql('c."CLIENT_NAME"')
        parent_key = _name_key_sql('c."PARENT_ORG"')
        parts.append(f"""SELECT child."CLIENT_KEY", parent."TARGET_REGION", parent."TARGET_SEGMENT", CAST(NULL AS VARCHAR),
        {bind(PARENT_ORG, "VARCHAR")}, 0 AS "KIND"
    FROM (SELECT c."CLIENT_KEY", {parent_key} AS "WANTED" FROM {source_table} c WHERE c."PARENT_ORG" IS NOT NULL) w
    JOIN (SELECT c."CLIENT_KEY", {name_key} AS "NAME_KEY" FROM {source_table} c) named
        ON named."NAME_KEY" = w."WANTED" AND named."CLIENT_KEY" <> w."CLIENT_KEY"
    JOIN placed child ON child."CLIENT_KEY" = w."CLIENT_KEY"
    JOIN placed parent ON parent."CLIENT_KEY" = named."CLIENT_KEY"
    WHERE w."WANTED" <> ''
    -- among several clients bearing the parent's name, the first by client_key (never the client itself)
    QUALIFY ROW_NUMBER() OVER (PARTITION BY w."CLIENT_KEY" ORDER BY named."CLIENT_KEY") = 1
        AND parent."TARGET_REGION" IS NOT NULL
        AND (parent."TARGET_REGION" IS DISTINCT FROM child."TARGET_REGION"
             OR parent."TARGET_SEGMENT" IS DISTINCT FROM child."TARGET_SEGMENT")""")
    overlay_c = _Criteria(rules, columns, bind, derived_segment=True)
    for i, overlay in enumerate(rules.secondary.overlays):
        cond = overlay_c.when(overlay.when, f"secondary.overlays[{i}]", overlay.id, prefix="b")
        parts.append(
            f'SELECT b."CLIENT_KEY", CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), {bind(overlay.overlay, "VARCHAR")}, '
            f'{bind(overlay.id, "VARCHAR")}, {i + 1} AS "KIND" FROM sbase b WHERE {cond}'
        )
    if not parts:
        return ""
    base = f'SELECT c.*, p."SEGMENT" AS "__SEGMENT" FROM {source_table} c JOIN placed p ON p."CLIENT_KEY" = c."CLIENT_KEY"'
    names = ", ".join(f'"{c.upper()}"' for c in SECONDARY_COLUMNS)
    union = "\n    UNION ALL\n    ".join(parts)
    return f""",
sbase AS ({base}),
secondary ({names}, "KIND") AS (
    {union}
)"""


def _name_key_sql(expression: str) -> str:
    """``canonical.alias_key`` in SQL: lower case, every character outside [0-9a-z] removed (NULL -> '')."""
    for char, ascii_lower in _LOWER_TO_ASCII.items():
        expression = f"REPLACE({expression}, '{char}', '{ascii_lower}')"  # constants of this module, not rule values
    return f"COALESCE(REGEXP_REPLACE(LOWER({expression}), '[^0-9a-z]+', ''), '')"


def _values(bind: _Binder, rows: list[tuple], names: list[str]) -> str:
    """A small table of rule values as ``SELECT ... FROM VALUES``; an empty one that still has the columns."""
    quoted = ", ".join(f'"{n}"' for n in names)
    if not rows:
        nulls = ", ".join(f'CAST(NULL AS VARCHAR) AS "{n}"' for n in names)
        return f"SELECT {nulls} {_NO_ROWS}"
    body = ", ".join("(" + ", ".join(bind(v, "VARCHAR") for v in row) + ")" for row in rows)
    return f"SELECT * FROM (VALUES {body}) AS v({quoted})"


def _table_name(table: str) -> str:
    parts = table.split(".")
    if not 1 <= len(parts) <= 3 or not all(_TABLE_PART.fullmatch(p) for p in parts):
        raise ValueError(f"not a plain [DATABASE.]SCHEMA.TABLE name: {table!r}")
    return ".".join(parts)


# --- criteria ----------------------------------------------------------------------------------


class _Criteria:
    """``when`` mappings as SQL predicates over ``base`` (derived segment under ``__SEGMENT`` when ``derived_segment``)."""

    def __init__(self, rules: Rules, columns: Mapping[str, str], bind: _Binder, derived_segment: bool):
        self._source = rules.source
        self._columns = columns
        self._bind = bind
        self._derived_segment = derived_segment

    def when(self, when: dict[str, Condition], key: str, rule_id: str, prefix: str = "c") -> str:
        if not when:
            return "TRUE"
        parts = [
            self._condition(column, condition, f"{key}.when.{column}", rule_id, prefix) for column, condition in when.items()
        ]
        return " AND ".join(f"({p})" for p in parts)

    def _condition(self, column: str, condition: Condition, key: str, rule_id: str, prefix: str) -> str:
        kind = self._columns.get(column)
        if kind is None:
            raise RulesError(self._source, [(key, f"unknown column {column!r}: the clients have no such column")])
        if not _IDENTIFIER.fullmatch(column):
            raise NotCompilableError(self._source, rule_id, key, f"column name {column!r} is not a plain SQL identifier")
        name = "__SEGMENT" if column == "segment" and self._derived_segment else column.upper()
        col = f'{prefix}."{name}"'
        parts: list[str] = []
        if any(condition.get(op) is not None for op in TEXT_OPERATORS):
            parts += self._text(col, kind, condition, key, rule_id)
        lower, upper = condition.lower_bound(), condition.upper_bound()
        bound = lower or upper
        if bound is not None:
            if kind != "number":
                what = {"text": "object", "boolean": "bool"}.get(kind, kind)
                reason = f"column {column!r} holds {what} values, not numbers: gt/gte/lt/lte need a numeric column"
                raise RulesError(self._source, [(f"{key}.{bound.operator}", reason)])
            if lower is not None:
                parts.append(f"{col} {'>=' if lower.inclusive else '>'} {self._bind(lower.value, 'FLOAT')}")
            if upper is not None:
                parts.append(f"{col} {'<=' if upper.inclusive else '<'} {self._bind(upper.value, 'FLOAT')}")
        if condition.is_null:
            parts.append(f"{col} IS NULL")
        if condition.not_null:
            parts.append(f"{col} IS NOT NULL")
        return " AND ".join(f"({p})" for p in parts)

    def _text(self, col: str, kind: str, condition: Condition, key: str, rule_id: str) -> list[str]:
        """eq/ne/in/not_in/regex compare the column *as text*, as the engine renders it; a missing value matches
        ne and not_in only."""
        if kind == "other":
            raise NotCompilableError(
                self._source, rule_id, key,
                "text operators on this column compare its values as Python renders them (timestamps, ...), which SQL does not reproduce",
            )  # fmt: skip
        value = self._value_sql(col, kind)
        parts = []
        if condition.eq is not None:
            parts.append(value(condition.eq))
        if condition.ne is not None:
            parts.append(f"{col} IS NULL OR NOT ({value(condition.ne)})")
        if condition.in_ is not None:
            parts.append(" OR ".join(f"({value(v)})" for v in condition.in_) if condition.in_ else "FALSE")
        if condition.not_in is not None:
            parts.append(
                f"{col} IS NULL OR NOT (" + " OR ".join(f"({value(v)})" for v in condition.not_in) + ")"
                if condition.not_in
                else "TRUE"
            )
        if condition.regex is not None:
            if kind != "text":
                raise NotCompilableError(
                    self._source,
                    rule_id,
                    f"{key}.regex",
                    "a regular expression over a non-text column matches Python's rendering of its values",
                )
            try:
                pattern = translate_regex(condition.regex)
            except _Unsupported as exc:
                raise NotCompilableError(
                    self._source, rule_id, f"{key}.regex", f"the regular expression {condition.regex!r} {exc}"
                ) from None
            parts.append(f"REGEXP_LIKE({col}, {self._bind(pattern, 'VARCHAR')})")
        return parts

    def _value_sql(self, col: str, kind: str):
        """A predicate 'the column, rendered as the engine renders it, equals this text' (NULL never equals)."""
        bind = self._bind
        if kind == "text":
            return lambda text: f"{col} = {bind(text, 'VARCHAR')}"
        if kind == "boolean":
            return lambda text: f"{col} = TRUE" if text == "true" else (f"{col} = FALSE" if text == "false" else "FALSE")

        def number(text: str) -> str:
            # The engine renders a number as text (5000000.0 -> "5000000") and compares texts. The rendering is
            # one-to-one, so "renders as text" is "equals the one number that renders as text", or no number at all.
            number = _number_rendered_as(text)
            return "FALSE" if number is None else f"{col} = {bind(number, 'FLOAT')}"

        return number


def render_number(value: float) -> str:
    """A number as ``engine._factorize_text`` renders it: whole numbers below 2**53 as integers, others as numpy does."""
    import numpy as np

    if np.isfinite(value) and float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(np.array([value], dtype=float).astype(str)[0])


def _number_rendered_as(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None  # NaN is a missing value to the engine; an infinite AUM is not bound as a float literal
    return number if render_number(number) == text else None


# --- regular expressions -----------------------------------------------------------------------


def translate_regex(pattern: str) -> str:
    """A Python regular expression, to be matched whole (``fullmatch``), as a pattern REGEXP_LIKE matches the same
    strings with in Snowflake (POSIX ERE with Perl's \\b) and in RE2 (fakesnow), or ``_Unsupported``.

    Read with Python's own parser; each character class (and, under IGNORECASE, each letter) is expanded to the
    exact set of characters Python matches with it, so case folding and class semantics never depend on the
    warehouse. Full-match semantics make greedy and lazy repeats equivalent and let ^/$ at the ends go.
    """
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        raise _Unsupported(f"is not valid: {exc}") from None
    flags = parsed.state.flags
    refused = flags & ~(re.IGNORECASE | re.ASCII | re.UNICODE | re.VERBOSE | re.DOTALL)
    if refused:
        raise _Unsupported(f"uses flag(s) {re.RegexFlag(refused)!r}, which have no exact warehouse equivalent")
    items = list(parsed.data)
    # ^ / \A first and $ / \Z last are implied by the whole-value match
    if items and items[0] == (sre.AT, sre.AT_BEGINNING) or items and items[0] == (sre.AT, sre.AT_BEGINNING_STRING):
        items = items[1:]
    if items and items[-1] in ((sre.AT, sre.AT_END), (sre.AT, sre.AT_END_STRING)):
        items = items[:-1]
    body = _Emitter(parsed.state, flags).sequence(items)
    return f"^({body})$"


class _Emitter:
    def __init__(self, state, flags: int):
        self._state = state
        self._flags = flags

    def sequence(self, items) -> str:
        return "".join(self.item(op, av) for op, av in items)

    def item(self, op, av) -> str:
        ignorecase = bool(self._flags & re.IGNORECASE)
        if op is sre.LITERAL and not ignorecase:
            return _escape(chr(av))
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.CATEGORY):
            return _char_set(self._state, self._flags, ((op, av),))
        if op is sre.ANY:
            return "(.|\n)" if self._flags & re.DOTALL else "."
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):  # lazy = greedy when the whole value must match
            lo, hi, sub = av
            if lo > MAX_REPEAT_COUNT or (hi is not sre.MAXREPEAT and hi > MAX_REPEAT_COUNT):
                raise _Unsupported(f"repeats more than {MAX_REPEAT_COUNT} times, over RE2's limit")
            inner = "(" + self.sequence(sub.data) + ")"
            if hi is sre.MAXREPEAT:
                return inner + {0: "*", 1: "+"}.get(lo, f"{{{lo},}}")
            if (lo, hi) == (0, 1):
                return inner + "?"
            return inner + (f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}")
        if op is sre.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                raise _Unsupported("sets flags on a group ((?i:...)), which has no warehouse equivalent")
            return "(" + self.sequence(sub.data) + ")"
        if op is sre.BRANCH:
            return "(" + "|".join(self.sequence(alt.data) for alt in av[1]) + ")"
        if op is sre.AT:
            if av in (sre.AT_BOUNDARY, sre.AT_NON_BOUNDARY):
                if not self._flags & re.ASCII:
                    raise _Unsupported(
                        "uses \\b or \\B, a boundary between Unicode word characters in Python but ASCII ones in Snowflake; "
                        "add the ASCII flag (?a) to the pattern if ASCII words are meant"
                    )
                return "\\b" if av is sre.AT_BOUNDARY else "\\B"
            raise _Unsupported("uses ^ or $ inside the pattern (only at its ends, where the whole-value match implies them)")
        names = {sre.ASSERT: "a look-ahead or look-behind", sre.ASSERT_NOT: "a negative look-around",
                 sre.GROUPREF: "a back-reference", sre.GROUPREF_EXISTS: "a conditional group"}  # fmt: skip
        raise _Unsupported(f"uses {names.get(op, str(op).lower())}, which the warehouse's regular expressions lack")


_char_sets: dict[tuple[str, int], str] = {}  # (class, flags) -> its SQL: a class is expanded once per process


def _char_set(state, flags: int, items) -> str:
    """One character of the given class, as the exact set of characters Python matches with it under ``flags``."""
    subpattern = sre_parse.SubPattern(state, list(items))
    key = (repr(subpattern.data), flags)
    if key not in _char_sets:
        compiled = sre_compile.compile(subpattern, flags)
        matched = sorted({ord(c) for c in compiled.findall(_all_characters())})
        ranges = _ranges(matched)
        if len(ranges) > MAX_CLASS_RANGES:
            raise _Unsupported(
                f"has a character class (or a letter under IGNORECASE) that Python matches with {len(matched)} characters "
                f"in {len(ranges)} ranges (Unicode \\w, \\d, ...); over {MAX_CLASS_RANGES} ranges it is not pasted into SQL. "
                "Spell the characters meant, or add the ASCII flag (?a)"
            )
        # an empty set (a class nothing can match) needs a pattern that matches nothing: a character before the start
        _char_sets[key] = _emit_ranges(ranges) if ranges else "(a^)"
    return _char_sets[key]


@lru_cache(maxsize=1)
def _all_characters() -> str:
    """Every code point a warehouse string can hold (no NUL, no surrogates), once, to find what a class matches."""
    return "".join(chr(c) for c in range(1, 0x110000) if not _SURROGATES[0] <= c <= _SURROGATES[1])


def _ranges(codes: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for c in codes:
        if out and out[-1][1] == c - 1:
            out[-1] = (out[-1][0], c)
        else:
            out.append((c, c))
    return out


def _emit_ranges(ranges: list[tuple[int, int]]) -> str:
    """Ranges as ``[...]`` plus, outside the brackets, the characters brackets do not read alike everywhere."""
    inside: list[str] = []
    outside: list[str] = []
    for lo, hi in ranges:
        # peel special characters off the ends: a range's endpoints and lone members must be plain
        while lo <= hi and chr(lo) in _BRACKET_SPECIAL:
            outside.append(_escape(chr(lo)))
            lo += 1
        while lo <= hi and chr(hi) in _BRACKET_SPECIAL:
            outside.append(_escape(chr(hi)))
            hi -= 1
        if lo > hi:
            continue
        if lo == hi:
            inside.append(chr(lo))
        elif hi == lo + 1:
            inside.append(chr(lo) + chr(hi))
        else:
            inside.append(f"{chr(lo)}-{chr(hi)}")
    pieces = (["[" + "".join(inside) + "]"] if inside else []) + outside
    if len(pieces) == 1 and len(inside) == 1 and len(inside[0]) == 1:
        return _escape(inside[0])
    return pieces[0] if len(pieces) == 1 else "(" + "|".join(pieces) + ")"


def _escape(char: str) -> str:
    return "\\" + char if char in _ERE_SPECIAL else char


# --- running it where the data lives -----------------------------------------------------------


@dataclass(frozen=True)
class WarehousePlacement:
    """``engine.Placement``'s frames computed in the warehouse, sorted by client_key, each row also carrying
    ``rules_version`` (and ``territory_id`` when a territory table was given)."""

    clients: pd.DataFrame
    secondary: pd.DataFrame
    rules_version: str


def place_in_warehouse(connection, rules: Rules, table: str, territory_table: str | None = None) -> WarehousePlacement:
    """Run the compiled rules over ``table`` on ``connection`` (a Snowflake DB-API connection: dagster-snowflake's
    ``SnowflakeResource.get_connection()``, or fakesnow's) and fetch the placements."""
    compiled = compile_rules(rules, table, warehouse_columns(connection, table), territory_table)
    rows = _fetch(connection.cursor(), compiled.sql, compiled.params)
    extra = ["rules_version"] + (["territory_id"] if territory_table else [])
    primary = (rows["row_type"] == "PRIMARY").to_numpy()
    clients = rows.loc[primary, PLACEMENT_COLUMNS + extra].reset_index(drop=True)
    secondary = rows.loc[~primary, SECONDARY_COLUMNS + extra].reset_index(drop=True)
    return WarehousePlacement(clients=clients, secondary=secondary, rules_version=compiled.rules_version)


def _fetch(cursor, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    """The result as a DataFrame of objects, missing values as None (the pandas placement's shape).

    Through Arrow (``fetch_pandas_all``): at a million rows, Python row tuples cost twice the query itself.
    """
    cursor.execute(sql, params)
    columns = [str(d[0]).lower() for d in cursor.description]
    frame = cursor.fetch_pandas_all()
    if frame.shape[1] != len(columns):  # the connector gives an empty result without its columns
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame.columns = columns
    frame = frame.astype(object)
    return frame.where(frame.notna(), None)


# --- a placement table inside the warehouse (asset client_placement_in_warehouse) --------------


# The placement table's columns (schemas.ClientPlacementInWarehouse), each from a column of the compiled statement.
PLACEMENT_TABLE_COLUMNS = {
    "client_key": "CLIENT_KEY",
    "assignment_type": "ROW_TYPE",
    "territory_id": "TERRITORY_ID",
    "target_region": "TARGET_REGION",
    "target_segment": "TARGET_SEGMENT",
    "overlay": "OVERLAY",
    "segment": "SEGMENT",
    "segment_rule": "SEGMENT_RULE",
    "assigned_by": "ASSIGNED_BY",
    "pinned_advisor": "PINNED_ADVISOR",
    "rules_version": "RULES_VERSION",
}


def placement_table_sql(compiled: CompiledRules) -> str:
    """``compiled`` (compiled with a territory table) as the rows of the placement table, named as its model names
    them: a ``SELECT`` to put after ``CREATE TABLE ... AS`` or ``INSERT INTO ... ``, taking ``compiled.params``.
    ``ROW_TYPE`` becomes ``ASSIGNMENT_TYPE`` (PRIMARY / SECONDARY, as in assignments_fact)."""
    if not compiled.with_territory_id:
        raise ValueError("placement_table_sql needs rules compiled with a territory_table (the rows' territory_id)")
    columns = ", ".join(f'p."{source}" AS "{name.upper()}"' for name, source in PLACEMENT_TABLE_COLUMNS.items())
    return f"SELECT {columns} FROM (\n{compiled.sql}\n) p"


# Why a row differs between the warehouse placement and the pandas engine's (assignments_fact), in words.
_DIFFERENCE = """CASE
        WHEN f."CLIENT_KEY" IS NULL THEN 'only in the warehouse placement'
        WHEN w."CLIENT_KEY" IS NULL THEN 'only in assignments_fact'
        WHEN w."ASSIGNED_BY" IS DISTINCT FROM f."ASSIGNED_BY" THEN 'assigned_by'
        WHEN w."SEGMENT_RULE" IS DISTINCT FROM f."SEGMENT_RULE" THEN 'segment_rule'
        WHEN w."RULES_VERSION" IS DISTINCT FROM f."RULES_VERSION" THEN 'rules_version'
        ELSE 'pinned advisor'
    END"""


@dataclass(frozen=True)
class PlacementDifferences:
    """How the warehouse placement and assignments_fact differ: counts, and a sample of the differing rows."""

    warehouse_rows: int
    fact_rows: int
    differing_rows: int
    by_difference: pd.DataFrame  # difference, rows
    sample: pd.DataFrame  # the first differing rows by client_key: both sides' values


def placement_differences(connection, placement_table: str, fact_table: str, sample_rows: int = 20) -> PlacementDifferences:
    """Compare the placement table with assignments_fact inside the warehouse, row by row (nothing but the counts
    and the sample is fetched). Rows are matched on the fact's grain (client_key, territory_id, assignment_type);
    a matched row differs when its assigned_by, segment_rule or rules_version differ, or when an override pins an
    advisor the fact's PRIMARY row does not hold."""
    placement, fact = _table_name(placement_table), _table_name(fact_table)
    joined = f"""SELECT COALESCE(w."CLIENT_KEY", f."CLIENT_KEY") AS "CLIENT_KEY",
    COALESCE(w."ASSIGNMENT_TYPE", f."ASSIGNMENT_TYPE") AS "ASSIGNMENT_TYPE",
    COALESCE(w."TERRITORY_ID", f."TERRITORY_ID") AS "TERRITORY_ID",
    {_DIFFERENCE} AS "DIFFERENCE",
    w."ASSIGNED_BY" AS "WAREHOUSE_ASSIGNED_BY", f."ASSIGNED_BY" AS "FACT_ASSIGNED_BY",
    w."SEGMENT_RULE" AS "WAREHOUSE_SEGMENT_RULE", f."SEGMENT_RULE" AS "FACT_SEGMENT_RULE",
    w."RULES_VERSION" AS "WAREHOUSE_RULES_VERSION", f."RULES_VERSION" AS "FACT_RULES_VERSION",
    w."PINNED_ADVISOR" AS "WAREHOUSE_PINNED_ADVISOR", f."PRIMARY_ADVISOR_EMAIL" AS "FACT_ADVISOR"
FROM {placement} w
FULL OUTER JOIN {fact} f
    ON f."CLIENT_KEY" = w."CLIENT_KEY" AND f."TERRITORY_ID" = w."TERRITORY_ID" AND f."ASSIGNMENT_TYPE" = w."ASSIGNMENT_TYPE"
WHERE w."CLIENT_KEY" IS NULL OR f."CLIENT_KEY" IS NULL
    OR w."ASSIGNED_BY" IS DISTINCT FROM f."ASSIGNED_BY"
    OR w."SEGMENT_RULE" IS DISTINCT FROM f."SEGMENT_RULE"
    OR w."RULES_VERSION" IS DISTINCT FROM f."RULES_VERSION"
    OR (w."PINNED_ADVISOR" IS NOT NULL AND w."PINNED_ADVISOR" IS DISTINCT FROM f."PRIMARY_ADVISOR_EMAIL")"""
    cursor = connection.cursor()
    cursor.execute(f"SELECT (SELECT COUNT(*) FROM {placement}), (SELECT COUNT(*) FROM {fact})")
    counts = cursor.fetchone()
    warehouse_rows, fact_rows = (int(counts[0]), int(counts[1])) if counts else (0, 0)
    by_difference = _fetch(
        connection.cursor(),
        f'SELECT "DIFFERENCE", COUNT(*) AS "ROWS" FROM ({joined}) d GROUP BY "DIFFERENCE" ORDER BY "ROWS" DESC, "DIFFERENCE"',
        {},
    )
    sample = _fetch(
        connection.cursor(),
        f'SELECT * FROM ({joined}) d ORDER BY "CLIENT_KEY", "ASSIGNMENT_TYPE", "TERRITORY_ID" LIMIT {int(sample_rows)}',
        {},
    )
    return PlacementDifferences(
        warehouse_rows=warehouse_rows,
        fact_rows=fact_rows,
        differing_rows=int(by_difference["rows"].sum()) if len(by_difference) else 0,
        by_difference=by_difference,
        sample=sample,
    )
