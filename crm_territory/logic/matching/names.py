"""Organisation names in the form the matcher compares: "ATLAS CAPITAL PTNRS., L.L.C." -> "atlas capital partners".

Steps, in order: accents folded (NFKD, combining marks dropped, ø/ß/æ spelled out), lower case,
"&" read as "and", apostrophes and dots dropped (so "L.L.C." is "llc" and "Int'l" is "intl"), every
other punctuation mark a space, common abbreviations spelled out ("Ptnrs" -> "partners", "Co" ->
"company"), a leading "the" and trailing legal forms (Inc, LLC, Ltd, Corp, ...) removed.

Some names cannot be matched safely: a fuzzy score between two empty strings, two one-letter names
or two names in a script these rules do not know (Chinese, Cyrillic, ...) says nothing, and a very
long name is usually a note pasted into the name field. Such records get a reason in
``unmatchable`` and stay on their own unless a human decision links them.

Speed: a book of a million names is normalised in about a second. Unicode folding runs only on the
names that are not plain ASCII; the rest is one byte-table pass over Arrow's contiguous text buffer
and word-level lookups on the flattened words, with no Python loop per name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import OSA
from rapidfuzz.process import cdist

# Letters NFKD does not decompose into an ASCII base letter.
_LATIN_LETTERS = {"ø": "o", "ß": "ss", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}

# Abbreviation (or variant spelling) -> the word; whole words only.
ABBREVIATIONS: dict[str, str] = {
    "ptnrs": "partners", "ptnr": "partners", "prtnrs": "partners", "partner": "partners",
    "mgmt": "management", "mgt": "management", "mngmt": "management",
    "assoc": "associates", "assocs": "associates", "associate": "associates",
    "advisers": "advisors", "adviser": "advisors", "advisor": "advisors", "advs": "advisors",
    "grp": "group", "hldgs": "holdings", "hldg": "holdings", "holding": "holdings",
    "intl": "international", "natl": "national", "finl": "financial",
    "svcs": "services", "svc": "services", "invt": "investment", "invts": "investments",
    "mgrs": "managers", "fdn": "foundation", "fndn": "foundation", "bros": "brothers",
    "ctr": "center", "centre": "center", "co": "company", "cos": "companies",
}  # fmt: skip

# Legal forms carry no identity: "Atlas Capital" and "Atlas Capital, LLC" are one organisation.
# Dropped at the end of a name only ("Company" inside "Company Bank of X" is part of the name), and so
# is a misspelt long one ("Compnay", "Limted"): left in, a typo would read as an extra word.
LEGAL_FORMS = (
    "inc", "incorporated", "llc", "llp", "lllp", "lp", "ltd", "limited", "corp", "corporation", "company", "companies", "plc", "pllc", "pc", "gmbh", "ag", "sa", "nv", "bv", "srl", "pty", "sarl", "lda",
)  # fmt: skip
# "and" joins two names; at the end it is what is left of "& Inc." once the legal form is gone
_TRAILING_NOISE = (*LEGAL_FORMS, "and", "")

MIN_NAME_CHARACTERS = 2  # letters and digits left after normalisation; fewer cannot be told apart
MAX_NAME_CHARACTERS = 200  # longer names are notes pasted into the name field

EMPTY_NAME = "empty name"
TOO_LONG = f"name longer than {MAX_NAME_CHARACTERS} characters"
NOT_LATIN = "name in a script the matcher does not compare (not Latin letters)"
TOO_SHORT = f"fewer than {MIN_NAME_CHARACTERS} letters or digits once punctuation and legal forms are removed"


@dataclass(frozen=True)
class NormalisedNames:
    """Per input row: the normalised name, or why the name cannot be matched."""

    name: pd.Series  # "atlas capital partners"; None where unmatchable
    unmatchable: pd.Series  # the reason, None where the name can be matched

    @property
    def first_word(self) -> pd.Series:
        """ "atlas"; None where unmatchable."""
        first, _ = split_first_word(self.name)
        return _series(first, self.name)

    @property
    def other_words(self) -> pd.Series:
        """ "capital partners" ("" for a one-word name); None where unmatchable."""
        _, rest = split_first_word(self.name)
        return _series(rest, self.name)


def split_first_word(names: pd.Series) -> tuple[pa.Array, pa.Array]:
    """The first word and the other words of normalised names, as Arrow arrays (missing stays missing)."""
    text = pa.array(names.to_numpy(dtype=object), pa.string(), from_pandas=True)
    halves = pc.split_pattern(text, " ", max_splits=1)  # "" splits into [""]
    first = pc.list_element(halves, 0) if len(text) else text
    return first, pc.binary_join(pc.list_slice(halves, 1), " ")


def _series(values: pa.Array, like: pd.Series) -> pd.Series:
    out = values.to_numpy(zero_copy_only=False).astype(object)
    out[like.isna().to_numpy()] = None
    return pd.Series(out, index=like.index, dtype=object)


def normalise_names(names: pd.Series) -> NormalisedNames:
    """Normalise a column of organisation names (see the module docstring); the index is kept."""
    text = pa.array(names.to_numpy(dtype=object), type=pa.string(), from_pandas=True).fill_null("")
    length = pc.utf8_length(pc.utf8_trim_whitespace(text)).to_numpy(zero_copy_only=False)

    text = _fold_to_ascii(text)
    latin = pc.string_is_ascii(text).to_numpy(zero_copy_only=False)
    text = pc.if_else(latin, text, "")  # unmatchable anyway; keeps the byte pass ASCII-only
    text = pc.replace_substring(text, "&", " and ")
    text = _lower_and_strip_punctuation(text)
    words = _canonical_words(pc.split_pattern(text, " "))

    name = pc.binary_join(words, " ")
    letters = pc.utf8_length(pc.replace_substring(name, " ", "")).to_numpy(zero_copy_only=False)
    reason = np.full(len(names), None, dtype=object)
    # the first reason that applies is the one reported
    for flagged, why in [
        (length == 0, EMPTY_NAME),
        (length > MAX_NAME_CHARACTERS, TOO_LONG),
        (~latin, NOT_LATIN),
        (letters < MIN_NAME_CHARACTERS, TOO_SHORT),
    ]:
        reason[flagged & (reason == None)] = why  # noqa: E711
    matchable = reason == None  # noqa: E711

    def column(values: pa.Array) -> pd.Series:
        out = values.to_numpy(zero_copy_only=False).astype(object)
        out[~matchable] = None
        return pd.Series(out, index=names.index, dtype=object)

    return NormalisedNames(name=column(name), unmatchable=pd.Series(reason, index=names.index, dtype=object))


def _fold_to_ascii(text: pa.Array) -> pa.Array:
    """Accents off ("Café" -> "Cafe", "Ørsted" -> "Orsted"); only the non-ASCII names pay for Unicode work."""
    ascii_ = pc.string_is_ascii(text)
    if pc.all(ascii_).as_py() is not False:
        return text
    others = pc.filter(text, pc.invert(ascii_))
    others = pc.replace_substring_regex(others, "[™®℠©]", " ")  # NFKD would spell ™ as "TM" and glue it to the word
    others = pc.replace_substring_regex(pc.utf8_normalize(others, "NFKD"), r"\p{Mn}+", "")
    others = pc.utf8_lower(others)
    for letter, spelled in _LATIN_LETTERS.items():
        others = pc.replace_substring(others, letter, spelled)
    # typographic punctuation (’ – “) becomes its ASCII role; anything still non-ASCII is another script
    others = pc.replace_substring_regex(others, r"[’‘`]", "'")
    others = pc.replace_substring_regex(others, r"[^\p{L}\p{N}'.&\s]", " ")
    return pc.replace_with_mask(text, pc.invert(ascii_), others)


# Byte -> byte over ASCII text: upper case to lower, letters and digits kept, dots and apostrophes
# deleted (0), everything else a space.
_BYTE_TABLE = np.full(256, ord(" "), dtype=np.uint8)
for _c in b"abcdefghijklmnopqrstuvwxyz0123456789":
    _BYTE_TABLE[_c] = _c
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _BYTE_TABLE[_c] = _c + 32
for _c in b".'`":
    _BYTE_TABLE[_c] = 0
_SPACE = ord(" ")


def _lower_and_strip_punctuation(text: pa.Array) -> pa.Array:
    """One table lookup over the whole text buffer, then dropped bytes and repeated spaces compressed away."""
    text = pa.concat_arrays([text]) if text.offset else text  # own buffers, offset 0
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[: len(text) + 1].astype(np.int64)
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[: offsets[-1]] if offsets[-1] else np.zeros(0, np.uint8)
    data = _BYTE_TABLE[data]
    data, offsets = _compress(data, offsets, data != 0)
    starts = offsets[:-1][offsets[:-1] < len(data)]
    previous_is_space = np.empty(len(data), dtype=bool)
    previous_is_space[1:] = data[:-1] == _SPACE
    previous_is_space[starts] = True  # a leading space goes too
    data, offsets = _compress(data, offsets, ~((data == _SPACE) & previous_is_space))
    out = pa.StringArray.from_buffers(len(text), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))
    return pc.ascii_rtrim(out, " ")


def _compress(data: np.ndarray, offsets: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return data[keep], kept_before[offsets]


_LONG_LEGAL_FORMS = [form for form in LEGAL_FORMS if len(form) >= 6]


def _misspelt_legal_form(words: pa.Array) -> np.ndarray:
    """Words one edit (a letter wrong, missing, added, or two swapped) from a legal form of 6+ letters."""
    found = np.zeros(len(words), dtype=bool)
    length = pc.utf8_length(words).to_numpy(zero_copy_only=False)
    candidates = np.flatnonzero(length >= 5)
    if len(candidates):
        distance = cdist(
            pc.take(words, candidates).to_numpy(zero_copy_only=False), _LONG_LEGAL_FORMS, scorer=OSA.distance, workers=-1
        )
        found[candidates] = distance.min(axis=1) == 1
    return found


def _canonical_words(words: pa.ListArray) -> pa.ListArray:
    """Abbreviations spelled out, a leading "the" and trailing legal forms dropped, per name."""
    values = words.flatten()
    found = pc.index_in(values, value_set=pa.array(list(ABBREVIATIONS)))
    values = pc.if_else(pc.is_null(found), values, pc.take(pa.array(list(ABBREVIATIONS.values())), found))
    offsets = words.offsets.to_numpy().astype(np.int64)
    n_words = np.diff(offsets)
    owner = np.repeat(np.arange(len(words)), n_words)
    position = np.arange(len(values)) - offsets[owner]
    # trailing noise: drop every word after the name's last word that is not noise
    noise = pc.is_in(values, value_set=pa.array(_TRAILING_NOISE)).to_numpy(zero_copy_only=False)
    last = offsets[1:][n_words > 0] - 1  # a misspelt legal form is only looked for as the last word
    noise[last] |= _misspelt_legal_form(pc.take(values, pa.array(last)))
    last_real = np.maximum.accumulate(np.where(noise, -1, np.arange(len(values)))) if len(values) else values
    last_real_in_name = last_real[offsets[1:] - 1][owner] if len(values) else np.zeros(0, np.int64)
    keep = np.arange(len(values)) <= last_real_in_name
    the = pc.equal(values, "the").to_numpy(zero_copy_only=False)
    keep &= ~(the & (position == 0) & (n_words[owner] > 1))
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return pa.ListArray.from_arrays(pa.array(kept_before[offsets].astype(np.int32)), pc.filter(values, pa.array(keep)))
