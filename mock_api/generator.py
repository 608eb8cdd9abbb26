"""Deterministic, realistically messy synthetic client book.

The mock CRM has to look like a real one from the engine's point of view:
regions and segments typed by hand in a dozen spellings, advisor e-mails in
mixed case or plain wrong, organisations without a name, half-filled parent
organisations. The exact variant spellings are part of the contract: the
engine's alias tables are written against them, so change them together.

Everything is drawn with numpy in whole-column operations (no per-row Python
loop over the book) so a 1,000,000-row book for benchmarks takes seconds.
Each column draws from its own child stream of one ``SeedSequence``, so the
book depends only on ``(n, seed)`` and adding a column later does not reshuffle
the others. Timestamps are anchored to a fixed instant, not to "now", so the
book is byte-for-byte the same on every day it is generated.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ADVISOR_DOMAIN",
    "ADVISOR_EMAILS",
    "BOOK_END",
    "CLIENT_COLUMNS",
    "DROP_COLUMNS",
    "FIRST_CLIENT_ID",
    "REGION_SPELLINGS",
    "SEGMENT_SPELLINGS",
    "UNKNOWN_REGIONS",
    "UNKNOWN_SEGMENTS",
    "BUSINESS_TYPES",
    "generate_advisors",
    "generate_clients",
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
REGION_SPELLINGS: dict[str, tuple[str, ...]] = {
    canon: tuple(s for s, _ in variants) for canon, variants in _REGION_TABLE.items()
}

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
# name = <stem> <kind> <form><legal suffix>, e.g. "Beacon Wealth Management LLC".
_NAME_STEMS = (
    "Atlas", "Beacon", "Summit", "Harbor", "Meridian", "Pinnacle", "Cedar",
    "Granite", "Northstar", "Keystone", "Lighthouse", "Bluewater", "Ironwood",
    "Silverline", "Crescent", "Sterling", "Oakridge", "Riverbend", "Westfield",
    "Highland", "Liberty", "Horizon", "Cornerstone", "Redwood", "Clearwater",
    "Fairview", "Ashford", "Whitmore", "Hawthorne", "Lakeshore", "Stonebridge",
    "Copperleaf", "Bayview", "Juniper", "Windrose", "Falcon", "Alder",
    "Marlowe", "Kingsley", "Thornbury",
)  # fmt: skip
_NAME_KINDS = (
    "Capital", "Wealth", "Asset", "Investment", "Financial", "Trust",
    "Advisory", "Family", "Equity", "Fiduciary",
)  # fmt: skip
_NAME_FORMS = (
    "Partners", "Management", "Group", "Advisors", "Holdings", "Associates",
    "Company", "Strategies", "Office", "Counsel",
)  # fmt: skip
# Blank suffix repeated so most names carry no legal form, as in real books.
_LEGAL_SUFFIXES = ("", "", "", " LLC", " Inc.", " LP", " Ltd")
_MISSING_NAME_RATE = 0.005

# Parent organisations hang off the client's name stem ("Atlas Capital
# Partners" -> "Atlas Holdings"), so several clients share a parent the way
# subsidiaries of one group do.
_PARENT_FORMS = ("Holdings", "Financial Group", "Capital Group", "Global", "Bancorp")
_MISSING_PARENT_RATE = 0.25

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
    pairs = [(f, l) for f in _ADVISOR_FIRST for l in _ADVISOR_LAST]
    picked = np.random.default_rng(20261101).choice(
        len(pairs), size=_ADVISORS_PER_REGION * len(_REGION_TABLE), replace=False
    )
    return tuple(pairs[i] for i in sorted(picked))


_ADVISORS = _advisor_roster()
#: The 60 well-formed, lower-case advisor addresses; advisor ``k`` covers
#: canonical region ``k // 10`` (in ``REGION_SPELLINGS`` order).
ADVISOR_EMAILS: tuple[str, ...] = tuple(f"{f}.{l}@{ADVISOR_DOMAIN}" for f, l in _ADVISORS)

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


def _pick_spelling(
    rng: np.random.Generator,
    canon_idx: np.ndarray,
    table: dict[str, tuple[tuple[str, float], ...]],
) -> np.ndarray:
    """Vectorised: for each row, draw a spelling of its canonical value.

    The per-canonical cumulative weights are laid out in a padded 2-D table so
    one uniform draw per row plus a comparison picks the variant column.
    """
    groups = list(table.values())
    width = max(len(g) for g in groups)
    spellings = np.empty((len(groups), width), dtype=object)
    cumulative = np.full((len(groups), width), np.inf)
    for i, group in enumerate(groups):
        weights = np.array([w for _, w in group], dtype=float)
        cumulative[i, : len(group)] = np.cumsum(weights / weights.sum())
        spellings[i, : len(group)] = [s for s, _ in group]
        spellings[i, len(group) :] = group[0][0]  # never selected; keeps the table dense
    lengths = np.array([len(g) for g in groups])
    u = rng.random(canon_idx.shape[0])
    col = (u[:, None] >= cumulative[canon_idx]).sum(axis=1)
    col = np.minimum(col, lengths[canon_idx] - 1)  # guards cumsum rounding just below 1.0
    return spellings[canon_idx, col]


def generate_clients(n: int = 2000, seed: int = 42) -> pd.DataFrame:
    """Return a synthetic client book of ``n`` rows, identical for identical ``(n, seed)``.

    Columns (all ``object`` dtype, missing values are ``None``): see
    ``CLIENT_COLUMNS``. ``client_id`` runs "100001", "100002", ... in row order.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    # Child streams are indexed, so streams added later (size, kind) leave the earlier columns unchanged.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(10)]
    rng_name, rng_region, rng_segment, rng_parent, rng_email, rng_status, rng_time, rng_unknown, rng_aum, rng_kind = streams

    client_id = (np.arange(n, dtype=np.int64) + FIRST_CLIENT_ID).astype(str).astype(object)

    # Names: index into a small precomputed vocabulary instead of concatenating
    # strings per row (28k combinations; duplicate names across clients are
    # realistic and the engine must not treat names as keys anyway).
    vocab = np.array(
        [
            f"{stem} {kind} {form}{legal}"
            for stem in _NAME_STEMS
            for kind in _NAME_KINDS
            for form in _NAME_FORMS
            for legal in _LEGAL_SUFFIXES
        ],
        dtype=object,
    )
    per_stem = len(vocab) // len(_NAME_STEMS)
    stem_idx = rng_name.integers(0, len(_NAME_STEMS), size=n)
    client_name = vocab[stem_idx * per_stem + rng_name.integers(0, per_stem, size=n)]
    no_name = rng_name.random(n) < _MISSING_NAME_RATE
    # Half the nameless records are empty strings, half are true nulls.
    client_name[no_name] = np.where(rng_name.random(int(no_name.sum())) < 0.5, "", None)

    region_idx = rng_region.choice(len(_REGION_SHARE), size=n, p=_REGION_SHARE)
    region = _pick_spelling(rng_region, region_idx, _REGION_TABLE)
    unknown = rng_unknown.random(n) < _UNKNOWN_REGION_RATE
    region[unknown] = np.array(UNKNOWN_REGIONS, dtype=object)[
        rng_unknown.integers(0, len(UNKNOWN_REGIONS), size=int(unknown.sum()))
    ]

    segment_idx = rng_segment.choice(len(_SEGMENT_SHARE), size=n, p=_SEGMENT_SHARE)
    segment = _pick_spelling(rng_segment, segment_idx, _SEGMENT_TABLE)
    segment[rng_unknown.random(n) < _UNKNOWN_SEGMENT_RATE] = UNKNOWN_SEGMENTS[0]

    parents = np.array([f"{stem} {form}" for stem in _NAME_STEMS for form in _PARENT_FORMS], dtype=object)
    parent_org = parents[stem_idx * len(_PARENT_FORMS) + rng_parent.integers(0, len(_PARENT_FORMS), size=n)]
    parent_org[rng_parent.random(n) < _MISSING_PARENT_RATE] = None

    # Advisors cover territories: each client gets one of the ten advisors of
    # its (true) canonical region, even when the region itself is mistyped.
    advisor_idx = region_idx * _ADVISORS_PER_REGION + rng_email.integers(0, _ADVISORS_PER_REGION, size=n)
    form_idx = rng_email.choice(len(_EMAIL_FORM_SHARE), size=n, p=_EMAIL_FORM_SHARE)
    advisor_email = _EMAIL_FORMS[advisor_idx, form_idx]
    advisor_email[rng_email.random(n) < _MISSING_EMAIL_RATE] = None

    status = np.where(rng_status.random(n) < _ACTIVE_RATE, "active", "inactive").astype(object)

    offsets = rng_time.integers(1, _BOOK_SPAN_SECONDS + 1, size=n).astype("timedelta64[s]")
    # timezone="UTC" makes numpy append the "Z" itself: "2026-03-04T12:34:56Z".
    updated_at = np.datetime_as_string(BOOK_END - offsets, unit="s", timezone="UTC").astype(object)

    aum = np.round(_AUM_MEDIAN_USD * np.exp(rng_aum.normal(0.0, _AUM_SIGMA, size=n)), 2).astype(object)
    aum[rng_aum.random(n) < _MISSING_AUM_RATE] = None
    business_type = np.array(BUSINESS_TYPES, dtype=object)[rng_kind.choice(len(BUSINESS_TYPES), size=n, p=_BUSINESS_TYPE_SHARE)]
    business_type[rng_kind.random(n) < _MISSING_BUSINESS_TYPE_RATE] = None

    return pd.DataFrame(
        {
            "client_id": client_id,
            "client_name": client_name,
            "region": region,
            "segment": segment,
            "parent_org": parent_org,
            "advisor_email": advisor_email,
            "status": status,
            "updated_at": updated_at,
            "aum_usd": aum,
            "business_type": business_type,
        },
        columns=list(CLIENT_COLUMNS),
    )


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


def write_drop_csv(path: str | PathLike[str], n: int, seed: int = 42) -> int:
    """Write the book in the CSV-drop layout (``DROP_COLUMNS``) and return the row count.

    UTF-8, header row, no index; ``None`` becomes an empty field (so a nameless
    record reads back as empty whether it was ``""`` or ``None``).
    """
    book = generate_clients(n, seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    book.to_csv(target, columns=list(DROP_COLUMNS), index=False, encoding="utf-8")
    return len(book)
