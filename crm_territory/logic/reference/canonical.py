"""Canonical values: regions and segments through alias tables, advisor e-mails lower-cased and validated."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from crm_territory.schemas import EMAIL_PATTERN

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def alias_key(value: str) -> str:
    """The form aliases are compared in: lower case, letters and digits only ("N.E." -> "ne")."""
    return _NOT_ALNUM.sub("", value.lower())


def alias_keys(values: pd.Series) -> pd.Series:
    """Vectorised ``alias_key``; missing stays missing."""
    return values.str.lower().str.replace(_NOT_ALNUM.pattern, "", regex=True)


def canonicalise(values: pd.Series, aliases: dict[str, str]) -> pd.Series:
    """Map each raw spelling to its canonical value; unknown or empty spellings become missing.

    Works on the distinct values only (a region column has a handful), then broadcasts back,
    so a million rows cost one ``map`` over a small dictionary.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    canonical_uniques = alias_keys(pd.Series(uniques, dtype=object)).map(aliases).to_numpy(dtype=object)
    # index the present values only: a column empty in every row has no distinct value, and indexing an empty
    # array with the missing-value code (-1) raised IndexError (a drop whose segment column was blank throughout)
    result = np.full(len(values), None, dtype=object)
    present = codes >= 0
    result[present] = canonical_uniques[codes[present]]
    out = pd.Series(result, index=values.index, dtype=object)
    return out.where(out.notna(), None)


def normalise_emails(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Trim and lower-case e-mails. Returns (valid e-mail or missing, mask of present-but-invalid).

    Like ``canonicalise``, works on the distinct values (a book has a few hundred advisors).
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = pd.Series(uniques, dtype=object).str.strip().str.lower()
    cleaned = cleaned.where(cleaned != "", None)
    valid = cleaned.str.fullmatch(EMAIL_PATTERN, na=False).astype(bool)
    present = codes >= 0
    email = np.full(len(values), None, dtype=object)
    email[present] = cleaned.where(valid, None).to_numpy(dtype=object)[codes[present]]
    invalid = np.zeros(len(values), dtype=bool)
    invalid[present] = (cleaned.notna() & ~valid).to_numpy()[codes[present]]
    return pd.Series(email, index=values.index, dtype=object), pd.Series(invalid, index=values.index)
