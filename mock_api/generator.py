"""Deterministic, realistically messy synthetic client book, with planted duplicates and their truth.

The mock CRM has to look like a real one from the engine's point of view:
regions and segments typed by hand in a dozen spellings, advisor e-mails in
mixed case or plain wrong, organisations without a name, half-filled parent
organisations. The exact variant spellings are part of the contract: the
engine's alias tables are written against them, so change them together.

Real books also hold the same organisation more than once: keyed in twice
under a new id, or arriving again through a CSV drop, each time spelled a
little differently ("VELTARO CAPITAL PTNRS., L.L.C."). Entity resolution has
to merge those and only those, so the book plants them on purpose and says
which records belong together (``client_entities``, the ``entity_id`` column
of ``generate_drop``, ``labelled_book``): a matcher can be scored for
precision and recall instead of eyeballed. For that truth to mean anything,
distinct organisations get distinct names (a pseudo-word brand, a kind and a
form word, unique per organisation by construction), while sibling companies
of one brand ("Veltaro Capital Partners", "Veltaro Wealth Group") share a
parent and stay apart: they are the hard negatives a real book is full of.

Everything is drawn with numpy in whole-column operations (no per-row Python
loop over the book) so a 1,000,000-row book for benchmarks takes seconds.
Each column draws from its own child stream of one ``SeedSequence``, so the
book depends only on ``(n, seed)`` and adding a column later does not reshuffle
the others. The organisations themselves (names, siblings, parents) are a pure
function of ``(seed, organisation number)`` computed by hashing, not by a
stream, so a drop can name organisations that sit in an API book of any size
without generating their names in the same order. Timestamps are anchored to a
fixed instant, not to "now", so the book is byte-for-byte the same on every
day it is generated.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from math import gcd, prod
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ADVISOR_DOMAIN",
    "ADVISOR_EMAILS",
    "API_DUPLICATE_RATE",
    "BOOK_END",
    "CLIENT_COLUMNS",
    "DROP_COLUMNS",
    "DROP_DUPLICATE_RATE",
    "FIRST_CLIENT_ID",
    "REGION_SPELLINGS",
    "SEGMENT_SPELLINGS",
    "UNKNOWN_REGIONS",
    "UNKNOWN_SEGMENTS",
    "BUSINESS_TYPES",
    "LabelledBook",
    "client_entities",
    "generate_advisors",
    "generate_clients",
    "generate_drop",
    "labelled_book",
    "write_drop_csv",
]

#: Column order of the API records (and of ``generate_clients``' frame).
CLIENT_COLUMNS: tuple[str, ...] = (
    "client_id",
    "client_name",
    "region",
    "segment",
    "parent_org",
    "advisor_email",
    "status",
    "updated_at",
    "aum_usd",
    "business_type",
)

#: Column order of the CSV-drop layout that ``write_drop_csv`` produces.
DROP_COLUMNS: tuple[str, ...] = (
    "client_id",
    "client_name",
    "region",
    "segment",
    "parent_org",
    "advisor_email",
)

#: First id handed out. Six digits starting at 100001 so API ids can never be
#: mistaken for the small ids used in hand-made CSV drops.
FIRST_CLIENT_ID = 100_001

#: ``updated_at`` values lie in the 365 days before this instant (exclusive).
#: Fixed rather than "now" so the book does not drift from day to day.
BOOK_END = np.datetime64("2026-11-01T00:00:00", "s")
_BOOK_SPAN_SECONDS = 365 * 24 * 3600

# --- regions --------------------------------------------------------------
# canonical -> (spelling, relative weight). The canonical spelling dominates;
# the rest are the hand-typed variants the engine's alias table must map.
_REGION_TABLE: dict[str, tuple[tuple[str, float], ...]] = {
    "Northeast": (
        ("Northeast", 0.70),
        ("north east", 0.08),
        ("NE", 0.08),
        ("NORTHEAST", 0.06),
        (" Northeast ", 0.04),
        ("N.E.", 0.04),
    ),
    "Southeast": (("Southeast", 0.80), ("south east", 0.10), ("SE", 0.10)),
    "Midwest": (("Midwest", 0.75), ("mid west", 0.09), ("MW", 0.08), ("MIDWEST", 0.08)),
    "Southwest": (("Southwest", 0.80), ("south-west", 0.10), ("SW", 0.10)),
    "West": (("West", 0.80), ("west", 0.12), ("W", 0.08)),
    "Northwest": (("Northwest", 0.80), ("north west", 0.10), ("NW", 0.10)),
}
# How the book is spread over the canonical regions (sums to 1).
_REGION_SHARE = np.array([0.22, 0.18, 0.17, 0.14, 0.17, 0.12])
#: Values that map to no region at all ("" = left blank in the CRM).
UNKNOWN_REGIONS: tuple[str, ...] = ("Pacific Rim", "")
_UNKNOWN_REGION_RATE = 0.005

#: canonical region -> every spelling the generator may emit for it.
REGION_SPELLINGS: dict[str, tuple[str, ...]] = {canon: tuple(s for s, _ in variants) for canon, variants in _REGION_TABLE.items()}

# --- segments -------------------------------------------------------------
_SEGMENT_TABLE: dict[str, tuple[tuple[str, float], ...]] = {
    "Institutional": (
        ("Institutional", 0.70),
        ("institutional", 0.10),
        ("INST", 0.10),
        ("Inst.", 0.10),
    ),
    "Retail": (("Retail", 0.80), ("retail", 0.10), ("RET", 0.10)),
    "Private Wealth": (
        ("Private Wealth", 0.70),
        ("private-wealth", 0.10),
        ("PW", 0.10),
        ("HNW", 0.10),
    ),
}
_SEGMENT_SHARE = np.array([0.20, 0.50, 0.30])
UNKNOWN_SEGMENTS: tuple[str, ...] = ("Other",)
_UNKNOWN_SEGMENT_RATE = 0.005

#: canonical segment -> every spelling the generator may emit for it.
SEGMENT_SPELLINGS: dict[str, tuple[str, ...]] = {
    canon: tuple(s for s, _ in variants) for canon, variants in _SEGMENT_TABLE.items()
}

# --- organisation names ---------------------------------------------------
# name = [The ]<brand> <kind> <form><legal suffix>, e.g. "Veltaro Wealth Management LLC".
#
# Brands are pseudo-words: onset, vowel, medial, ending ("V|e|lt|aro",
# "Br|i|sk|en", "|Oa|km|ere"). Onsets and medials hold only consonants, the
# vowel slot only vowels, and every ending starts with a vowel, so a brand
# splits back into its slots in exactly one way (leading consonants, the vowel
# run, the consonant run, the rest): distinct slot choices give distinct
# words, which is what makes names unique by construction rather than by luck.
_BRAND_ONSETS = (
    "", "B", "Bl", "Br", "C", "Ch", "Cl", "Cr", "D", "Dr", "F", "Fl", "Fr",
    "G", "Gl", "Gr", "H", "J", "K", "Kl", "Kr", "L", "M", "N", "P", "Ph",
    "Pl", "Pr", "R", "S", "Sc", "Sh", "Sk", "Sl", "Sp", "St", "Sw", "T", "Th",
    "Tr", "Tw", "V", "W", "Wh", "Z",
)  # fmt: skip
_BRAND_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "oa")
_BRAND_MEDIALS = (
    "b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v",
    "z", "ck", "dg", "km", "ld", "lf", "lk", "ll", "lm", "lt", "lv", "mb",
    "mp", "nc", "nd", "ng", "nk", "nn", "ns", "nt", "nv", "rb", "rc", "rd",
    "rg", "rk", "rl", "rm", "rn", "rr", "rs", "rt", "rv", "sb", "sk", "sp",
    "ss", "st", "th", "tt",
)  # fmt: skip
_BRAND_ENDINGS = (
    "a", "o", "i", "an", "ar", "as", "el", "en", "er", "es", "et", "ex", "in",
    "is", "ix", "on", "or", "os", "ot", "ox", "um", "un", "us", "ara", "aro",
    "ari", "ano", "ani", "ala", "alo", "ami", "ata", "ato", "ava", "avo",
    "ada", "ado", "ena", "eno", "era", "ero", "eri", "eta", "eto", "ela",
    "elo", "ema", "emo", "ina", "ino", "ira", "iro", "ita", "ito", "ida",
    "ido", "ola", "olo", "ora", "oro", "ova", "uro", "ula", "ulo", "ard",
    "art", "arn", "ane", "ale", "ame", "ate", "ave", "ere", "ene", "ele",
    "ine", "ire", "ite", "ole", "one", "ore", "ose", "ure", "une", "ume",
    "ett", "ell", "ens", "ers", "ern", "ent", "end", "ond", "ort", "orn",
    "ick", "ock", "ack", "eck", "ax", "ian", "ien", "ion", "ia", "io", "eo",
    "ey", "aine", "eau", "elle", "ette", "enne", "ance", "ence", "ante",
    "ento", "essa", "ington",
)  # fmt: skip
_BRAND_RADICES = (len(_BRAND_ONSETS), len(_BRAND_VOWELS), len(_BRAND_MEDIALS), len(_BRAND_ENDINGS))
#: How many distinct brands there are (each names one group of sibling organisations).
_BRAND_SPACE = prod(_BRAND_RADICES)
# The stems of the old 4,000-name vocabulary. The seed sample in data/landing
# uses three of them ("Atlas Capital Partners"), and a planted duplicate must
# never match it by accident, so none of these may come out as a brand.
_RETIRED_STEMS = (
    "Atlas", "Beacon", "Summit", "Harbor", "Meridian", "Pinnacle", "Cedar",
    "Granite", "Northstar", "Keystone", "Lighthouse", "Bluewater", "Ironwood",
    "Silverline", "Crescent", "Sterling", "Oakridge", "Riverbend", "Westfield",
    "Highland", "Liberty", "Horizon", "Cornerstone", "Redwood", "Clearwater",
    "Fairview", "Ashford", "Whitmore", "Hawthorne", "Lakeshore", "Stonebridge",
    "Copperleaf", "Bayview", "Juniper", "Windrose", "Falcon", "Alder",
    "Marlowe", "Kingsley", "Thornbury",
)  # fmt: skip
# The old vocabulary's (stems, names per stem): its draws are still made, see _draw_rows.
_RETIRED_VOCABULARY = (len(_RETIRED_STEMS), 10 * 10 * 7)
# Appended to a brand that would spell a retired stem ("Cedar" -> "Cedarix"):
# no ending is another ending plus "ix", so the result is still no other brand.
_RETIRED_FIX = "ix"
# ~2% of brands carry an accent on their first vowel ("Élan", "Müller"-style):
# the duplicates' "accents stripped" variation needs something to strip.
_ACCENT_RATE = 0.02
_ACCENTED = {"a": "ä", "e": "é", "i": "í", "o": "ö", "u": "ü", "A": "Ä", "E": "É", "I": "Í", "O": "Ö", "U": "Ü"}

_NAME_KINDS = (
    "Capital", "Wealth", "Asset", "Investment", "Financial", "Trust",
    "Advisory", "Family", "Equity", "Fiduciary", "International", "Private",
)  # fmt: skip
_NAME_FORMS = (
    "Partners", "Management", "Group", "Advisors", "Holdings", "Associates",
    "Company", "Strategies", "Office", "Counsel", "Services",
)  # fmt: skip
_COMBOS = len(_NAME_KINDS) * len(_NAME_FORMS)
# Siblings walk the (kind, form) combinations with a stride coprime to their
# number, so the up to six siblings of a brand never repeat a combination.
_COMBO_STRIDES = np.array([s for s in range(1, _COMBOS) if gcd(s, _COMBOS) == 1], dtype=np.int64)
# Organisations per brand: most brands are shared by 2-6 siblings (the hard
# negatives), the rest stand alone.
_SIBLING_SHARE = np.array([0.40, 0.25, 0.15, 0.10, 0.06, 0.04])
_MAX_SIBLINGS = len(_SIBLING_SHARE)
# ~3% of organisations are named after two brands ("Veltaro & Brisken ..."),
# most with "&", some spelled out.
_TWO_BRAND_RATE = 0.03
_TWO_BRAND_AND_SHARE = 0.20
_THE_RATE = 0.03
# Blank suffix dominant so most names carry no legal form, as in real books.
_LEGAL_SUFFIXES = ("", " LLC", " Inc.", " LP", " Ltd")
_LEGAL_SUFFIX_SHARE = np.array([0.57, 0.20, 0.11, 0.05, 0.07])
_MISSING_NAME_RATE = 0.005

# Parent organisations hang off the brand ("Veltaro Capital Partners" ->
# "Veltaro Holdings"), one per brand, so siblings share their parent the way
# subsidiaries of one group do.
_PARENT_FORMS = ("Holdings", "Financial Group", "Capital Group", "Global", "Bancorp")
_MISSING_PARENT_RATE = 0.25

# Organisations are numbered per "lane": the API book's from 0 up, and the new
# organisations of CSV drops in a second lane. Lanes take alternate brands, so
# a drop's new organisations can never be named like an API book's.
_API_LANE, _DROP_LANE = 0, 1
_LANES = 2
#: Entity ids of a drop's new organisations start here ("E10000000"), far
#: above any API book's (a lane cannot name even 3 million organisations).
_DROP_ENTITY_BASE = 10_000_000
# Roughly how many organisations one lane can name (its brands times the mean siblings per brand): ~2.6 million.
_LANE_CAPACITY = int(_BRAND_SPACE // _LANES * (_SIBLING_SHARE * np.arange(1, len(_SIBLING_SHARE) + 1)).sum())

# --- planted duplicates -----------------------------------------------------
#: Share of the API book's rows that re-enter an organisation already in it.
API_DUPLICATE_RATE = 0.04
#: Share of a drop's rows that repeat an organisation already in the same drop.
DROP_DUPLICATE_RATE = 0.02
# How many name variations a duplicate gets (1, 2 or 3).
_VARIATION_COUNT_SHARE = np.array([0.50, 0.33, 0.17])
_TYPO_RATE = 0.20
# The other name variations and their relative weight when drawn. Variations
# that only apply to some names ("&" <-> "and", accents) weigh more so that
# the few names they can apply to do show them.
_CASE, _SUFFIX, _ABBREVIATION, _AMPERSAND, _ACCENT, _PUNCTUATION, _THE = range(7)
_VARIATION_WEIGHTS = np.array([1.0, 1.3, 1.0, 4.0, 4.0, 0.9, 0.5])
# Canonical legal suffix -> how a second record respells it.
_SUFFIX_RESPELLINGS = {
    " LLC": (", LLC", " L.L.C."),
    " Inc.": (" Inc", ", Inc.", " Incorporated"),
    " Ltd": (" Limited", " Ltd."),
    " LP": (" L.P.", ", LP"),
}
_SUFFIX_ADDED = (
    " LLC", ", LLC", " L.L.C.", " Inc", ", Inc.", " Incorporated", " Ltd",
    " Limited", " Corp", " Corporation", " Co.",
)  # fmt: skip
_SUFFIX_REMOVED_SHARE = 0.4
_ABBREVIATIONS = {
    "Partners": ("Ptnrs.", "Ptnrs"),
    "Management": ("Mgmt", "Mgmt."),
    "Associates": ("Assoc.", "Assocs."),
    "Advisors": ("Advisers",),
    "Group": ("Grp", "Grp."),
    "Holdings": ("Hldgs", "Hldgs."),
    "Company": ("Co.", "Co"),
    "International": ("Intl", "Int'l"),
    "Financial": ("Finl", "Fin'l"),
    # spellings a matcher's abbreviation table may not know: the benchmark must not only test what it was tuned on
    "Investment": ("Invest.", "Inv."),
    "Strategies": ("Strat.",),
    "Counsel": ("Cnsl.",),
}
# A typo goes into a word of at least this many letters: short words are
# rarely mistyped, and a typo in one would leave too little of it to match.
_TYPO_MIN_LETTERS = 5

# Non-name fields of a duplicate: shares of duplicates that show each change.
_DUP_REGION_MISSING = 0.05
_DUP_REGION_RESPELLED = 0.30
_DUP_SEGMENT_RESPELLED = 0.20
_DUP_PARENT_DROPPED = 0.30  # of the duplicates whose original has a parent
_DUP_PARENT_ADDED = 0.25  # of the duplicates whose original has none
_DUP_EMAIL_MISSING = 0.10
_DUP_EMAIL_RECASED = 0.30
_DUP_STATUS_KEPT = 0.85
_DUP_AUM_KEPT, _DUP_AUM_MISSING = 0.60, 0.10
_DUP_BUSINESS_TYPE_KEPT = 0.80
# Sources disagree on facts too: one record is stale after the client was handed to another advisor of
# its region, or filed under another region (an office move, a mistake).
_DUP_ADVISOR_REASSIGNED = 0.05
_DUP_REGION_MOVED = 0.02

# --- advisors -------------------------------------------------------------
ADVISOR_DOMAIN = "northwind-advisors.com"
_ADVISOR_FIRST = (
    "jane", "john", "maria", "david", "emily", "michael", "sarah", "james",
    "laura", "robert", "anna", "daniel",
)  # fmt: skip
_ADVISOR_LAST = (
    "doe", "smith", "garcia", "chen", "patel", "nguyen", "johnson", "kim",
    "brown", "rossi", "muller", "okafor",
)  # fmt: skip
_ADVISORS_PER_REGION = 10


def _advisor_roster() -> tuple[tuple[str, str], ...]:
    """60 fixed (first, last) pairs: the firm's roster does not depend on the seed."""
    pairs = [(first, last) for first in _ADVISOR_FIRST for last in _ADVISOR_LAST]
    picked = np.random.default_rng(20261101).choice(len(pairs), size=_ADVISORS_PER_REGION * len(_REGION_TABLE), replace=False)
    return tuple(pairs[i] for i in sorted(picked))


_ADVISORS = _advisor_roster()
#: The 60 well-formed, lower-case advisor addresses; advisor ``k`` covers
#: canonical region ``k // 10`` (in ``REGION_SPELLINGS`` order).
ADVISOR_EMAILS: tuple[str, ...] = tuple(f"{first}.{last}@{ADVISOR_DOMAIN}" for first, last in _ADVISORS)

# Forms an advisor's address is typed in, with their share of the rows that
# have an address: ~30% mixed/upper case, ~2% invalid.
_EMAIL_FORM_SHARE = np.array([0.68, 0.12, 0.18, 0.007, 0.007, 0.006])
_MISSING_EMAIL_RATE = 0.01


def _email_forms() -> np.ndarray:
    """(60, 6) table: lower, UPPER, Mixed, and three invalid spellings per advisor."""
    rows = []
    for first, last in _ADVISORS:
        lower = f"{first}.{last}@{ADVISOR_DOMAIN}"
        rows.append(
            (
                lower,
                lower.upper(),
                f"{first.title()}.{last.title()}@Northwind-Advisors.com",
                f"{first}.{last}(at){ADVISOR_DOMAIN}",
                f"{first}.{last}@",
                "not an email",
            )
        )
    return np.array(rows, dtype=object)


_EMAIL_FORMS = _email_forms()

_ACTIVE_RATE = 0.90

# --- size and kind (what segmentation rules look at) --------------------------
#: Business types and their share; a few are left blank, as CRMs do.
BUSINESS_TYPES: tuple[str, ...] = (
    "Corporation", "Family Office", "Individual", "Trust", "Foundation", "Pension Fund", "Endowment",
)  # fmt: skip
_BUSINESS_TYPE_SHARE = np.array([0.30, 0.10, 0.30, 0.12, 0.06, 0.07, 0.05])
_MISSING_BUSINESS_TYPE_RATE = 0.03
# Assets under management: log-normal around $20M, from ~$50k to tens of billions; some unknown.
_AUM_MEDIAN_USD = 20_000_000
_AUM_SIGMA = 2.0
_MISSING_AUM_RATE = 0.05


# --- random streams -------------------------------------------------------
# Child streams of SeedSequence(seed), by position. Positions only ever get
# appended, so every column keeps its draws when a new one is added.
_API_STREAMS = range(0, 10)  # name, region, segment, parent, email, status, time, unknown, aum, kind
_API_DUPLICATES = 10  # which rows are duplicates, and of what
_UNIVERSE = 11  # key of the organisations' hash (names, siblings, parents)
_API_VARIATIONS = 12  # how the API book's duplicates differ from their original
_DROP_STREAMS = range(13, 23)  # the drop's own columns, as _API_STREAMS
_DROP_ROLES = 23  # which drop rows are API organisations, repeats, or new
_DROP_VARIATIONS = 24
_N_STREAMS = 25


def _streams(seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(_N_STREAMS)]


def _universe_key(seed: int) -> int:
    return int(np.random.SeedSequence(seed).spawn(_N_STREAMS)[_UNIVERSE].generate_state(1, dtype=np.uint64)[0])


# --- organisations by hashing ---------------------------------------------
# An organisation's properties are a hash of (universe key, what, number):
# any organisation can be looked up alone, in any order, with no stream to
# replay. splitmix64's finaliser; uint64 arithmetic wraps, as it should.
_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1
_TAG_SIBLINGS, _TAG_COMBO, _TAG_STRIDE, _TAG_PARENT, _TAG_TWO_BRANDS, _TAG_PARTNER, _TAG_AND = range(1, 8)
_TAG_ACCENT, _TAG_THE, _TAG_SUFFIX, _TAG_BRAND = range(8, 12)


def _mix64(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(key: int, tag: int, x: np.ndarray) -> np.ndarray:
    salt = np.uint64((key ^ (tag * _GOLDEN)) & _MASK64)
    return _mix64(_mix64(np.asarray(x).astype(np.uint64) ^ salt) + salt)


def _unit(key: int, tag: int, x: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) per element of ``x``."""
    return (_hash(key, tag, x) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _below(key: int, tag: int, x: np.ndarray, bound: int | np.ndarray) -> np.ndarray:
    """Integer in [0, bound) per element of ``x``."""
    return (_hash(key, tag, x) % np.asarray(bound).astype(np.uint64)).astype(np.int64)


def _brand_digits(key: int, brand: np.ndarray) -> list[np.ndarray]:
    """Slot choices of each brand number: a keyed bijection of [0, _BRAND_SPACE).

    Mixed-radix digits, then Feistel-like rounds that each shift one digit by
    a hash of all the others: every step can be undone, so distinct brand
    numbers keep distinct digits, while neighbouring numbers stop looking alike.
    """
    digits, rest = [], brand.astype(np.int64)
    for radix in _BRAND_RADICES:
        digits.append(rest % radix)
        rest = rest // radix
    for rnd in range(3):
        for i, radix in enumerate(_BRAND_RADICES):
            others, scale = np.zeros_like(digits[i]), 1
            for j, other_radix in enumerate(_BRAND_RADICES):
                if j != i:
                    others += digits[j] * scale
                    scale *= other_radix
            digits[i] = (digits[i] + _below(key, _TAG_BRAND + 16 * (rnd * 8 + i + 1), others, radix)) % radix
    return digits


def _obj(values) -> np.ndarray:
    return np.array(values, dtype=object)


def _heads() -> np.ndarray:
    """(onset, vowel, accented) -> the brand's opening: "Br" + "i", or the bare vowel as the capital ("Oa", "É")."""
    heads = np.empty((len(_BRAND_ONSETS), len(_BRAND_VOWELS), 2), dtype=object)
    for i, onset in enumerate(_BRAND_ONSETS):
        for j, vowel in enumerate(_BRAND_VOWELS):
            accented = _ACCENTED[vowel[0]] + vowel[1:]
            heads[i, j] = (onset + vowel, onset + accented) if onset else (vowel.capitalize(), accented.capitalize())
    return heads


# Slot combinations as lookup tables, so that a brand costs one string
# concatenation however many slots it has.
_BRAND_HEADS = _heads()
_BRAND_TAILS = np.array([[m + e for e in _BRAND_ENDINGS] for m in _BRAND_MEDIALS], dtype=object)
_RETIRED = frozenset(_RETIRED_STEMS)


def _brands(key: int, brand: np.ndarray) -> np.ndarray:
    """Brand word of each brand number (object array of str)."""
    if len(brand) == 0:
        return np.empty(0, dtype=object)
    onset, vowel, medial, ending = _brand_digits(key, brand)
    words = _BRAND_HEADS[onset, vowel, 0] + _BRAND_TAILS[medial, ending]
    retired = np.flatnonzero(pd.Series(words, dtype=object).isin(_RETIRED).to_numpy())
    words[retired] = words[retired] + _RETIRED_FIX
    # The accent sits on the first vowel, so stripping it gives back this
    # brand's own plain word, which no other brand has.
    accented = np.flatnonzero(_unit(key, _TAG_ACCENT, brand) < _ACCENT_RATE)
    tails = _BRAND_TAILS[medial[accented], ending[accented]]
    fixed = np.isin(accented, retired)
    tails[fixed] = tails[fixed] + _RETIRED_FIX
    words[accented] = _BRAND_HEADS[onset[accented], vowel[accented], 1] + tails
    return words


def _siblings(key: int, lane: int, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(brand number, sibling position) of organisations ``k`` of ``lane``.

    A lane's organisations fill its brands in order, each brand taking its
    hashed number of siblings; lane ``l`` owns brands l, l + 2, l + 4, ...
    """
    if len(k) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    # Every brand has at least one sibling, so k.max() + 1 brands cover k.
    brand = np.arange(int(k.max()) + 1, dtype=np.int64) * _LANES + lane
    share = np.cumsum(_SIBLING_SHARE)
    sizes = np.minimum(np.searchsorted(share, _unit(key, _TAG_SIBLINGS, brand), side="right") + 1, _MAX_SIBLINGS)
    ends = np.cumsum(sizes)
    slot = np.searchsorted(ends, k, side="right")
    brand_no, position = brand[slot], k - (ends[slot] - sizes[slot])
    if int(brand_no.max()) >= _BRAND_SPACE:
        raise ValueError(
            f"organisation {int(k.max()):,} is beyond the name space (about {_LANE_CAPACITY:,} organisations per book)"
        )
    return brand_no, position


@dataclass(frozen=True)
class _Organisations:
    """Some organisations, one element each (object arrays of str)."""

    name: np.ndarray  # the canonical name: the + brand + " " + kind + " " + form + suffix
    the: np.ndarray  # "The " or ""
    brand: np.ndarray  # "Veltaro", "Veltaro & Brisken", "Veltaro and Brisken"
    kind: np.ndarray
    form: np.ndarray
    suffix: np.ndarray  # legal suffix with its leading space, or ""
    parent: np.ndarray  # the brand's parent organisation

    def take(self, idx: np.ndarray) -> _Organisations:
        return _Organisations(*(getattr(self, f.name)[idx] for f in fields(self)))


_KINDS, _FORMS, _SUFFIXES = _obj(_NAME_KINDS), _obj(_NAME_FORMS), _obj(_LEGAL_SUFFIXES)
# (kind, form, suffix) -> everything after the brand: " Wealth Management LLC".
_NAME_TAILS = np.array(
    [[f" {kind} {form}{suffix}" for suffix in _LEGAL_SUFFIXES] for form in _NAME_FORMS for kind in _NAME_KINDS], dtype=object
)


def _organisations(key: int, lane: int, k: np.ndarray) -> _Organisations:
    """The organisations ``k`` (numbers within ``lane``): names, their parts, parents."""
    k = np.asarray(k, dtype=np.int64)
    brand_no, position = _siblings(key, lane, k)
    # Name each brand once, however many of its siblings are asked for.
    if len(k) and (np.diff(brand_no) >= 0).all():  # the usual case, organisations in order: no sort needed
        starts = np.r_[True, brand_no[1:] != brand_no[:-1]]
        brands, inverse = brand_no[starts], np.cumsum(starts) - 1
    else:
        brands, inverse = np.unique(brand_no, return_inverse=True)
    word = _brands(key, brands)
    two = np.flatnonzero(_unit(key, _TAG_TWO_BRANDS, brands) < _TWO_BRAND_RATE)
    if len(two):
        # Any other brand may be the partner: "Veltaro & Brisken" while
        # "Brisken Wealth Group" exists is a realistic near miss. The first
        # brand is this one's own, so the pair stays unique.
        partner = (brands[two] + 1 + _below(key, _TAG_PARTNER, brands[two], _BRAND_SPACE - 1)) % _BRAND_SPACE
        joiner = np.where(_unit(key, _TAG_AND, brands[two]) < _TWO_BRAND_AND_SHARE, " and ", " & ").astype(object)
        word[two] = word[two] + joiner + _brands(key, partner)
    parent = word + _obj([" " + form for form in _PARENT_FORMS])[_below(key, _TAG_PARENT, brands, len(_PARENT_FORMS))]

    stride = _COMBO_STRIDES[_below(key, _TAG_STRIDE, brands, len(_COMBO_STRIDES))]
    combo = (_below(key, _TAG_COMBO, brands, _COMBOS)[inverse] + position * stride[inverse]) % _COMBOS
    org = brand_no * _MAX_SIBLINGS + position  # one hash input per organisation, across lanes
    suffix = np.searchsorted(np.cumsum(_LEGAL_SUFFIX_SHARE), _unit(key, _TAG_SUFFIX, org), side="right")
    suffix = suffix.clip(max=len(_LEGAL_SUFFIXES) - 1)
    brand = word[inverse]
    name = brand + _NAME_TAILS[combo, suffix]
    with_the = np.flatnonzero(_unit(key, _TAG_THE, org) < _THE_RATE)
    name[with_the] = "The " + name[with_the]
    the = np.full(len(k), "", dtype=object)
    the[with_the] = "The "
    return _Organisations(
        name=name,
        the=the,
        brand=brand,
        kind=_KINDS[combo % len(_NAME_KINDS)],
        form=_FORMS[combo // len(_NAME_KINDS)],
        suffix=_SUFFIXES[suffix],
        parent=parent[inverse],
    )


def _entity_ids(lane: int, k: np.ndarray) -> np.ndarray:
    number = np.asarray(k, dtype=np.int64) + (_DROP_ENTITY_BASE if lane == _DROP_LANE else 0)
    return ("E" + pd.Series(number, dtype=np.int64).astype(str).str.zfill(7)).to_numpy(dtype=object)


def _spelling_table(table: dict[str, tuple[tuple[str, float], ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spellings, cumulative weights, lengths) laid out as padded 2-D tables, one row per canonical value."""
    groups = list(table.values())
    width = max(len(g) for g in groups)
    spellings = np.empty((len(groups), width), dtype=object)
    cumulative = np.full((len(groups), width), np.inf)
    for i, group in enumerate(groups):
        weights = np.array([w for _, w in group], dtype=float)
        cumulative[i, : len(group)] = np.cumsum(weights / weights.sum())
        spellings[i, : len(group)] = [s for s, _ in group]
        spellings[i, len(group) :] = group[0][0]  # never selected; keeps the table dense
    return spellings, cumulative, np.array([len(g) for g in groups])


_REGION_SPELLING_TABLE = _spelling_table(_REGION_TABLE)
_SEGMENT_SPELLING_TABLE = _spelling_table(_SEGMENT_TABLE)


def _pick_spelling(
    rng: np.random.Generator, canon_idx: np.ndarray, layout: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """Vectorised: for each row, draw which spelling of its canonical value it uses (column of the layout).

    One uniform draw per row plus a comparison against the row's cumulative weights picks the column.
    """
    _, cumulative, lengths = layout
    u = rng.random(canon_idx.shape[0])
    col = (u[:, None] >= cumulative[canon_idx]).sum(axis=1)
    return np.minimum(col, lengths[canon_idx] - 1)  # guards cumsum rounding just below 1.0


def _other_spelling(u: np.ndarray, canon_idx: np.ndarray, col: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A spelling column other than ``col`` of the same canonical value, uniformly."""
    n_spellings = lengths[canon_idx]
    return (col + 1 + (u * (n_spellings - 1)).astype(np.int64)) % n_spellings


# A book's rows before they are rendered to text: what each row says, as
# indices into the tables above. Duplicates are derived from their original in
# this form (another spelling of the same region is a different column index).
_Rows = dict[str, np.ndarray]


def _draw_rows(n: int, streams: list[np.random.Generator]) -> _Rows:
    """Every column of ``n`` independent rows from the ten column streams (names aside: those are the organisation's)."""
    rng_name, rng_region, rng_segment, rng_parent, rng_email, rng_status, rng_time, rng_unknown, rng_aum, rng_kind = streams

    # Names are the organisations' now. These two draws (once the old vocabulary's
    # stem and the rest of the name) are kept so that the nameless records stay
    # the rows they were: tests downstream count on the small books having some.
    rng_name.integers(0, _RETIRED_VOCABULARY[0], size=n)
    rng_name.integers(0, _RETIRED_VOCABULARY[1], size=n)
    no_name = rng_name.random(n) < _MISSING_NAME_RATE
    # Half the nameless records are empty strings, half are true nulls: 1 = "", 2 = None.
    name_missing = np.zeros(n, dtype=np.int8)
    name_missing[no_name] = np.where(rng_name.random(int(no_name.sum())) < 0.5, 1, 2)

    region_idx = rng_region.choice(len(_REGION_SHARE), size=n, p=_REGION_SHARE)
    region_col = _pick_spelling(rng_region, region_idx, _REGION_SPELLING_TABLE)
    unknown = rng_unknown.random(n) < _UNKNOWN_REGION_RATE
    # 0 = a spelling of region_idx, else 1 + index into UNKNOWN_REGIONS.
    region_unknown = np.zeros(n, dtype=np.int8)
    region_unknown[unknown] = 1 + rng_unknown.integers(0, len(UNKNOWN_REGIONS), size=int(unknown.sum()))

    segment_idx = rng_segment.choice(len(_SEGMENT_SHARE), size=n, p=_SEGMENT_SHARE)
    segment_col = _pick_spelling(rng_segment, segment_idx, _SEGMENT_SPELLING_TABLE)
    segment_unknown = rng_unknown.random(n) < _UNKNOWN_SEGMENT_RATE

    # The parent itself is the brand's now; this draw (once the parent's form)
    # is kept so that which rows lack a parent stays where it was.
    rng_parent.integers(0, len(_PARENT_FORMS), size=n)
    parent_missing = rng_parent.random(n) < _MISSING_PARENT_RATE

    # Advisors cover territories: each client gets one of the ten advisors of
    # its (true) canonical region, even when the region itself is mistyped.
    advisor_idx = region_idx * _ADVISORS_PER_REGION + rng_email.integers(0, _ADVISORS_PER_REGION, size=n)
    email_form = rng_email.choice(len(_EMAIL_FORM_SHARE), size=n, p=_EMAIL_FORM_SHARE)
    email_missing = rng_email.random(n) < _MISSING_EMAIL_RATE

    active = rng_status.random(n) < _ACTIVE_RATE
    offsets = rng_time.integers(1, _BOOK_SPAN_SECONDS + 1, size=n)

    aum = np.round(_AUM_MEDIAN_USD * np.exp(rng_aum.normal(0.0, _AUM_SIGMA, size=n)), 2).astype(object)
    aum[rng_aum.random(n) < _MISSING_AUM_RATE] = None
    business_type = np.array(BUSINESS_TYPES, dtype=object)[rng_kind.choice(len(BUSINESS_TYPES), size=n, p=_BUSINESS_TYPE_SHARE)]
    business_type[rng_kind.random(n) < _MISSING_BUSINESS_TYPE_RATE] = None

    return {
        "name_missing": name_missing,
        "region_idx": region_idx,
        "region_col": region_col,
        "region_unknown": region_unknown,
        "segment_idx": segment_idx,
        "segment_col": segment_col,
        "segment_unknown": segment_unknown,
        "parent_missing": parent_missing,
        "advisor_idx": advisor_idx,
        "email_form": email_form,
        "email_missing": email_missing,
        "active": active,
        "offsets": offsets,
        "aum": aum,
        "business_type": business_type,
    }


def _take(rows: _Rows, idx: np.ndarray) -> _Rows:
    return {name: column[idx] for name, column in rows.items()}


def _put(rows: _Rows, idx: np.ndarray, values: _Rows) -> None:
    for name, column in values.items():
        rows[name][idx] = column


def _vary_fields(rng: np.random.Generator, original: _Rows, own: _Rows) -> _Rows:
    """The non-name fields of duplicates of ``original`` rows.

    ``own`` are the duplicates' own independent draws: where a duplicate's field
    is not the original's (a later status, another AUM estimate, its own
    ``updated_at``), it is its own draw.
    """
    d = len(original["region_idx"])
    u = rng.random((d, 10))
    out = dict(own)
    # The same organisation sits in the same region: a duplicate mostly keeps the
    # original's region and advisor, and spells the region differently (a few
    # disagree, below).
    out["region_idx"] = original["region_idx"]
    out["advisor_idx"] = original["advisor_idx"]
    respell = u[:, 0] < _DUP_REGION_RESPELLED
    other = _other_spelling(u[:, 1], original["region_idx"], original["region_col"], _REGION_SPELLING_TABLE[2])
    out["region_col"] = np.where(respell, other, original["region_col"])
    # Respelling a region that was typed as an unknown one fixes it; a missing
    # region is left blank, the CRM's "" (UNKNOWN_REGIONS[1]).
    out["region_unknown"] = np.where(respell, 0, original["region_unknown"]).astype(np.int8)
    out["region_unknown"][u[:, 0] > 1 - _DUP_REGION_MISSING] = 1 + UNKNOWN_REGIONS.index("")

    out["segment_idx"] = original["segment_idx"]
    respell = u[:, 2] < _DUP_SEGMENT_RESPELLED
    other = _other_spelling(u[:, 3], original["segment_idx"], original["segment_col"], _SEGMENT_SPELLING_TABLE[2])
    out["segment_col"] = np.where(respell, other, original["segment_col"])
    out["segment_unknown"] = original["segment_unknown"] & ~respell

    out["parent_missing"] = np.where(original["parent_missing"], u[:, 4] >= _DUP_PARENT_ADDED, u[:, 4] < _DUP_PARENT_DROPPED)

    # E-mail forms 0-2 are the valid lower / UPPER / Mixed spellings.
    recase = u[:, 5] < _DUP_EMAIL_RECASED
    valid = original["email_form"] < 3
    other_case = np.where(valid, (original["email_form"] + 1 + (u[:, 6] < 0.5)) % 3, (u[:, 6] * 3).astype(np.int64))
    out["email_form"] = np.where(recase, other_case, original["email_form"])
    out["email_missing"] = np.where(recase, False, original["email_missing"]) | (u[:, 5] > 1 - _DUP_EMAIL_MISSING)

    out["active"] = np.where(u[:, 7] < _DUP_STATUS_KEPT, original["active"], own["active"])
    out["aum"] = np.where(u[:, 8] < _DUP_AUM_KEPT, original["aum"], own["aum"])
    out["aum"][u[:, 8] > 1 - _DUP_AUM_MISSING] = None
    out["business_type"] = np.where(u[:, 9] < _DUP_BUSINESS_TYPE_KEPT, original["business_type"], own["business_type"])

    extra = rng.random((d, 4))
    moved = extra[:, 0] < _DUP_REGION_MOVED
    out["region_idx"] = np.where(
        moved,
        (original["region_idx"] + 1 + (extra[:, 1] * (len(_REGION_SHARE) - 1)).astype(np.int64)) % len(_REGION_SHARE),
        out["region_idx"],
    )
    out["region_col"] = np.where(moved, 0, out["region_col"])  # the canonical spelling of the other region
    out["region_unknown"] = np.where(moved, 0, out["region_unknown"]).astype(np.int8)
    reassigned = extra[:, 2] < _DUP_ADVISOR_REASSIGNED
    colleague = (
        original["advisor_idx"] % _ADVISORS_PER_REGION + 1 + (extra[:, 3] * (_ADVISORS_PER_REGION - 1)).astype(np.int64)
    ) % _ADVISORS_PER_REGION
    out["advisor_idx"] = np.where(
        reassigned, (original["advisor_idx"] // _ADVISORS_PER_REGION) * _ADVISORS_PER_REGION + colleague, out["advisor_idx"]
    )
    return out


def _render(rows: _Rows, names: np.ndarray, parents: np.ndarray) -> dict[str, np.ndarray]:
    """Text of every column but ``client_id`` from the rows' indices."""
    names = names.copy()
    names[rows["name_missing"] == 1] = ""
    names[rows["name_missing"] == 2] = None

    region = _REGION_SPELLING_TABLE[0][rows["region_idx"], rows["region_col"]]
    unknown = rows["region_unknown"] > 0
    region[unknown] = np.array(UNKNOWN_REGIONS, dtype=object)[rows["region_unknown"][unknown] - 1]
    segment = _SEGMENT_SPELLING_TABLE[0][rows["segment_idx"], rows["segment_col"]]
    segment[rows["segment_unknown"]] = UNKNOWN_SEGMENTS[0]

    parent_org = parents.copy()
    parent_org[rows["parent_missing"]] = None
    advisor_email = _EMAIL_FORMS[rows["advisor_idx"], rows["email_form"]]
    advisor_email[rows["email_missing"]] = None

    status = np.where(rows["active"], "active", "inactive").astype(object)
    offsets = rows["offsets"].astype("timedelta64[s]")
    # timezone="UTC" makes numpy append the "Z" itself: "2026-03-04T12:34:56Z".
    updated_at = np.datetime_as_string(BOOK_END - offsets, unit="s", timezone="UTC").astype(object)
    return {
        "client_name": names,
        "region": region,
        "segment": segment,
        "parent_org": parent_org,
        "advisor_email": advisor_email,
        "status": status,
        "updated_at": updated_at,
        "aum_usd": rows["aum"],
        "business_type": rows["business_type"],
    }


def _strip_accents(values: np.ndarray) -> np.ndarray:
    decomposed = pd.Series(values, dtype=object).str.normalize("NFKD")
    return decomposed.str.encode("ascii", "ignore").str.decode("ascii").to_numpy(dtype=object)


def _typo(words: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One typo in the first word of each string: substitution, transposition, deletion or insertion.

    Works on the code points as a 2-D array, so every row gets its own
    position and kind of typo without a Python loop over the rows. Never
    touches the first letter (people rarely get that wrong) nor the last.
    """
    d = len(words)
    if d == 0:
        return words
    text = words.astype(str)
    width = text.dtype.itemsize // 4
    codes = np.zeros((d, width + 2), dtype=np.uint32)  # room for one inserted letter
    codes[:, :width] = text.view(np.uint32).reshape(d, width)
    length = np.strings.str_len(text)
    space = np.strings.find(text, " ")
    word = np.where(space >= 0, space, length)
    pos = 1 + (u[:, 0] * (word - 2)).astype(np.int64)
    kind = (u[:, 1] * 4).astype(np.int64)
    rows, cols = np.arange(d), np.arange(width + 2)
    a, z = ord("a"), ord("z")
    current = codes[rows, pos].astype(np.int64)
    shifted = a + (current - a + 1 + (u[:, 2] * 25).astype(np.int64)) % 26  # never the same letter
    letter = np.where((current >= a) & (current <= z), shifted, a + (u[:, 2] * 26).astype(np.int64)).astype(np.uint32)

    out = codes.copy()
    sub = kind == 0
    out[rows[sub], pos[sub]] = letter[sub]
    swap = kind == 1
    out[rows[swap], pos[swap]] = codes[rows[swap], pos[swap] + 1]
    out[rows[swap], pos[swap] + 1] = codes[rows[swap], pos[swap]]
    delete = kind == 2
    src = np.where(cols[None, :] >= pos[delete, None], cols[None, :] + 1, cols[None, :]).clip(max=width + 1)
    out[delete] = np.take_along_axis(codes[delete], src, axis=1)
    insert = kind == 3
    src = np.where(cols[None, :] > pos[insert, None], cols[None, :] - 1, cols[None, :])
    out[insert] = np.take_along_axis(codes[insert], src, axis=1)
    out[rows[insert], pos[insert]] = letter[insert]
    return np.ascontiguousarray(out).view(f"<U{width + 2}").ravel().astype(object)


def _vary_names(rng: np.random.Generator, org: _Organisations) -> np.ndarray:
    """Names of duplicates of ``org``, each with 1 to 3 variations of the organisation's name.

    Variations work on the name's parts (brand, kind, form, suffix) where they
    need to know them, on the whole string otherwise; each is applied to its
    subset of rows at once.
    """
    d = len(org.brand)
    if d == 0:
        return np.empty(0, dtype=object)
    u = rng.random((d, 24))
    the, brand, kind, form, suffix = org.the.copy(), org.brand.copy(), org.kind.copy(), org.form.copy(), org.suffix.copy()

    # Which variations: the typo independently (so its rate is exact), the
    # rest by weighted sampling without replacement (Efraimidis-Spirakis keys)
    # among those that apply to the name.
    count = np.searchsorted(np.cumsum(_VARIATION_COUNT_SHARE), u[:, 0], side="right").clip(max=2) + 1
    typo = u[:, 1] < _TYPO_RATE
    stripped = _strip_accents(brand)
    kind_ok = pd.Series(kind, dtype=object).isin(_ABBREVIATIONS).to_numpy()
    form_ok = pd.Series(form, dtype=object).isin(_ABBREVIATIONS).to_numpy()
    applies = np.ones((d, len(_VARIATION_WEIGHTS)), dtype=bool)
    applies[:, _ABBREVIATION] = kind_ok | form_ok
    applies[:, _AMPERSAND] = pd.Series(brand).str.contains(r" (?:&|and) ", regex=True).to_numpy()
    applies[:, _ACCENT] = stripped != brand
    with np.errstate(divide="ignore"):
        keys = np.where(applies, -np.log(u[:, 2 : 2 + len(_VARIATION_WEIGHTS)]) / _VARIATION_WEIGHTS, np.inf)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    chosen = applies & (rank < (count - typo)[:, None])

    pick = chosen[:, _ACCENT]
    brand[pick] = stripped[pick]
    pick = chosen[:, _AMPERSAND]
    amp = pd.Series(brand[pick], dtype=object)
    to_and, to_amp = amp.str.replace(" & ", " and ", regex=False), amp.str.replace(" and ", " & ", regex=False)
    brand[pick] = np.where(amp.str.contains(" & ", regex=False), to_and, to_amp)

    pick = chosen[:, _ABBREVIATION]
    on_kind = pick & kind_ok & (~form_ok | (u[:, 10] < 0.5))
    on_form = pick & ~on_kind
    for word, short in _ABBREVIATIONS.items():  # a loop over the vocabulary, not the rows
        spelled = _obj(short)[(u[:, 11] * len(short)).astype(np.int64)]
        for part, where in ((kind, on_kind), (form, on_form)):
            hit = where & (part == word)
            part[hit] = spelled[hit]
    abbreviated = (on_kind & kind_ok, on_form & form_ok)

    pick = chosen[:, _SUFFIX]
    had = suffix != ""
    suffix[pick & ~had] = _obj(_SUFFIX_ADDED)[(u[:, 12] * len(_SUFFIX_ADDED)).astype(np.int64)][pick & ~had]
    suffix[pick & had & (u[:, 13] < _SUFFIX_REMOVED_SHARE)] = ""
    respell = pick & had & (u[:, 13] >= _SUFFIX_REMOVED_SHARE)
    for canonical, spellings in _SUFFIX_RESPELLINGS.items():
        hit = respell & (org.suffix == canonical)
        suffix[hit] = _obj(spellings)[(u[:, 12] * len(spellings)).astype(np.int64)][hit]

    pick = chosen[:, _THE]
    the[pick] = np.where(the[pick] == "", "The ", "").astype(object)

    # The typo goes into one of the words long enough to take one: the
    # (first) brand, the kind or the form.
    parts = (brand, kind, form)
    first_word = pd.Series(brand, dtype=object).str.split(" ", n=1).str[0]
    # An abbreviation is left alone: "Hldgs" is already as short as a word gets.
    long_enough = np.column_stack(
        [first_word.str.len().to_numpy() >= _TYPO_MIN_LETTERS]
        + [(pd.Series(p, dtype=object).str.len().to_numpy() >= _TYPO_MIN_LETTERS) & ~a for p, a in zip(parts[1:], abbreviated)]
    )
    target = np.argmax(np.where(long_enough, u[:, 14:17], -1.0), axis=1)
    typo_ok = typo & long_enough.any(axis=1)
    for i, part in enumerate(parts):
        hit = typo_ok & (target == i)
        part[hit] = _typo(part[hit], u[hit][:, 17:20])
    # A typo that had nowhere to go must not leave the duplicate unchanged.
    chosen[:, _CASE] |= typo & ~typo_ok

    # Punctuation noise: a comma before the suffix, a trailing period or a
    # double space, whichever the name can take.
    pick = chosen[:, _PUNCTUATION]
    noise = (u[:, 20] * 3).astype(np.int64)
    comma = pick & (noise == 0) & (suffix != "") & ~pd.Series(suffix, dtype=object).str.startswith(",").to_numpy()
    suffix[comma] = "," + suffix[comma]
    name = the + brand + " " + kind + " " + form + suffix
    period = pick & ~comma & (noise != 2) & ~pd.Series(name, dtype=object).str.endswith(".").to_numpy()
    name[period] = name[period] + "."
    double = pick & ~comma & ~period
    name[double] = pd.Series(name[double], dtype=object).str.replace(" ", "  ", n=1, regex=False).to_numpy(dtype=object)

    pick = chosen[:, _CASE]
    upper = pick & (u[:, 21] < 0.5)
    lower = pick & ~upper
    name[upper] = pd.Series(name[upper], dtype=object).str.upper().to_numpy(dtype=object)
    name[lower] = pd.Series(name[lower], dtype=object).str.lower().to_numpy(dtype=object)
    return name


def _api_entities(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(organisation number, original row) of each of the API book's ``n`` rows.

    A row is either an organisation's first appearance, numbered in order of
    appearance, or (API_DUPLICATE_RATE of them) a duplicate of an organisation
    that appeared earlier: then its original row is that first appearance.
    """
    duplicate = rng.random(n) < API_DUPLICATE_RATE
    duplicate[:1] = False  # the first row has nothing to duplicate
    first = np.flatnonzero(~duplicate)
    entity = np.cumsum(~duplicate) - 1
    dup_rows = np.flatnonzero(duplicate)
    # Uniform over the organisations seen before the duplicate's row.
    entity[dup_rows] = (rng.random(len(dup_rows)) * (entity[dup_rows] + 1)).astype(np.int64)
    return entity, first[entity]


def client_entities(n: int = 2000, seed: int = 42) -> pd.Series:
    """The organisation behind each row of ``generate_clients(n, seed)``: the entity-resolution truth.

    A ``Series`` named ``entity_id``, aligned with the book's rows (same
    index), of ids like "E0000042"; rows of one organisation share the id, and
    distinct organisations always have distinct names (up to duplicates'
    variations). Cheap: it draws only which rows are duplicates, not the book.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    entity, _ = _api_entities(n, _streams(seed)[_API_DUPLICATES])
    return pd.Series(_entity_ids(_API_LANE, entity), name="entity_id", dtype=object)


def generate_clients(n: int = 2000, seed: int = 42) -> pd.DataFrame:
    """Return a synthetic client book of ``n`` rows, identical for identical ``(n, seed)``.

    Columns (all ``object`` dtype, missing values are ``None``): see
    ``CLIENT_COLUMNS``. ``client_id`` runs "100001", "100002", ... in row order.
    About ``API_DUPLICATE_RATE`` of the rows are planted duplicates: an
    organisation already in the book, under a new id, its name and fields
    varied; ``client_entities(n, seed)`` tells which rows belong together.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    streams = _streams(seed)
    rows = _draw_rows(n, [streams[i] for i in _API_STREAMS])
    entity, original = _api_entities(n, streams[_API_DUPLICATES])
    dup_rows = np.flatnonzero(original != np.arange(n))
    rng_vary = streams[_API_VARIATIONS]
    _put(rows, dup_rows, _vary_fields(rng_vary, _take(rows, original[dup_rows]), _take(rows, dup_rows)))

    org = _organisations(_universe_key(seed), _API_LANE, np.arange(int(entity.max()) + 1 if n else 0))
    names = org.name[entity]
    names[dup_rows] = _vary_names(rng_vary, org.take(entity[dup_rows]))
    columns = _render(rows, names, org.parent[entity])
    client_id = (np.arange(n, dtype=np.int64) + FIRST_CLIENT_ID).astype(str).astype(object)
    return pd.DataFrame({"client_id": client_id, **columns}, columns=list(CLIENT_COLUMNS))


def generate_drop(n: int, seed: int = 42, *, api_clients: int = 0, overlap: float = 0.3) -> pd.DataFrame:
    """A CSV-drop book of ``n`` rows related to the API book ``generate_clients(api_clients, seed)``.

    Columns: ``DROP_COLUMNS`` + ``entity_id`` (object dtype, ``None`` for
    missing). About ``overlap`` of the rows are organisations of that API
    book, each a distinct one, spelled and filled in differently (a duplicate
    across sources, sharing the API rows' ``entity_id``); about
    ``DROP_DUPLICATE_RATE`` repeat an organisation already in the drop; the
    rest are new organisations, whose names and entity ids ("E10000000" on)
    no API book of this seed uses. With ``api_clients=0`` the drop stands
    alone. ``client_id`` runs "D000001", "D000002", ... in row order: never an
    API id. Identical for identical arguments.
    """
    if n < 0 or api_clients < 0:
        raise ValueError(f"n and api_clients must be >= 0, got {n} and {api_clients}")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be between 0 and 1, got {overlap}")
    streams = _streams(seed)
    key = _universe_key(seed)
    rows = _draw_rows(n, [streams[i] for i in _DROP_STREAMS])
    rng_roles, rng_vary = streams[_DROP_ROLES], streams[_DROP_VARIATIONS]

    api_entity, api_original = _api_entities(api_clients, streams[_API_DUPLICATES])
    api_orgs = int(api_entity.max()) + 1 if api_clients else 0
    role = rng_roles.random(n)
    # Role by slices of one uniform draw: [0, api share) from the API book, the next DROP_DUPLICATE_RATE repeats.
    api_share = overlap if api_orgs else 0.0
    from_api = role < api_share
    repeat = (role >= api_share) & (role < api_share + DROP_DUPLICATE_RATE)
    repeat[:1] = False
    fresh = ~from_api & ~repeat

    lane = np.full(n, _DROP_LANE, dtype=np.int8)
    entity = np.zeros(n, dtype=np.int64)
    entity[fresh] = np.arange(int(fresh.sum()))
    ov_rows = np.flatnonzero(from_api)
    # Each API organisation turns up once: a drop is another system's list of
    # the same clients, not a sample with replacement (unless it outnumbers them).
    lane[ov_rows] = _API_LANE
    entity[ov_rows] = rng_roles.choice(api_orgs, size=len(ov_rows), replace=len(ov_rows) > api_orgs) if len(ov_rows) else 0
    rep_rows = np.flatnonzero(repeat)
    seen = np.cumsum(~repeat) - 1  # non-repeat rows before (and at) each row, minus one
    firsts = np.flatnonzero(~repeat)
    source = firsts[(rng_roles.random(len(rep_rows)) * (seen[rep_rows] + 1)).astype(np.int64)]
    lane[rep_rows], entity[rep_rows] = lane[source], entity[source]

    if len(ov_rows):
        api_rows = _draw_rows(api_clients, [streams[i] for i in _API_STREAMS])
        api_first = np.flatnonzero(api_original == np.arange(api_clients))  # organisation -> its first row
        original = _take(api_rows, api_first[entity[ov_rows]])
        _put(rows, ov_rows, _vary_fields(rng_vary, original, _take(rows, ov_rows)))
    _put(rows, rep_rows, _vary_fields(rng_vary, _take(rows, source), _take(rows, rep_rows)))

    names = np.empty(n, dtype=object)
    parents = np.empty(n, dtype=object)
    entity_id = np.empty(n, dtype=object)
    varied = from_api | repeat
    for this_lane in (_API_LANE, _DROP_LANE):
        in_lane = lane == this_lane
        numbers, inverse = np.unique(entity[in_lane], return_inverse=True)
        org = _organisations(key, this_lane, numbers)
        pos = np.flatnonzero(in_lane)
        names[pos] = org.name[inverse]
        parents[pos] = org.parent[inverse]
        entity_id[pos] = _entity_ids(this_lane, numbers)[inverse]
        dup = varied[in_lane]
        names[pos[dup]] = _vary_names(rng_vary, org.take(inverse[dup]))

    columns = _render(rows, names, parents)
    client_id = ("D" + pd.Series(np.arange(1, n + 1), dtype=np.int64).astype(str).str.zfill(6)).to_numpy(dtype=object)
    frame = pd.DataFrame({"client_id": client_id, **columns, "entity_id": entity_id})
    return frame[[*DROP_COLUMNS, "entity_id"]]


@dataclass(frozen=True)
class LabelledBook:
    """An API book and a CSV drop of the same world, with the truth about who is who.

    ``api`` has ``CLIENT_COLUMNS``, ``drop`` has ``DROP_COLUMNS``: exactly what
    the engine ingests, with no hint of the answer. ``truth`` has one row per
    record of either (columns source_system: "crm_api" | "csv_drop",
    client_id, entity_id); two records are the same organisation exactly when
    their entity_id is equal, which is what a matcher's pairs are scored on.
    """

    api: pd.DataFrame
    drop: pd.DataFrame
    truth: pd.DataFrame


#: Share of a labelled book's records that come from the API (the rest: the drop).
_LABELLED_API_SHARE = 0.7
_LABELLED_OVERLAP = 0.3


def labelled_book(n_records: int = 10_000, seed: int = 42) -> LabelledBook:
    """``n_records`` records, about 70% API book and 30% drop overlapping it, with their entity ids."""
    if n_records < 0:
        raise ValueError(f"n_records must be >= 0, got {n_records}")
    n_api = round(n_records * _LABELLED_API_SHARE)
    api = generate_clients(n_api, seed)
    drop = generate_drop(n_records - n_api, seed, api_clients=n_api, overlap=_LABELLED_OVERLAP)
    truth = pd.concat(
        [
            pd.DataFrame({"source_system": "crm_api", "client_id": api["client_id"], "entity_id": client_entities(n_api, seed)}),
            pd.DataFrame({"source_system": "csv_drop", "client_id": drop["client_id"], "entity_id": drop["entity_id"]}),
        ],
        ignore_index=True,
    ).astype(object)
    return LabelledBook(api=api, drop=drop[list(DROP_COLUMNS)].copy(), truth=truth)


def generate_advisors(n_clients: int = 2000) -> pd.DataFrame:
    """The firm's advisors: one row per advisor of ``ADVISOR_EMAILS``, sized to a book of ``n_clients``.

    Columns: advisor_email, advisor_name, regions (list: the canonical region the advisor covers),
    segments (list: every canonical segment), capacity (max clients), active (bool). Capacities
    spread 0.7x-1.4x of an even share, so some advisors are over capacity with the book as the
    CRM assigned it, and three advisors are inactive: reassignment has work to do.
    """
    rng = np.random.default_rng(20261126)
    n = len(ADVISOR_EMAILS)
    share = max(n_clients, 1) / n
    capacity = np.maximum(1, np.round(share * rng.uniform(0.7, 1.4, size=n))).astype(int)
    active = np.ones(n, dtype=bool)
    active[rng.choice(n, size=3, replace=False)] = False
    regions = list(REGION_SPELLINGS)
    return pd.DataFrame(
        {
            "advisor_email": list(ADVISOR_EMAILS),
            "advisor_name": [f"{first.title()} {last.title()}" for first, last in _ADVISORS],
            "regions": [[regions[k // _ADVISORS_PER_REGION]] for k in range(n)],
            "segments": [list(SEGMENT_SPELLINGS) for _ in range(n)],
            "capacity": capacity,
            "active": active,
        }
    )


def write_drop_csv(
    path: str | PathLike[str], n: int, seed: int = 42, *, api_clients: int | None = None, overlap: float = 0.3
) -> int:
    """Write a CSV drop of ``n`` rows in the ``DROP_COLUMNS`` layout and return the row count.

    By default the drop is ``generate_clients(n, seed)`` itself (API ids, its
    own planted duplicates): a standalone book, as benchmarks load it. With
    ``api_clients`` it is ``generate_drop(n, seed, api_clients=api_clients,
    overlap=overlap)`` instead ("D..." ids, organisations shared with that API
    book); ``api_clients=0`` gives a standalone drop of new organisations. The
    truth (``entity_id``) is never written: the engine must not see it.

    UTF-8, header row, no index; ``None`` becomes an empty field (so a nameless
    record reads back as empty whether it was ``""`` or ``None``).
    """
    if api_clients is None:
        book = generate_clients(n, seed)
    else:
        book = generate_drop(n, seed, api_clients=api_clients, overlap=overlap)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    book.to_csv(target, columns=list(DROP_COLUMNS), index=False, encoding="utf-8")
    return len(book)
