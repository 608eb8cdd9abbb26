"""Compare the tables of two data folders, run timestamps aside: ``python -m crm_territory_tests.support.compare_tables A B``.

For every table of ``crm_territory.schemas.TABLES`` present in either folder: the rows of each side
(columns stamped with the time of the run dropped, rows sorted, since row order is not a table
property), whether they are the same, and a digest of the rows. Exit code 1 if any table differs.
Used to show that a change that should not change the outputs (a restructuring) does not.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pandas as pd

from crm_territory.schemas import TABLES
from crm_territory.storage.csv_tables import CsvTables

# columns stamped with the time of the run, or saying what this run did: equal only up to when each run happened
RUN_TIME_COLUMNS = {
    "ingested_at",
    "pulled_at",
    "issued_at",
    "valid_from",
    "valid_to",
    "client_key_issued_at",
    "first_seen_at",
    "retired_at",
    "estimated_at",
    "planned_at",
    # match_model: whether this run estimated the model or reused the last one, and why (a re-run reuses it)
    "re_estimated",
    "reason",
}


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.drop(columns=[c for c in frame.columns if c in RUN_TIME_COLUMNS])
    return out.sort_values(list(out.columns), na_position="first", kind="stable").reset_index(drop=True)


def digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()[:12]


def compare(left_dir: Path, right_dir: Path) -> tuple[list[str], bool]:
    left, right = CsvTables(left_dir), CsvTables(right_dir)
    lines, same_everywhere = [f"{'table':<26} {'rows A':>8} {'rows B':>8}  same  digest"], True
    for name in TABLES:
        a, b = left.read_if_exists(name), right.read_if_exists(name)
        if a is None and b is None:
            continue
        if a is None or b is None:
            same_everywhere = False
            lines.append(
                f"{name:<26} {'-' if a is None else len(a):>8} {'-' if b is None else len(b):>8}  NO    (missing on one side)"
            )
            continue
        ca, cb = comparable(a), comparable(b)
        same = ca.shape == cb.shape and ca.equals(cb)
        same_everywhere &= same
        lines.append(
            f"{name:<26} {len(a):>8,} {len(b):>8,}  {'yes' if same else 'NO':<5} {digest(ca)}{'' if same else ' vs ' + digest(cb)}"
        )
    return lines, same_everywhere


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    lines, same = compare(Path(argv[0]), Path(argv[1]))
    print("\n".join(lines))
    print("every table identical (run timestamps aside)" if same else "TABLES DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
