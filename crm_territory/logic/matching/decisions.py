"""Human decisions the matcher always honours: must-link and cannot-link pairs of source records.

The file (``data/matching/decisions.csv``) is a CSV an analyst edits, one decision per line::

    record_a,record_b,decision,note
    crm_api:100017,csv_drop:D000042,must_link,same firm: renamed after the 2025 merger
    crm_api:100311,crm_api:100987,cannot_link,two family offices of one family

A record is named ``<source_system>:<client_id>``, as client_xref and client_matches show it. A
broken file stops the run naming the line and the problem: a decision silently ignored would
re-merge what someone split by hand. Decisions about records not in the current book are kept and
reported (the record may arrive in a later drop), not applied.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crm_territory.logic.size_limits import FileTooLarge, read_at_most
from crm_territory.schemas import CLIENT_ID_PATTERN, SOURCE_SYSTEMS

MUST_LINK, CANNOT_LINK = "must_link", "cannot_link"
DECISION_COLUMNS = ["record_a", "record_b", "decision", "note"]
RECORD_PATTERN = rf"^({'|'.join(SOURCE_SYSTEMS)}):{CLIENT_ID_PATTERN[1:]}"


def record_pattern(source_systems: Sequence[str]) -> str:
    """``<source_system>:<client_id>`` for the given sources (the built-in ones and the source layouts' names)."""
    return rf"^({'|'.join(re.escape(s) for s in source_systems)}):{CLIENT_ID_PATTERN[1:]}"


# Each line is a pair someone reviewed: a real book's decisions number in the hundreds or thousands, a
# few hundred kB. 25 MB is 250,000 lines of 100 bytes (2.5 times the 100,000 lines the fault probe
# loaded in 5 s, which must keep working), read in a few seconds; a file beyond it was generated.
MAX_DECISIONS_BYTES = 25_000_000
_DECISIONS_TOO_LARGE = (
    "each line is a pair of records someone reviewed, and a real book's decisions are a few hundred kB; "
    "a file this size was generated or pasted by mistake. Check it and keep the decisions people made; "
    "bulk merges belong in the sources (one record per organisation), not in decisions"
)


class MatchDecisionsError(ValueError):
    """The decisions file cannot be used as written."""


@dataclass(frozen=True)
class MatchDecisions:
    pairs: pd.DataFrame  # record_a, record_b (a < b), decision, note, line
    source: str = "the match decisions"  # the file, for messages

    @classmethod
    def none(cls) -> MatchDecisions:
        return cls(pd.DataFrame({c: pd.Series(dtype=object) for c in DECISION_COLUMNS}).assign(line=pd.Series(dtype="int64")))

    def of(self, decision: str) -> pd.DataFrame:
        return self.pairs[self.pairs["decision"] == decision]


def parse_decisions(frame: pd.DataFrame, source: str, source_systems: Sequence[str] = tuple(SOURCE_SYSTEMS)) -> MatchDecisions:
    """Validate decisions read as text (``source`` names the file in messages).

    A ``line`` column gives each row's line in the file; without one, rows are numbered from line 2
    (the header is line 1).
    """
    lines = frame["line"].to_numpy() if "line" in frame.columns else frame.index.to_numpy() + 2
    frame = frame.drop(columns=["line"], errors="ignore")
    columns = [c.strip() for c in frame.columns]
    if columns[:3] != DECISION_COLUMNS[:3] or not set(columns) <= set(DECISION_COLUMNS):
        raise MatchDecisionsError(
            f"{source}: expected columns {', '.join(DECISION_COLUMNS)} (note optional); found {', '.join(columns)}"
        )
    frame = frame.set_axis(columns, axis=1).reindex(columns=DECISION_COLUMNS).astype(object)
    frame = frame.apply(lambda col: col.where(col.isna(), col.astype(str).str.strip())).assign(line=lines)
    frame["decision"] = frame["decision"].str.lower()
    # one message per line in error, built column-wise like the quarantine's reasons
    line = "line " + frame["line"].astype(str) + ": "
    bad_record = {c: ~frame[c].fillna("").str.match(record_pattern(source_systems)) for c in ["record_a", "record_b"]}
    bad_decision = ~frame["decision"].isin([MUST_LINK, CANNOT_LINK])
    self_paired = frame["record_a"] == frame["record_b"]
    wanted = f" is not <source_system>:<client_id> (source_system one of {', '.join(source_systems)})"
    problems = [
        *(line + "record_a " + frame["record_a"].map(repr) + wanted)[bad_record["record_a"]].tolist(),
        *(line + "record_b " + frame["record_b"].map(repr) + wanted)[bad_record["record_b"]].tolist(),
        *(line + "decision " + frame["decision"].map(repr) + f" is not {MUST_LINK} or {CANNOT_LINK}")[bad_decision].tolist(),
        *(line + "a record is paired with itself (" + frame["record_a"].astype(str) + ")")[self_paired].tolist(),
    ]
    if problems:
        raise MatchDecisionsError(
            f"{source}: " + "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        )

    low = frame[["record_a", "record_b"]].min(axis=1)
    high = frame[["record_a", "record_b"]].max(axis=1)
    frame = frame.assign(record_a=low, record_b=high).drop_duplicates(["record_a", "record_b", "decision"])
    both = frame[frame.duplicated(["record_a", "record_b"], keep=False)]
    if len(both):
        first = both.iloc[0]
        lines = ", ".join(
            str(x) for x in both.loc[(both["record_a"] == first.record_a) & (both["record_b"] == first.record_b), "line"]
        )
        raise MatchDecisionsError(
            f"{source}: lines {lines} both must-link and cannot-link {first.record_a} and {first.record_b}; keep one"
        )
    return MatchDecisions(frame.reset_index(drop=True), source)


def read_decisions(path: Path, source_systems: Sequence[str] = tuple(SOURCE_SYSTEMS)) -> MatchDecisions:
    """The decisions file, or no decisions when it does not exist. Blank lines and lines starting with '#' are skipped."""
    if not path.exists():
        return MatchDecisions.none()
    try:
        data = read_at_most(path, MAX_DECISIONS_BYTES, "match decisions file", _DECISIONS_TOO_LARGE)
    except FileTooLarge as exc:
        raise MatchDecisionsError(f"{path}: {exc}") from None
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's byte-order mark is fine
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MatchDecisionsError(
            f"{path}: not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); save it as UTF-8"
        ) from None
    numbered = [  # newline="": the lines a file opened for csv gives
        (number, line)
        for number, line in enumerate(io.StringIO(text, newline=""), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        return MatchDecisions.none()  # an empty file: no decisions yet
    rows = list(csv.reader(line for _, line in numbered))
    header, body = rows[0], rows[1:]
    width = len(header)
    short = [numbered[i + 1][0] for i, row in enumerate(body) if len(row) > width]
    if short:
        raise MatchDecisionsError(f"{path}: line {short[0]} has more fields than the header (quote a note that contains a comma)")
    frame = pd.DataFrame([row + [""] * (width - len(row)) for row in body], columns=header, dtype=object)
    frame = frame.replace("", None).assign(line=[number for number, _ in numbered[1:]])
    return parse_decisions(frame, str(path), source_systems)
