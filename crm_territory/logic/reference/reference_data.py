"""Reference data kept in the repo: alias tables for regions and segments, owner roles per segment.

Loaded and validated once per run; a broken reference file fails loudly, naming the file, the
line and the problem, because a silently wrong alias table would misassign every client.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from crm_territory.logic.reference.canonical import alias_key


class ReferenceDataError(ValueError):
    """A reference file is missing or inconsistent."""


@dataclass(frozen=True)
class ReferenceData:
    region_aliases: dict[str, str]  # alias_key(alias) -> canonical region
    segment_aliases: dict[str, str]  # alias_key(alias) -> canonical segment
    owner_roles: dict[str, str]  # canonical segment -> owner role

    @property
    def regions(self) -> list[str]:
        return sorted(set(self.region_aliases.values()))

    @property
    def segments(self) -> list[str]:
        return sorted(set(self.segment_aliases.values()))

    @property
    def fingerprint(self) -> str:
        """A digest of every alias and role: equal fingerprints, equal canonical values."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise ReferenceDataError(f"{path}: reference file is missing (expected columns {', '.join(columns)})")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [c.strip() for c in frame.columns]
    if list(frame.columns) != columns:
        raise ReferenceDataError(f"{path}: expected columns {columns}, found {list(frame.columns)}")
    for col in columns:
        frame[col] = frame[col].str.strip()
        empty = frame.index[frame[col] == ""]
        if len(empty):
            raise ReferenceDataError(f"{path}: line {int(empty[0]) + 2}: '{col}' is empty")
    return frame


def _alias_map(path: Path, value_column: str) -> dict[str, str]:
    frame = _read(path, ["alias", value_column])
    frame["key"] = frame["alias"].map(alias_key)
    conflicts = frame.groupby("key")[value_column].nunique()
    conflicts = conflicts[conflicts > 1]
    if len(conflicts):
        key = conflicts.index[0]
        rows = frame[frame["key"] == key]
        detail = "; ".join(f"line {i + 2}: {a!r} -> {v!r}" for i, a, v in zip(rows.index, rows["alias"], rows[value_column]))
        raise ReferenceDataError(f"{path}: alias {key!r} maps to more than one {value_column} ({detail})")
    # A canonical value is always an alias of itself.
    canonical = frame[[value_column]].drop_duplicates()
    own = dict(zip(canonical[value_column].map(alias_key), canonical[value_column]))
    mapping = dict(zip(frame["key"], frame[value_column]))
    clash = {k: (own[k], mapping[k]) for k in own if k in mapping and mapping[k] != own[k]}
    if clash:
        raise ReferenceDataError(f"{path}: a canonical value is also an alias of another: {clash}")
    return {**own, **mapping}


def load_reference_data(reference_dir: str | Path) -> ReferenceData:
    reference_dir = Path(reference_dir)
    region_aliases = _alias_map(reference_dir / "region_aliases.csv", "region")
    segment_aliases = _alias_map(reference_dir / "segment_aliases.csv", "segment")
    roles_path = reference_dir / "segments.csv"
    roles = _read(roles_path, ["segment", "owner_role"])
    owner_roles = dict(zip(roles["segment"], roles["owner_role"]))
    missing = sorted(set(segment_aliases.values()) - set(owner_roles))
    if missing:
        raise ReferenceDataError(f"{roles_path}: no owner_role for segment(s) {missing}; add a line per segment")
    return ReferenceData(region_aliases, segment_aliases, owner_roles)
