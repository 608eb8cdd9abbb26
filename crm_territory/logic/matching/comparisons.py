"""Which optional fields are compared and how much each level is worth: ``data/matching/comparisons.yaml``.

The file sits beside the decisions file and is optional: missing, every value below is today's
constant (``fields.PRIORS``, 4.5 points a bit, at most 10 bits), so a newcomer configures nothing::

    version: 1
    points_per_bit: 4.5        # the rate the hand-set region points imply (see fields.py)
    max_bits: 10               # an agreement counts at most this many bits
    fields:
      tax_id: {m: {exact: 0.95, close: 0.03, different: 0.02}}
      phone: {compare: false}  # never compared: adds no points and no blocking weight
    estimation:
      enabled: true            # m by expectation-maximisation over the candidate pairs
      max_iterations: 100
      min_pairs: 200           # fewer candidate pairs having the field on both records: keep the prior
      re_estimate_when_records_change_by: 0.10
      min_decisions: 50        # must-link pairs having a field on both records: m from them instead of EM
    crm_fields:                # region, parent organisation, advisor e-mail and domain
      estimate: true           # false: the hand-set points of scoring.py
      max_bits: 5              # an estimated agreement counts at most this many bits
    blocking:
      max_block_size: 100      # a key shared by more records is skipped (counted), not compared all-pairs
      passes:                  # in order; omitted: every built-in pass (blocking.DEFAULT_PASSES)
        - same name
        - first word one edit apart
        - same tax id
        - {name: same postcode and initial, parts: [postal_code, initial]}   # your own: parts agreeing

``m`` given for a field is the prior EM starts from and falls back to. The file is read like the
rules file (``logic/rules/loader.py``): bounded in size, YAML anchors and aliases refused (nested
aliases expand exponentially), a key written twice refused, an unknown key named with its key path.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crm_territory.logic.matching.blocking import BUILT_IN_PASSES, DEFAULT_PASSES, MAX_BLOCK_SIZE, PARTS, BlockingPass
from crm_territory.logic.matching.fields import FIELDS, MAX_BITS, POINTS_PER_BIT, PRIORS, Prior
from crm_territory.logic.size_limits import FileTooLarge, read_at_most

# the most bits an estimated agreement on region, parent or advisor counts (model.py says why)
CRM_MAX_BITS = 5.0
# a few dozen lines written by a person; anything near this size was generated or pasted by mistake
MAX_COMPARISONS_BYTES = 100_000
_TOO_LARGE = "the comparisons file is a few dozen lines written by a person; a file this size was generated or pasted by mistake"


class ComparisonsError(ValueError):
    """The comparisons file cannot be used as written; the message names each problem's key path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelPriors(_Strict):
    exact: float = Field(gt=0, lt=1)
    close: float = Field(gt=0, lt=1)
    different: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> LevelPriors:
        total = self.exact + self.close + self.different
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"exact + close + different must sum to 1 (m is a distribution over the levels), got {total:g}")
        return self


class FieldComparison(_Strict):
    compare: bool = True
    m: LevelPriors | None = None  # None: the built-in prior of the field


class Estimation(_Strict):
    enabled: bool = True
    max_iterations: int = Field(default=100, ge=1, le=10_000)
    tolerance: float = Field(default=1e-5, gt=0, lt=0.1)
    min_pairs: int = Field(default=200, ge=1)
    re_estimate_when_records_change_by: float = Field(default=0.10, ge=0)
    # m from the analysts' must-link pairs (decisions.csv) for a field at least this many of them have
    # on both records: the humans' answer wins over EM's
    min_decisions: int = Field(default=50, ge=1)


class CustomPass(_Strict):
    name: str = Field(min_length=1, max_length=80)
    parts: list[Literal[PARTS]] = Field(min_length=1, max_length=4)  # type: ignore[valid-type]


class Blocking(_Strict):
    # a key shared by more records than this is too common to say anything: its block is skipped (counted)
    max_block_size: int = Field(default=MAX_BLOCK_SIZE, ge=2, le=10_000)
    # in order: a pair is scored once, credited to the first pass that found it. None: the built-in passes
    passes: list[str | CustomPass] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _known_and_distinct(self) -> Blocking:
        seen: set[str] = set()
        for i, given in enumerate(self.passes or []):
            if isinstance(given, str) and given not in BUILT_IN_PASSES:
                raise ValueError(
                    f"passes[{i}]: unknown pass {given!r} (built in: {', '.join(BUILT_IN_PASSES)}; "
                    f"or your own: {{name: ..., parts: [...]}} over {', '.join(PARTS)})"
                )
            name = given if isinstance(given, str) else given.name
            if not isinstance(given, str) and name in BUILT_IN_PASSES:
                raise ValueError(f"passes[{i}]: {name!r} is a built-in pass's name; give your own pass another name")
            if name in seen:
                raise ValueError(f"passes[{i}]: {name!r} is listed twice")
            seen.add(name)
        return self

    def resolved(self) -> tuple[BlockingPass, ...]:
        if self.passes is None:
            return DEFAULT_PASSES
        return tuple(
            BUILT_IN_PASSES[given] if isinstance(given, str) else BlockingPass(given.name, tuple(given.parts))
            for given in self.passes
        )


class CrmFields(_Strict):
    # region, parent organisation, advisor e-mail and domain: weights estimated (false: the hand-set points)
    estimate: bool = True
    # an estimated agreement counts at most this many bits: group attributes, shared by look-alike siblings
    max_bits: float = Field(default=CRM_MAX_BITS, gt=0, le=64)


class ComparisonsFile(_Strict):
    version: Literal[1] = 1
    points_per_bit: float = Field(default=POINTS_PER_BIT, gt=0, le=100)
    max_bits: float = Field(default=MAX_BITS, gt=0, le=64)
    fields: dict[Literal["tax_id", "date_of_birth", "postal_code", "domain", "phone", "address"], FieldComparison] = {}
    estimation: Estimation = Estimation()
    blocking: Blocking = Blocking()
    crm_fields: CrmFields = CrmFields()


@dataclass(frozen=True)
class Comparisons:
    """The comparisons in force: the fields compared, their m priors, points per bit, the cap, EM settings."""

    fields: tuple[str, ...]
    priors: dict[str, Prior]
    points_per_bit: float
    max_bits: float
    estimation: Estimation
    version: str  # hash of the settings (not of the file's bytes: a comment or a reordering changes nothing)
    source: str = "defaults (no comparisons file)"
    blocking_passes: tuple[BlockingPass, ...] = DEFAULT_PASSES
    max_block_size: int = MAX_BLOCK_SIZE
    crm_estimate: bool = True
    crm_max_bits: float = CRM_MAX_BITS

    @classmethod
    def from_file(cls, parsed: ComparisonsFile, source: str) -> Comparisons:
        given_fields: dict[str, FieldComparison] = {str(k): v for k, v in parsed.fields.items()}
        priors = {f: (Prior(**given.m.model_dump()) if (given := given_fields.get(f)) and given.m else PRIORS[f]) for f in FIELDS}
        compared = tuple(f for f in FIELDS if (given := given_fields.get(f)) is None or given.compare)
        settings = {
            "fields": list(compared),
            "priors": {f: [priors[f].exact, priors[f].close, priors[f].different] for f in compared},
            "points_per_bit": parsed.points_per_bit,
            "max_bits": parsed.max_bits,
            "estimation": parsed.estimation.model_dump(),
            "crm_fields": parsed.crm_fields.model_dump(),
        }
        passes = parsed.blocking.resolved()
        if passes != DEFAULT_PASSES or parsed.blocking.max_block_size != MAX_BLOCK_SIZE:
            # other candidate pairs, another training sample: the model is estimated again. (The defaults
            # are left out of the hash so that models stored before blocking was configurable stay valid.)
            settings["blocking"] = {
                "passes": [[p.name, *p.parts] for p in passes],
                "max_block_size": parsed.blocking.max_block_size,
            }
        version = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        return cls(
            compared,
            priors,
            parsed.points_per_bit,
            parsed.max_bits,
            parsed.estimation,
            version,
            source,
            passes,
            parsed.blocking.max_block_size,
            parsed.crm_fields.estimate,
            parsed.crm_fields.max_bits,
        )


DEFAULT_COMPARISONS = Comparisons.from_file(ComparisonsFile(), "defaults (no comparisons file)")


def read_comparisons(path: Path) -> Comparisons:
    """The comparisons file, or the defaults when it does not exist; ``ComparisonsError`` names every problem."""
    if not path.exists():
        return DEFAULT_COMPARISONS
    try:
        data = read_at_most(path, MAX_COMPARISONS_BYTES, "comparisons file", _TOO_LARGE)
    except FileTooLarge as exc:
        raise ComparisonsError(f"{path}: {exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ComparisonsError(f"{path}: not UTF-8: byte 0x{data[exc.start]:02x} at line {line}; save it as UTF-8") from None
    return parse_comparisons(text, str(path))


def parse_comparisons(text: str, source: str) -> Comparisons:
    document = _read_yaml(text, source)
    if document is None:  # an empty file (or only comments): the defaults
        return Comparisons.from_file(ComparisonsFile(), source)
    if not isinstance(document, dict):
        raise ComparisonsError(
            f"{source}: expected a mapping (version, points_per_bit, fields, ...), got {type(document).__name__}"
        )
    try:
        parsed = ComparisonsFile.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors()
        # a pass is a built-in's name or {name, parts}: when the mapping form has a problem, pydantic also
        # reports that it is not a string, which says nothing to the person who wrote a mapping
        mapping_problems = {e["loc"][: e["loc"].index("CustomPass")] for e in errors if "CustomPass" in e["loc"]}
        errors = [e for e in errors if not (e["loc"][-1] == "str" and e["loc"][:-1] in mapping_problems)]
        problems = [f"{_key_path(e['loc'])}: {_reason(e)}" for e in errors]
        raise ComparisonsError(f"{source}: " + "; ".join(problems)) from None
    return Comparisons.from_file(parsed, source)


def _read_yaml(text: str, source: str) -> object:
    try:
        # aliases are refused from the event stream, before anything expands them (linear in the file)
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ComparisonsError(
                    f"{source}: YAML anchors and aliases (&name, *name) are not allowed (line {event.start_mark.line + 1}); write the values out"
                )
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            twice = list(_duplicate_keys(root, ""))
            if twice:
                raise ComparisonsError(f"{source}: " + "; ".join(twice))
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ComparisonsError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


def _duplicate_keys(node: yaml.Node, path: str):
    """A key written twice in one mapping: YAML would keep the last one silently."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in seen:
                yield f"{child}: written twice in one mapping (line {key_node.start_mark.line + 1}); keep one"
            seen.add(key)
            yield from _duplicate_keys(value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{path}[{i}]")


def _key_path(loc) -> str:
    path = ""
    for part in (p for p in loc if p not in ("[key]", "CustomPass")):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(the file)"


def _reason(error) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key {error['loc'][-1]!r}"
    if error["loc"][-1:] == ("[key]",):
        return f"unknown field {error['input']!r} (fields: {', '.join(FIELDS)})"
    if kind == "value_error" and isinstance(error.get("input"), dict):  # a check over a whole mapping: its message names the key
        return error["msg"].removeprefix("Value error, ")
    return error["msg"].removeprefix("Value error, ") + f" (got {error.get('input')!r})"
