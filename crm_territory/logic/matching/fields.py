"""The optional fields a source may give (tax id, date of birth, postcode, web domain, phone, street address): normalised,
compared, and weighted the Fellegi–Sunter way.

Names keep their word-by-word score (``scoring.py``): it is why the matcher keeps sibling organisations apart;
region, parent and advisor are weighted by the same model as these fields (``model.py``). The fields here are what a source layout
may add (``RawClients``: empty for the CRM API and the seed layout). A field missing on either record of
a pair adds nothing (weight 0), so a book without them is scored exactly as before.

Each field has three comparison levels: ``exact`` (the same normalised value), ``close`` (a typo: one
edit; for dates also the day and month swapped or at most ``DATE_CLOSE_DAYS`` apart; for postcodes also
the same first ``POSTCODE_PREFIX`` characters; for phones the same last ``PHONE_TAIL`` digits; for street
addresses the same words give or take some, or nearly the same letters once spaces are ignored: rapidfuzz's
``token_set_ratio`` or ``ratio`` of at least ``ADDRESS_CLOSE_SIMILARITY``, as a retyped address differs) and
``different``. A level's weight is ``log2(m / u)`` bits:

* ``m``, the chance that two records of one client fall in the level, comes from the ``FieldModel`` in
  force: the priors (``PRIORS``, or the comparisons file's) or what expectation-maximisation estimated
  from the candidate pairs (``estimation.py``).
* ``u``, the chance that two records of *different* clients fall in it, comes from the book. For
  ``exact`` it is taken per value (term-frequency adjustment): the share of the records holding that
  value, so agreeing on a common date of birth says less than agreeing on a rare one (the field-level
  ``u`` of random pairs is the sum of the squared shares, its average). For ``close`` it is the share of
  close pairs among ``U_SAMPLE_PAIRS`` random pairs (fixed seed) of records having the field (at least one
  in the sample); ``different`` takes the rest, ``1 - sum of squared shares - u(close)``.

Bits are turned into the score's points at ``POINTS_PER_BIT`` = 4.5, the rate the hand-set region points
already imply: a region differs in ~8% of true pairs and in ~80% of random pairs, log2(0.08 / 0.8) = -3.3
bits, which the point table prices at -15 points. An agreement counts at most ``MAX_BITS`` = 10 bits
(45 points; a value shared by one record in a thousand): beyond that a book's frequencies say more
about its size than about the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA
from rapidfuzz.process import cpdist

POINTS_PER_BIT = 4.5
MAX_BITS = 10.0
U_SAMPLE_PAIRS = 200_000
DATE_CLOSE_DAYS = 3
POSTCODE_PREFIX = 3
PHONE_TAIL = 9
MIN_ID_DIGITS = 4  # a tax id with fewer digits is not an identifier ("0", "-")
MIN_PHONE_DIGITS = 7
MIN_ADDRESS_CHARACTERS = 5
ADDRESS_CLOSE_SIMILARITY = 85.0

EXACT, CLOSE, DIFFERENT = "exact", "close", "different"
LEVELS = np.array([None, DIFFERENT, CLOSE, EXACT], dtype=object)  # indexed by level code + 1


@dataclass(frozen=True)
class Prior:
    """m: the chance two records of one client are exact, close or different on the field (sums to 1)."""

    exact: float
    close: float
    different: float


PRIORS: dict[str, Prior] = {
    # a registration id is copied, rarely mistyped, and one organisation has one
    "tax_id": Prior(exact=0.95, close=0.03, different=0.02),
    "date_of_birth": Prior(exact=0.90, close=0.07, different=0.03),
    # people and offices move; a postcode is retyped with its area kept
    "postal_code": Prior(exact=0.80, close=0.08, different=0.12),
    # an e-mail domain or a website: a group may use several
    "domain": Prior(exact=0.85, close=0.03, different=0.12),
    # a phone is the field most often out of date or a switchboard's
    "phone": Prior(exact=0.70, close=0.10, different=0.20),
    # a street address is retyped ("St" / "Street", a unit added or left out) and changes when a client moves
    "address": Prior(exact=0.60, close=0.25, different=0.15),
}
FIELDS = tuple(PRIORS)


@dataclass(frozen=True)
class FieldModel:
    """What the levels are worth: m per compared field (its keys: the fields compared), points a bit, the cap."""

    m: dict[str, Prior]
    points_per_bit: float = POINTS_PER_BIT
    max_bits: float = MAX_BITS

    def __hash__(self) -> int:  # frozen with a dict inside: hashed by identity, never used as a key
        return id(self)


DEFAULT_MODEL = FieldModel(dict(PRIORS))
LEVEL_CODES = {DIFFERENT: 0, CLOSE: 1, EXACT: 2}  # the codes of levels(); -1: missing on either record


def _arrow(values: pd.Series | None, n: int) -> pa.Array | None:
    """A column as an Arrow string array, or None when it is missing or empty throughout (no work for it)."""
    if values is None or not values.notna().any():
        return None
    return pa.array(values.astype(object).where(values.notna(), None).to_numpy(dtype=object), pa.string(), from_pandas=True)


def _digits(values: pa.Array | None, at_least: int) -> pa.Array | None:
    if values is None:
        return None
    digits = pc.replace_substring_regex(values, r"\D", "")
    return pc.if_else(pc.greater_equal(pc.utf8_length(digits), at_least), digits, pa.scalar(None, pa.string()))


def _object(values: pa.Array | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, None, dtype=object)
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values).to_numpy(zero_copy_only=False).astype(object)


def normalise_fields(records: pd.DataFrame) -> pd.DataFrame:
    """The optional fields of client records, normalised for comparison (None where missing or unusable).

    tax_id and phone: digits only (at least 4 and 7 of them); date_of_birth: YYYY-MM-DD when it is a
    date; postal_code: upper case without spaces or hyphens; address: lower case, every run of other than
    letters and digits one space (at least 5 characters); domain: the client's e-mail domain, else its
    website's host, lower case, without scheme, ``www.``, port or path. Vectorised in Arrow; a column
    missing or empty throughout costs nothing.
    """
    n = len(records)

    def column(name: str) -> pa.Array | None:
        return _arrow(records[name] if name in records.columns else None, n)

    born = column("date_of_birth")
    if born is not None:
        text = pc.utf8_slice_codeunits(pc.utf8_trim_whitespace(born), 0, 10)
        valid = pc.fill_null(pc.match_substring_regex(text, r"^\d{4}-\d{2}-\d{2}$"), False)
        parsed = pc.strptime(
            pc.if_else(valid, text, pa.scalar(None, pa.string())), format="%Y-%m-%d", unit="s", error_is_null=True
        )
        born = pc.strftime(parsed, format="%Y-%m-%d")
    postcode = column("postal_code")
    if postcode is not None:
        postcode = pc.replace_substring_regex(pc.utf8_upper(postcode), r"[\s\-]", "")
    address = column("address")
    if address is not None:
        address = pc.utf8_trim(pc.replace_substring_regex(pc.utf8_lower(address), r"[^a-z0-9]+", " "), " ")
        address = pc.if_else(
            pc.greater_equal(pc.utf8_length(address), MIN_ADDRESS_CHARACTERS), address, pa.scalar(None, pa.string())
        )
    email, website = _domain_of(column("email_domain")), _domain_of(column("website"))
    domain = website if email is None else email if website is None else pc.coalesce(email, website)
    return pd.DataFrame(
        {
            "tax_id": _object(_digits(column("tax_id"), MIN_ID_DIGITS), n),
            "date_of_birth": _object(born, n),
            "postal_code": _object(postcode, n),
            "domain": _object(domain, n),
            "phone": _object(_digits(column("phone"), MIN_PHONE_DIGITS), n),
            "address": _object(address, n),
        },
        index=records.index,
    )


def _domain_of(values: pa.Array | None) -> pa.Array | None:
    if values is None:
        return None
    host = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    for pattern in (r"^[a-z][a-z0-9+.\-]*://", r"^.*@", r"[/?#:].*$", r"^www\."):
        host = pc.replace_substring_regex(host, pattern, "")
    host = pc.utf8_trim(host, ".")
    usable = pc.and_(pc.match_substring(host, "."), pc.greater(pc.utf8_length(host), 3))
    return pc.if_else(pc.fill_null(usable, False), host, pa.scalar(None, pa.string()))


def _close(field: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per pair of different normalised values of ``field``: whether they are close (see the module docstring)."""
    if not len(left):
        return np.zeros(0, dtype=bool)
    close = cpdist(left, right, scorer=OSA.distance, workers=-1) == 1
    if field == "date_of_birth":
        da, db = left.astype("datetime64[D]"), right.astype("datetime64[D]")
        near = np.abs((da - db).astype(np.int64)) <= DATE_CLOSE_DAYS
        # "YYYY-" + DD + "-MM": the left date with day and month swapped
        swapped = np.char.add(np.char.add(_part(left, 0, 5), _part(left, 8, 10)), _part(left, 4, 7)) == right.astype(str)
        close |= near | swapped
    elif field == "postal_code":
        la, lb = pa.array(left, pa.string()), pa.array(right, pa.string())
        long_enough = (pc.utf8_length(la).to_numpy() > POSTCODE_PREFIX) & (pc.utf8_length(lb).to_numpy() > POSTCODE_PREFIX)
        prefix = pc.equal(pc.utf8_slice_codeunits(la, 0, POSTCODE_PREFIX), pc.utf8_slice_codeunits(lb, 0, POSTCODE_PREFIX))
        close |= long_enough & prefix.to_numpy(zero_copy_only=False)
    elif field == "address":
        # retyped: the same words give or take one ("12 high street" / "12 high street suite 4") or nearly the
        # same letters once spaces are ignored ("goodwinstreet" / "goodwin street")
        # (the cutoff lets rapidfuzz stop early on the many pairs far apart; the second pass only for the rest)
        close |= cpdist(left, right, scorer=fuzz.token_set_ratio, score_cutoff=ADDRESS_CLOSE_SIMILARITY, workers=-1) > 0
        rest = np.flatnonzero(~close)
        if len(rest):
            bare_l = pc.replace_substring(pa.array(left[rest], pa.string()), " ", "").to_numpy(zero_copy_only=False)
            bare_r = pc.replace_substring(pa.array(right[rest], pa.string()), " ", "").to_numpy(zero_copy_only=False)
            similar = cpdist(
                bare_l.astype(object), bare_r.astype(object), scorer=fuzz.ratio, score_cutoff=ADDRESS_CLOSE_SIMILARITY, workers=-1
            )
            close[rest] = similar > 0
    elif field == "phone":
        la, lb = pa.array(left, pa.string()), pa.array(right, pa.string())
        tail = pc.equal(pc.utf8_slice_codeunits(la, -PHONE_TAIL), pc.utf8_slice_codeunits(lb, -PHONE_TAIL))
        close |= tail.to_numpy(zero_copy_only=False)
    return close


def _part(dates: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Characters start:stop of YYYY-MM-DD texts, as a numpy string array."""
    return pc.utf8_slice_codeunits(pa.array(dates, pa.string()), start, stop).to_numpy(zero_copy_only=False).astype(str)


@dataclass(frozen=True)
class FieldEvidence:
    """The normalised optional fields of the records (positions line up with the record frame) and their weights."""

    values: pd.DataFrame  # one column per field of FIELDS (object; None where missing)
    model: FieldModel = DEFAULT_MODEL

    @cached_property
    def present(self) -> tuple[str, ...]:
        """The fields some record has and the model compares: the others are never compared."""
        return tuple(f for f in FIELDS if f in self.model.m and f in self.values.columns and self.values[f].notna().any())

    def with_model(
        self, model: FieldModel, u: Mapping[str, dict[str, float]] | None = None, having: Mapping[str, int] | None = None
    ) -> FieldEvidence:
        """The same records under another model (estimated m): the codes, shares and u, which depend on the
        records only, are carried over rather than measured again (u costs 200,000 comparisons a field).

        ``u`` and ``having`` (records having each field): a reused model's own statistics, measured when it was
        estimated. Given, they replace the book's: an exact agreement's share is its value's records over
        ``having``. A pair's points then depend on the pair and the model alone, not on records elsewhere in
        the book, which is what lets a run re-score only the pairs its changes touch (``incremental.py``).
        """
        out = FieldEvidence(self.values, model)
        if set(model.m) == set(self.model.m):
            for name in ("present", "codes", "share", "u"):
                if name in self.__dict__:
                    out.__dict__[name] = self.__dict__[name]
        if u is not None:
            out.__dict__["u"] = {f: dict(u[f]) for f in out.present}
        if having is not None:
            out.__dict__["denominator"] = {f: max(int(having[f]), 1) for f in out.present}
            out.__dict__.pop("share", None)
        return out

    @cached_property
    def denominator(self) -> dict[str, int]:
        """Per field, what an exact value's records are divided by for its share: the records having the field."""
        return {f: max(int((self.codes[f] >= 0).sum()), 1) for f in self.present}

    @cached_property
    def value_counts(self) -> dict[str, np.ndarray]:
        """Per record, how many records hold its value of the field (NaN where missing)."""
        out = {}
        for f in self.present:
            codes = self.codes[f]
            counts = np.bincount(codes[codes >= 0])
            held = np.full(len(codes), np.nan)
            held[codes >= 0] = counts[codes[codes >= 0]]
            out[f] = held
        return out

    @cached_property
    def records_with_field(self) -> dict[str, int]:
        return {f: int((self.codes[f] >= 0).sum()) for f in self.present}

    @cached_property
    def codes(self) -> dict[str, np.ndarray]:
        return {f: pd.factorize(self.values[f].to_numpy(dtype=object), use_na_sentinel=True)[0] for f in self.present}

    @cached_property
    def share(self) -> dict[str, np.ndarray]:
        """Per record, the share of the records having the field that hold its value (NaN where missing): u of an exact agreement."""
        return {f: self.value_counts[f] / self.denominator[f] for f in self.present}

    @cached_property
    def u(self) -> dict[str, dict[str, float]]:
        """Per field, u of each level for random pairs (exact: the sum of squared value shares)."""
        out = {}
        rng = np.random.default_rng(0)
        for f in self.present:
            codes = self.codes[f]
            having = np.flatnonzero(codes >= 0)
            counts = np.bincount(codes[having])
            u_exact = float(((counts / counts.sum()) ** 2).sum())
            u_close = 0.0
            if len(having) >= 2:
                i = rng.choice(having, U_SAMPLE_PAIRS)
                j = rng.choice(having, U_SAMPLE_PAIRS)
                differ = codes[i] != codes[j]
                values = self.values[f].to_numpy(dtype=object)
                close = _close(f, values[i[differ]], values[j[differ]])
                u_close = max(float(close.sum()), 1.0) / U_SAMPLE_PAIRS
            out[f] = {EXACT: u_exact, CLOSE: u_close, DIFFERENT: max(1.0 - u_exact - u_close, 1e-6)}
        return out

    def levels(self, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
        """Per field compared: the level code of each pair (``LEVEL_CODES``: 2 exact, 1 close, 0 different, -1 missing)."""
        out = {}
        for f in self.present:
            codes = self.codes[f]
            left, right = codes[a], codes[b]
            known = (left >= 0) & (right >= 0)
            same = known & (left == right)
            level = (np.where(known, 0, -1) + same * 2).astype(np.int8)  # close set below
            other = np.flatnonzero(known & ~same)
            if len(other):
                values = self.values[f].to_numpy(dtype=object)
                level[other[_close(f, values[a[other]], values[b[other]])]] = 1
            out[f] = level
        return out

    def compare(
        self, a: np.ndarray, b: np.ndarray, levels: dict[str, np.ndarray] | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per field of FIELDS: (level per pair: exact/close/different or None, points per pair or NaN).
        ``levels``: those of ``levels(a, b)`` when already computed (the estimation needs them first)."""
        levels = self.levels(a, b) if levels is None else levels
        model, out = self.model, {}
        for f in FIELDS:
            if f not in self.present:
                out[f] = (np.full(len(a), None, dtype=object), np.full(len(a), np.nan))
                continue
            level, prior, u = levels[f], model.m[f], self.u[f]
            bits = np.full(len(a), np.nan)
            exact = level == 2
            with np.errstate(divide="ignore"):
                bits[exact] = np.minimum(np.log2(prior.exact / self.share[f][a[exact]]), model.max_bits)
            bits[level == 1] = min(np.log2(prior.close / u[CLOSE]), model.max_bits)
            bits[level == 0] = min(np.log2(prior.different / u[DIFFERENT]), model.max_bits)
            out[f] = (LEVELS[level.astype(np.int64) + 1], np.round(bits * model.points_per_bit, 2))
        return out
