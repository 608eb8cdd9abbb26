"""Random change batches on a raw_clients book, as a change feed delivers them: for the incremental-vs-full tests
and the incremental bench.

A batch mixes every kind of change that moves entity resolution: a renamed record (to another record's name,
which makes a duplicate, or with a typo), a new region, parent or advisor, an optional field given, changed or
shared with another record (tax id, date of birth, postcode, phone, e-mail domain: the values whose counts set an
exact agreement's points), a new record (a copy of another under a new id, often with a typo) and a removed
record. Changes are applied to the latest version in place; the book keeps one version per record.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

OPTIONAL = ("tax_id", "date_of_birth", "postal_code", "phone", "email_domain")
KINDS = ("rename_like", "typo", "region", "parent", "advisor", "optional", "share_optional", "add", "remove")


def with_optional_fields(raw: pd.DataFrame, seed: int = 7) -> pd.DataFrame:
    """The book with optional fields on part of its records, drawn from small pools so that values repeat (a few
    common postcodes and e-mail domains, shared dates of birth, tax ids held by two or three records)."""
    rng = np.random.default_rng(seed)
    out = raw.copy()
    n = len(out)

    def some(share: float, pool: list[str]) -> list[str | None]:
        given = rng.random(n) < share
        picked = rng.choice(np.array(pool, dtype=object), n)
        return [v if g else None for v, g in zip(picked, given, strict=True)]

    out["tax_id"] = some(0.3, [str(v) for v in rng.integers(100_000_000, 999_999_999, max(n // 3, 2))])
    out["date_of_birth"] = some(0.1, [f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}" for i in range(200)])
    out["postal_code"] = some(0.2, [f"{10000 + 37 * i}" for i in range(60)])
    out["phone"] = some(0.15, [f"+1 {v}" for v in rng.integers(2_000_000_000, 9_999_999_999, max(n // 4, 2))])
    out["email_domain"] = some(0.2, ["gmail.com", "outlook.com", "acme.com", "northwind.com", "zentra.io"])
    return out


def change_batch(raw: pd.DataFrame, changes: int, seed: int, now: pd.Timestamp, kinds: tuple[str, ...] = KINDS) -> pd.DataFrame:
    """``raw`` after ``changes`` random changes of ``kinds`` (see the module's docstring); the input is not modified."""
    rng = np.random.default_rng(seed)
    out = raw.copy().reset_index(drop=True)
    names = out["client_name"].to_numpy(dtype=object)
    regions = sorted(set(out["region"].dropna()))
    added: list[dict] = []
    removed: set[int] = set()
    for serial, kind in enumerate(rng.choice(np.array(kinds, dtype=object), changes)):
        i, j = (int(x) for x in rng.integers(0, len(out), 2))
        if i in removed:
            continue
        if kind == "rename_like":
            out.at[i, "client_name"] = names[j]
        elif kind == "typo":
            name = str(out.at[i, "client_name"])
            at = int(rng.integers(0, max(len(name), 1)))
            out.at[i, "client_name"] = name[:at] + name[at + 1 :] if len(name) > 3 else name + " Group"
        elif kind == "region" and regions:
            out.at[i, "region"] = regions[int(rng.integers(0, len(regions)))]
        elif kind == "parent":
            out.at[i, "parent_org"] = out.at[j, "parent_org"] if rng.random() < 0.5 else f"Parent {serial}"
        elif kind == "advisor":
            out.at[i, "advisor_email"] = out.at[j, "advisor_email"]
        elif kind == "optional":
            field = OPTIONAL[int(rng.integers(0, len(OPTIONAL)))]
            if field in out.columns:
                out.at[i, field] = None if rng.random() < 0.3 else f"{serial:04d}{out.at[j, field] or '9'}"[:12]
        elif kind == "share_optional":
            field = OPTIONAL[int(rng.integers(0, len(OPTIONAL)))]
            if field in out.columns:
                out.at[i, field] = out.at[j, field]
        elif kind == "add":
            row = out.iloc[j].to_dict()
            row["client_id"] = row["source_record_id"] = f"N{seed}x{serial}"
            if rng.random() < 0.5:
                name = str(row["client_name"])
                row["client_name"] = name[:-1] if len(name) > 4 else name + " Co"
            row["source_file"], row["source_modified_at"] = f"change_{seed}.csv", now
            added.append(row)
        elif kind == "remove":
            removed.add(i)
    out = out.drop(index=sorted(removed))
    if added:
        with warnings.catch_warnings():
            # a column all missing in the added rows keeps the book's dtype, as wanted; pandas warns that may change
            warnings.simplefilter("ignore", FutureWarning)
            out = pd.concat([out, pd.DataFrame(added)[out.columns]], ignore_index=True)
    return out.reset_index(drop=True)
