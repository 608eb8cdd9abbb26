"""Candidate pairs for matching: only records that share a blocking key are ever compared.

Comparing every pair is O(n²): the replaced system took 10 s for 4,000 clients and would take
hours at 100k. Instead each record gets a few keys, and only records sharing a key are compared:

* ``same name``: the whole normalised name ("atlas capital partners"): case, punctuation, legal
  form and abbreviation variants meet here;
* ``same name without spaces``: "bluewater capital" and "blue water capital";
* ``same first word``: "atlas": a typo or a different word later in the name;
* ``first word one edit apart``: the first word as it is and with one letter deleted, for each of
  its letters, plus the rest of the name ("atlas|capital partners", "tlas|capital partners", "alas|...").
  Two words one edit apart (a letter wrong, missing, added, or two letters swapped) always share one
  of these variants (the "symmetric delete" trick of spelling correctors), so a typo in the first
  word still pairs the records, while keys stay specific: the blocks stay small as the book grows.

A key shared by more than ``max_block_size`` records ("first" as a first word in some books) is too
common to say anything: that block is skipped, and counted, rather than compared all-pairs. A large
block of one *exact* name is different (a hundred records of "Zentra Capital" are likely one
organisation): its records are chained, each paired with the next, so they can still cluster (and
the clustering guard then checks every pair of the cluster). Pairs
are built per block size with ``numpy.triu_indices`` over records sorted by key: no Python loop
per block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_territory.logic.matching.fields import FIELDS
from crm_territory.logic.matching.names import split_first_word

MAX_BLOCK_SIZE = 100
EXACT_NAME_KEYS = ("same name", "same name without spaces")  # large blocks of these are chained, not skipped
MAX_DELETION_POSITIONS = 20  # letters of the first word that get a deletion variant (longer words: the first 20)
MIN_TYPO_WORD = 4  # a shorter first word one letter off is another word: no deletion variants


@dataclass(frozen=True)
class CandidatePairs:
    a: np.ndarray  # record positions, a < b
    b: np.ndarray
    blocked_by: np.ndarray  # the first blocking key that paired them (object: its name)
    skipped_blocks: pd.DataFrame  # key_name, key, records, handled ("skipped" | "chained"): blocks larger than max_block_size
    pairs_by_key: dict[str, int] = field(default_factory=dict)  # pairs each key found (a pair may be found by several)

    def __len__(self) -> int:
        return len(self.a)


@dataclass(frozen=True)
class BlockingKey:
    """One blocking key over the book: (record, block) rows; a record sits at most once in a block."""

    records: np.ndarray  # record positions (a record may sit in several blocks of one key)
    blocks: np.ndarray  # block code of each row (int64; equal codes = one block)
    describe: Callable[[np.ndarray], np.ndarray]  # block codes -> their key texts (for reports)

    @classmethod
    def of(cls, records: np.ndarray, keys: pa.Array) -> BlockingKey:
        """Block codes by hashing the keys in Arrow (C++), not as Python strings; missing keys dropped."""
        present = pc.is_valid(keys).to_numpy(zero_copy_only=False)
        encoded = pc.dictionary_encode(pc.filter(keys, pa.array(present)))
        texts = encoded.dictionary
        return cls(
            records[present],
            encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            lambda codes: pc.take(texts, pa.array(codes)).to_numpy(zero_copy_only=False),
        )


#: The parts a blocking pass may combine: parts of the normalised name, and the optional fields (normalised).
NAME_PARTS = ("name", "name_without_spaces", "first_word", "last_word", "initial")
FIELD_PARTS = ("tax_id", "date_of_birth", "postal_code", "domain", "phone", "address", "region")
PARTS = NAME_PARTS + FIELD_PARTS
# passes that are not a combination of parts
ONE_EDIT_PASS = "first word one edit apart"  # the first word's deletion variants
ROTATED_PASS = "same words, one moved to the other end"  # a person filed surname first
TAX_ID_EDIT_PASS = "tax id one edit apart"  # a mistyped registration id


@dataclass(frozen=True)
class BlockingPass:
    """Records agreeing on every one of ``parts`` are compared (a record missing any part gets no key in this pass)."""

    name: str
    parts: tuple[str, ...]


#: The passes run when the comparisons file names none, in this order (a pair is credited to the first that finds it).
DEFAULT_PASSES: tuple[BlockingPass, ...] = (
    BlockingPass("same name", ("name",)),
    BlockingPass("same name without spaces", ("name_without_spaces",)),
    BlockingPass("same first word", ("first_word",)),
    BlockingPass(ONE_EDIT_PASS, ()),
    BlockingPass("same tax id", ("tax_id",)),
    # individuals: the date of birth with the initial, or with the postcode when given and family names are swapped
    BlockingPass("same date of birth and initial", ("date_of_birth", "initial")),
    BlockingPass("same date of birth and postcode", ("date_of_birth", "postal_code")),
    BlockingPass("same domain", ("domain",)),
    BlockingPass("same phone", ("phone",)),
    BlockingPass("same last word and postcode", ("last_word", "postal_code")),
    # "smith jane" / "jane smith", whatever else differs: people's names, which come with the optional fields
    # (a date of birth, a postcode): run only when the book has one, so organisation books keep their passes
    BlockingPass(ROTATED_PASS, ()),
    BlockingPass(TAX_ID_EDIT_PASS, ("tax_id",)),
)
BUILT_IN_PASSES = {p.name: p for p in DEFAULT_PASSES}


def blocking_keys(
    name: pd.Series, fields: pd.DataFrame | None = None, passes: tuple[BlockingPass, ...] = DEFAULT_PASSES
) -> dict[str, BlockingKey]:
    """Each pass's name -> its blocks over the records (positions 0..n-1), in the order of ``passes``.

    ``name``: the normalised names (None: no name keys). ``fields``: the optional fields, normalised
    (``fields.normalise_fields``: tax_id, date_of_birth, postal_code, domain, phone; and region), positions
    lining up with ``name``. A pass over a part no record has gives no key and is not listed: a book
    without the optional fields gets the four name passes only, whatever the comparisons file lists.
    Three passes are not combinations of parts: the first word one edit apart (its deletion variants), the
    same words with the last moved to the front (a person filed surname first: "smith jane" / "jane smith"),
    and a tax id one edit apart (a mistyped id, found by deletion variants as for the first word).
    """
    positions = np.arange(len(name), dtype=np.int64)
    names = pa.array(name.to_numpy(dtype=object), pa.string(), from_pandas=True)
    words, rest = split_first_word(name)
    cache: dict[str, pa.Array | None] = {}

    def part(p: str) -> pa.Array | None:
        """The part as an Arrow string array (None: no record has it), built once however many passes use it."""
        if p not in cache:
            if p == "name":
                cache[p] = names
            elif p == "name_without_spaces":
                cache[p] = pc.replace_substring(names, " ", "")
            elif p == "first_word":
                cache[p] = words
            elif p == "last_word":  # a surname, for individuals written "given family"
                cache[p] = pc.replace_substring_regex(names, r"^.* ", "")
            elif p == "initial":
                cache[p] = pc.utf8_slice_codeunits(names, 0, 1)
            elif fields is not None and p in fields.columns and fields[p].notna().any():
                values = fields[p].reset_index(drop=True).astype("string").to_numpy(dtype=object, na_value=None)
                cache[p] = pa.array(values, pa.string())
            else:
                cache[p] = None
        return cache[p]

    keys = {}
    for blocking_pass in passes:
        if blocking_pass.name == ONE_EDIT_PASS:
            keys[ONE_EDIT_PASS] = one_edit_key(words, rest.fill_null(""))
            continue
        if blocking_pass.name == ROTATED_PASS:
            if any(part(f) is not None for f in FIELDS):
                keys[ROTATED_PASS] = _rotated_key(positions, names)
            continue
        if blocking_pass.name == TAX_ID_EDIT_PASS:
            # only the variants: the id itself is the "same tax id" pass
            if (ids := part("tax_id")) is not None:
                keys[TAX_ID_EDIT_PASS] = _deletion_key(positions, ids)
            continue
        values = [part(p) for p in blocking_pass.parts]
        if any(v is None for v in values):
            continue
        joined = values[0] if len(values) == 1 else pc.binary_join_element_wise(*values, "|")
        # "" is no value (a name normalised to nothing): it must not pair every such record
        joined = pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), joined) if len(values) > 1 else joined
        if any(p in FIELD_PARTS for p in blocking_pass.parts) and not pc.any(pc.is_valid(joined)).as_py():
            continue  # no record has all of its parts: not run, not listed
        keys[blocking_pass.name] = BlockingKey.of(positions, joined)
    return keys


def _deletion_key(positions: np.ndarray, values: pa.Array) -> BlockingKey:
    """Each value and its one-deletion variants in one key: two values one edit apart share one of them."""
    length = pc.utf8_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    at_parts, variant_parts = [np.flatnonzero(length > 0)], [pc.take(values, np.flatnonzero(length > 0))]
    for i in range(min(int(length.max(initial=0)), MAX_DELETION_POSITIONS)):
        at = np.flatnonzero(length > i)
        chosen = pc.take(values, at)
        at_parts.append(at)
        variant_parts.append(
            pc.binary_join_element_wise(pc.utf8_slice_codeunits(chosen, 0, i), pc.utf8_slice_codeunits(chosen, i + 1), "")
        )
    at = np.concatenate(at_parts)
    variants = pa.chunked_array(variant_parts, pa.string()).combine_chunks()
    # a value's variants may repeat ("1123": deleting either 1 gives "123"): one row per (record, block)
    frame = pd.DataFrame({"r": positions[at], "v": pc.dictionary_encode(variants).indices.to_numpy(zero_copy_only=False)})
    frame = frame.drop_duplicates()
    texts = pc.dictionary_encode(variants).dictionary
    return BlockingKey(
        frame["r"].to_numpy(np.int64),
        frame["v"].to_numpy(np.int64),
        lambda codes: pc.take(texts, pa.array(codes)).to_numpy(zero_copy_only=False),
    )


def _rotated_key(positions: np.ndarray, names: pa.Array) -> BlockingKey:
    """Each name, and (names of several words) the name with its last word moved to the front, in one key: "smith jane"
    meets "jane smith", "smith jane mary" meets "jane mary smith" (a person filed surname first). Moving the first word
    to the end is the same rotation seen from the other record, so one is enough."""
    last = pc.replace_substring_regex(names, r"^.* ", "")
    front = pc.replace_substring_regex(names, r" [^ ]*$", "")
    several = pc.fill_null(pc.match_substring(names, " "), False).to_numpy(zero_copy_only=False)
    at = np.flatnonzero(several)
    rotated = pc.binary_join_element_wise(pc.take(last, at), pc.take(front, at), " ")
    distinct = ~pc.equal(rotated, pc.take(names, at)).to_numpy(zero_copy_only=False)  # "anna anna": once per block
    at = at[distinct]
    return BlockingKey.of(
        np.concatenate([positions, positions[at]]),
        pa.chunked_array([names, pc.filter(rotated, pa.array(distinct))], pa.string()).combine_chunks(),
    )


def one_edit_key(words: pa.Array, rest: pa.Array) -> BlockingKey:
    """(first word or one of its deletion variants, other words) as integer codes: no key strings are built.

    Deleting either of two equal neighbouring letters gives the same variant ("anna": "ana" twice),
    so a position whose letter repeats the previous one is skipped: one row per (record, block).
    """
    length = pc.utf8_length(words).fill_null(0).to_numpy(zero_copy_only=False)
    eligible = length >= MIN_TYPO_WORD
    at_parts = [np.flatnonzero(eligible)]
    variant_parts = [pc.take(words, at_parts[0])]  # the word itself, to meet the same word with a letter more
    previous_letter = None
    for i in range(min(int(length.max(initial=0)), MAX_DELETION_POSITIONS)):
        letter = pc.utf8_slice_codeunits(words, i, i + 1)
        take = eligible & (length > i)
        if previous_letter is not None:
            take &= ~pc.equal(letter, previous_letter).fill_null(False).to_numpy(zero_copy_only=False)
        previous_letter = letter
        at = np.flatnonzero(take)
        if len(at):
            chosen = pc.take(words, at)
            at_parts.append(at)
            variant_parts.append(
                pc.binary_join_element_wise(pc.utf8_slice_codeunits(chosen, 0, i), pc.utf8_slice_codeunits(chosen, i + 1), "")
            )
    at = np.concatenate(at_parts)
    # a chunked array is encoded against one dictionary without first copying the chunks into one array
    variants = pc.dictionary_encode(pa.chunked_array(variant_parts, pa.string()))
    del at_parts, variant_parts  # a million names make ~9 million variants: free them before the next step
    others = pc.dictionary_encode(rest)
    other_code = others.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    width = max(len(others.dictionary), 1)
    variant_texts, other_texts = (
        variants.chunks[-1].dictionary if variants.num_chunks else pa.array([], pa.string()),
        others.dictionary,
    )

    def describe(codes: np.ndarray) -> np.ndarray:
        variant = pc.take(variant_texts, pa.array(codes // width)).to_numpy(zero_copy_only=False)
        other = pc.take(other_texts, pa.array(codes % width)).to_numpy(zero_copy_only=False)
        return np.char.add(np.char.add(variant.astype(str), "|"), other.astype(str)).astype(object)

    variant_code = np.concatenate(
        [np.zeros(0, np.int64)] + [chunk.indices.to_numpy(zero_copy_only=False).astype(np.int64) for chunk in variants.chunks]
    )
    block = variant_code * width + other_code[at]
    return BlockingKey(at, block, describe)


def candidate_pairs(keys: Mapping[str, BlockingKey], n: int, max_block_size: int = MAX_BLOCK_SIZE) -> CandidatePairs:
    """Every pair of records sharing at least one key, once, labelled by the first key (in order) that paired them."""
    codes, sources, skipped, found = [], [], [], {}
    for index, (key_name, key) in enumerate(keys.items()):
        chain = key_name in EXACT_NAME_KEYS
        a, b, too_large, sizes = pairs_within_blocks(key.blocks, key.records, max_block_size, chain_large=chain)
        # two records may share several blocks of one key (variants of one word): each pair counted once
        code = np.unique(a * n + b)
        found[key_name] = len(code)
        codes.append(code)
        sources.append(np.full(len(code), index, dtype=np.int8))
        if len(too_large):
            texts = key.describe(too_large)
            skipped.append(
                pd.DataFrame(
                    {
                        "key_name": key_name,
                        "key": texts,
                        "records": sizes.astype("int64"),
                        "handled": "chained" if chain else "skipped",
                    }
                )
            )
    code = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    source = np.concatenate(sources) if sources else np.zeros(0, np.int8)
    # np.unique keeps the first occurrence's index: the earliest key in the order given
    code, first = np.unique(code, return_index=True)
    names = np.array(list(keys), dtype=object)
    skipped_blocks = (
        pd.concat(skipped, ignore_index=True)
        if skipped
        else pd.DataFrame(
            {c: pd.Series(dtype="int64" if c == "records" else object) for c in ["key_name", "key", "records", "handled"]}
        )
    )
    return CandidatePairs(
        a=code // max(n, 1),
        b=code % max(n, 1),
        blocked_by=names[source[first]],
        skipped_blocks=skipped_blocks,
        pairs_by_key=found,
    )


def pairs_within_blocks(
    blocks: np.ndarray, records: np.ndarray, max_block_size: int, chain_large: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a < b) of the records sharing a block (each record at most once per block).

    Returns (a, b, codes of the blocks larger than max_block_size, their sizes). Those blocks give no
    pairs, or with ``chain_large`` each record paired with the next. Block codes may be any int64s.
    """
    blocks = np.asarray(blocks, dtype=np.int64)
    order = np.argsort(blocks, kind="stable")
    ordered = blocks[order]
    members = np.asarray(records, dtype=np.int64)[order]  # grouped by block
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(ordered)])
    a_parts, b_parts = [], []
    for size in np.unique(sizes[(sizes >= 2) & (sizes <= max_block_size)]):
        first, second = np.triu_indices(int(size), k=1)
        block_starts = starts[sizes == size]
        a_parts.append(members[(block_starts[:, None] + first[None, :]).ravel()])
        b_parts.append(members[(block_starts[:, None] + second[None, :]).ravel()])
    too_large = sizes > max_block_size
    if chain_large and too_large.any():
        in_large = np.repeat(too_large, sizes)
        step = np.flatnonzero(in_large[:-1] & (ordered[1:] == ordered[:-1]))
        a_parts.append(members[step])
        b_parts.append(members[step + 1])
    if not a_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), ordered[starts[too_large]], sizes[too_large]
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    return np.minimum(a, b), np.maximum(a, b), ordered[starts[too_large]], sizes[too_large]
