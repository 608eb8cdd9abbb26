"""``territory_dim``: territory ids by the seed's rule, unique and stable across runs.

Rule: ``{REGION_PREFIX}_{SEGMENT_PREFIX}``, each prefix the first three letters or digits of the
canonical name, upper-cased (Northeast + Institutional -> NOR_INS).

Stability: every id ever issued is kept (the previous territory_dim is the registry) and is never
renamed or reused, so adding a region later cannot move an existing territory.

Collisions: Northeast and Northwest both give NOR. The first (region, segment) to claim an id keeps
it; a later claimant gets the next free suffix: NOR_INS_2, NOR_INS_3, ... Within one run,
newcomers claim in alphabetical order of (region, segment), so the result does not depend on row
order. A client without a known region or segment goes to the explicit ``UNASSIGNED`` territory.
"""

from __future__ import annotations

import re

import pandas as pd

from crm_territory.schemas import UNASSIGNED_TERRITORY_ID, TerritoryDim, columns_of, empty_frame

UNASSIGNED_OWNER_ROLE = "Territory Operations (triage)"
_NOT_LETTER_OR_DIGIT = re.compile(r"[^0-9A-Za-z]")


def prefix(name: str) -> str:
    """First three letters or digits, upper-cased: "Northeast" -> "NOR", "Mid-Atlantic" -> "MID"."""
    return _NOT_LETTER_OR_DIGIT.sub("", name)[:3].upper()


def base_territory_id(region: str, segment: str) -> str:
    return f"{prefix(region)}_{prefix(segment)}"


def issue_territories(
    pairs: pd.DataFrame,
    previous: pd.DataFrame | None,
    owner_roles: dict[str, str],
    issued_at: pd.Timestamp,
    overlays: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Return the territory registry: every previously issued territory plus one per new (region, segment).

    ``pairs`` holds the (region, segment) combinations in use (missing values are ignored: those
    clients are UNASSIGNED). ``previous`` is the last territory_dim, or None on the first run.
    ``overlays`` maps overlay codes (specialist territories from the rules file) to their owner
    role; an overlay's territory_id is its code, and it has no region or segment.
    """
    overlays = overlays or {}
    registry = empty_frame(TerritoryDim) if previous is None else previous[columns_of(TerritoryDim)].copy()
    _refuse_inconsistent_registry(registry)
    taken = set(registry["territory_id"])
    known = set(zip(registry["region"], registry["segment"]))

    wanted = pairs.dropna(subset=["region", "segment"]).drop_duplicates()[["region", "segment"]]
    new_rows = []
    for region, segment in sorted(set(zip(wanted["region"], wanted["segment"])) - known):  # a few dozen at most
        base = base_territory_id(region, segment)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        new_rows.append({"territory_id": candidate, "region": region, "segment": segment, "issued_at": issued_at})

    if UNASSIGNED_TERRITORY_ID not in taken:
        new_rows.append({"territory_id": UNASSIGNED_TERRITORY_ID, "region": None, "segment": None, "issued_at": issued_at})
    known_overlays = set(registry["overlay"].dropna())
    for code in sorted(set(overlays) - known_overlays):
        if code in taken:
            raise TerritoryRegistryError(f"overlay {code!r} would reuse the id of an existing territory; rename the overlay")
        taken.add(code)
        new_rows.append({"territory_id": code, "region": None, "segment": None, "overlay": code, "issued_at": issued_at})

    if new_rows:
        additions = pd.DataFrame(new_rows).reindex(columns=columns_of(TerritoryDim))
        additions["owner_role"] = None
        registry = pd.concat([registry, additions[columns_of(TerritoryDim)]], ignore_index=True)

    # Owner roles follow the reference data (an edited role applies to existing territories too).
    roles = registry["segment"].map(owner_roles)
    registry["owner_role"] = roles.where(roles.notna(), registry["owner_role"])
    registry.loc[registry["territory_id"] == UNASSIGNED_TERRITORY_ID, "owner_role"] = UNASSIGNED_OWNER_ROLE
    overlay_roles = registry["overlay"].map(overlays)
    registry["owner_role"] = overlay_roles.where(overlay_roles.notna(), registry["owner_role"])
    registry["owner_role"] = registry["owner_role"].fillna("Unassigned owner (add the segment to segments.csv)")
    registry["issued_at"] = registry["issued_at"].astype("datetime64[ns, UTC]")
    return registry.sort_values("territory_id", kind="stable").reset_index(drop=True)


class TerritoryRegistryError(ValueError):
    """The stored territory_dim cannot serve as the registry of issued ids."""


def _refuse_inconsistent_registry(registry: pd.DataFrame) -> None:
    # Re-issuing or guessing would silently rename territories: stop and say what to fix instead.
    duplicated_ids = sorted(registry.loc[registry["territory_id"].duplicated(), "territory_id"].unique())
    keyed = registry.dropna(subset=["region", "segment"])
    duplicated_pairs = keyed[keyed.duplicated(["region", "segment"], keep=False)]
    if duplicated_ids or len(duplicated_pairs):
        detail = (
            f"territory_id {', '.join(duplicated_ids)} appear(s) more than once"
            if duplicated_ids
            else "(region, segment) "
            + ", ".join(sorted({f"({r}, {s})" for r, s in zip(duplicated_pairs["region"], duplicated_pairs["segment"])}))
            + " have more than one territory_id"
        )
        raise TerritoryRegistryError(
            f"The stored territory_dim (the registry of issued territory ids) is inconsistent: {detail}. "
            "Restore it from a backup or remove the extra rows by hand, keeping the ids already in use, then re-run."
        )


def territory_ids(regions: pd.Series, segments: pd.Series, territory_dim: pd.DataFrame) -> pd.Series:
    """The territory_id of each (region, segment) (UNASSIGNED when either is unknown or not issued)."""
    lookup = territory_dim.dropna(subset=["region", "segment"]).set_index(["region", "segment"])["territory_id"]
    keys = pd.MultiIndex.from_arrays([regions.to_numpy(dtype=object), segments.to_numpy(dtype=object)])
    ids = lookup.reindex(keys).to_numpy(dtype=object)
    result = pd.Series(ids, index=regions.index, dtype=object)
    return result.where(result.notna(), UNASSIGNED_TERRITORY_ID)
