"""Reading a rules file: bytes to text to YAML to the validated model, every problem in words with its key path.

YAML's traps are refused here rather than trusted: a key written twice in one mapping (YAML keeps the
last silently), a file that is not UTF-8 (named with the byte and line). Pydantic's errors are
translated into what the rules file's author wrote: the key path, the operator or key that was meant
("did you mean ..."), the kind of value expected.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from crm_territory.logic.rules.model import (
    _ASSIGN_CLIENT_TAG,
    _ASSIGN_MAPPING_TAG,
    DOCUMENT_KEY,
    OPERATORS,
    Rules,
    RulesError,
    RulesFile,
    _describe,
    content_version,
)
from crm_territory.logic.size_limits import FileTooLarge, read_at_most, too_large

# a rules file is written by people: a few hundred rules are a few tens of kB
MAX_RULES_BYTES = 1_000_000
_RULES_TOO_LARGE = (
    "rules are written by people (a few hundred rules are a few tens of kB); a file this size was generated or "
    "pasted by mistake. Check it; per-client placements by the thousand belong in the CRM's data, not in overrides"
)


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file; ``RulesError`` lists every problem with its key path."""
    path = Path(path)
    source = str(path)
    try:
        data = read_at_most(path, MAX_RULES_BYTES, "rules file", _RULES_TOO_LARGE)
    except FileTooLarge as exc:
        raise RulesError(source, [(DOCUMENT_KEY, str(exc))]) from None
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
    data = text.encode("utf-8")
    if len(data) > MAX_RULES_BYTES:
        raise RulesError(source_name, [(DOCUMENT_KEY, too_large(len(data), MAX_RULES_BYTES, "rules file", _RULES_TOO_LARGE))])
    return _parse(text, source_name, content_version(data))


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
    _refuse_aliases(text, source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise RulesError(source, [(DOCUMENT_KEY, _yaml_error(exc))]) from None
    if root is None:
        raise RulesError(source, [(DOCUMENT_KEY, "the file is empty; it needs at least `version: 1`")])
    duplicates = list(_duplicate_keys(root, ""))
    if duplicates:
        raise RulesError(source, duplicates)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # e.g. a !!python/object tag: safe_load refuses to build it, say so in words
        raise RulesError(source, [(DOCUMENT_KEY, _yaml_error(exc))]) from None
    if not isinstance(document, dict):
        reason = f"expected a mapping of sections (version, segmentation, ...), got {_describe(document)}"
        raise RulesError(source, [(DOCUMENT_KEY, reason)])
    return document


def _refuse_aliases(text: str, source: str) -> None:
    """YAML anchors and aliases (``&a`` / ``*a``) are refused before anything walks the document.

    A rules file has no use for them, and nested aliases expand exponentially: 723 bytes of
    "billion laughs" took the duplicate-key walk 29 s at nesting 7 and hours beyond. Reading the
    event stream is linear in the file, so the check itself cannot be made to hang.
    """
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise RulesError(
                    source,
                    [
                        (
                            DOCUMENT_KEY,
                            f"YAML anchors and aliases (&name, *name) are not allowed in a rules file (line {mark.line + 1}); write the values out",
                        )
                    ],
                )
    except yaml.YAMLError as exc:
        raise RulesError(source, [(DOCUMENT_KEY, _yaml_error(exc))]) from None


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
                yield (
                    child,
                    f"written twice in one mapping (lines {seen[key]} and {line}); YAML would silently keep only the last",
                )
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
            reason = (
                f"client {override.client_key!r} is already overridden at overrides[{pinned[override.client_key]}]; merge the two"
            )
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


def _reason(error: ErrorDetails, loc: list) -> str:
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
