"""The dataset registry: ``recforge.data.load(name)``, one :class:`DatasetSpec` per name in :data:`DATASETS`.

Registered: ``ml-100k`` (ratings, users, items with genres; predefined u1..u5, ua, ub splits),
``gowalla`` (the NGCF/LightGCN train/test split), ``frappe`` (the published libFM validation/test
files plus the raw log they came from), ``frappe-pooled`` (the libFM files only) and
``ipinyou-fnn-sample`` (CTR data in libFM format), ``criteo-sample`` (DeepCTR's 200-row Criteo CSV),
``myanimelist2020-sample`` (500 anime-list rows with watching status, episodes and a score:
:mod:`recforge.data.myanimelist`).
Any other interaction log is read with :class:`recforge.data.source.DataSource` (or
:func:`recforge.data.load_file`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.data.interactions import Interactions
from recforge.data.libfm import read_libfm
from recforge.data.sources import Source, locate
from recforge.data.vocabulary import Vocabulary
from recforge.errors import DataError

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)


@dataclass
class Dataset:
    """A loaded dataset.

    Attributes:
        name: Registry name.
        task: ``"rating"``, ``"ranking"`` or ``"ctr"``.
        interactions: All interactions (None for CTR-only data).
        tables: Other tables (CTR features and labels, feature maps).
        path: The folder the files were read from.
        terms: The data's licence terms in one line.
        weights: How implicit values were made (``binary``, ``count``, ``log1p``; None: explicit
            ratings, or not stated).
        notes: What the loader read and what cleaning dropped, one line each
            (:class:`recforge.data.source.DataSource`).
        utility: The formula that made the values from the signals (``log1p(plays) + rating``;
            None: the values are the file's), stated on every result row.
    """

    name: str
    task: str
    interactions: Interactions | None
    tables: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    terms: str = ""
    weights: str | None = None
    notes: list[str] = field(default_factory=list)
    utility: str | None = None
    _splits: dict[str, Callable[[], Any]] = field(default_factory=dict, repr=False)

    @property
    def feedback(self) -> str:
        """``explicit``, or ``implicit`` with its weights (``implicit/log1p``): what every result row states."""
        if self.interactions is None:
            return "ctr"
        if self.interactions.explicit:
            return "explicit"
        return f"implicit/{self.weights}" if self.weights else "implicit"

    @property
    def split_names(self) -> list[str]:
        """Names of the dataset's predefined splits."""
        return list(self._splits)

    def split(self, name: str) -> Any:
        """A predefined split (a :class:`recforge.splits.Split`)."""
        if name not in self._splits:
            avail = ", ".join(self._splits) or "none"
            raise DataError(f"dataset {self.name!r} has no predefined split {name!r}; available: {avail}")
        return self._splits[name]()




@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset: where its files come from, what it is and how it is read.

    Attributes:
        source: Where the files live and how to fetch and check them.
        description: One line for ``recforge data list``.
        task: The task the data serves (``"rating"``, ``"ranking"`` or ``"ctr"``).
        loader: Reads the located folder into a :class:`Dataset`.
        ctr_reader: Name of the function in :mod:`recforge.data.ctr.readers` that turns the
            dataset into a :class:`~recforge.data.ctr.CTRSplit` (None: not usable as CTR data);
            a name, so that the registry does not import the CTR code.
    """

    source: Source
    description: str
    task: str
    loader: Callable[[Path], Dataset]
    ctr_reader: str | None = None


def list_datasets() -> list[tuple[str, str]]:
    """(name, description) of every registered dataset."""
    return [(n, spec.description) for n, spec in DATASETS.items()]


def load(name: str, *, download: bool = True) -> Dataset:
    """Load a registered dataset by name.

    Files are looked up in ``$RECFORGE_DATA_DIR/<name>/``, then the user cache, then downloaded
    from the publisher (where one serves the files) with a SHA-256 check.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    return spec.loader(locate(spec.source, download=download))


def _registered(name: str, inter: Interactions | None, folder: Path, tables: dict[str, Any] | None = None) -> Dataset:
    """A :class:`Dataset` of a registered name, with the task and terms of its :class:`DatasetSpec`."""
    spec = DATASETS[name]
    return Dataset(name, spec.task, inter, tables or {}, folder, spec.source.terms)


def _read_ml100k_ratings(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"],
                     dtype=np.int64)
    return df


def _load_ml100k(folder: Path) -> Dataset:
    ratings = _read_ml100k_ratings(folder / "u.data")
    users_df = pd.read_csv(
        folder / "u.user", sep="|", header=None, names=["user_id", "age", "gender", "occupation", "zip_code"],
        dtype={"zip_code": str},
    ).set_index("user_id")
    item_cols = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
    items_df = pd.read_csv(folder / "u.item", sep="|", header=None, names=item_cols, encoding="latin-1")
    items_df = items_df.drop(columns=["video_release_date"]).set_index("item_id")
    items_df["release_date"] = pd.to_datetime(items_df["release_date"], format="%d-%b-%Y", errors="coerce")
    items_df["year"] = items_df["release_date"].dt.year.astype("Int64")
    items_df["genres"] = items_df[list(ML100K_GENRES)].apply(
        lambda r: "|".join(g for g in ML100K_GENRES if r[g] == 1), axis=1
    )
    inter = Interactions.from_dataframe(
        ratings, "user_id", "item_id", "rating", "timestamp", source=str(folder / "u.data"), line_offset=1,
        name="ml-100k",
    ).with_features(users_df, items_df)
    ds = _registered("ml-100k", inter, folder)
    for split in ("u1", "u2", "u3", "u4", "u5", "ua", "ub"):
        ds._splits[split] = _predefined(inter, folder, split)
    return ds


def _predefined(inter: Interactions, folder: Path, split: str) -> Callable[[], Any]:
    def make() -> Any:
        from recforge.data.split import Split

        parts = {}
        for part in ("base", "test"):
            df = _read_ml100k_ratings(folder / f"{split}.{part}")
            sub = Interactions.from_dataframe(
                df, "user_id", "item_id", "rating", "timestamp", users=inter.users, items=inter.items,
                source=str(folder / f"{split}.{part}"), line_offset=1, name=f"ml-100k/{split}.{part}",
            )
            parts[part] = sub.with_features(inter.user_features, inter.item_features)
        return Split(train=parts["base"], test=parts["test"], name=f"ml-100k/{split}")

    return make


def read_user_item_lists(path: Path) -> pd.DataFrame:
    """Read ``user item item ...`` lines (the NGCF/LightGCN format) into (user_id, item_id) rows."""
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                nums = np.asarray(parts, dtype=np.int64)
            except ValueError:
                raise DataError(f"{path}: line {lineno}: ids must be integers") from None
            users.append(np.full(len(nums) - 1, nums[0]))
            items.append(nums[1:])
    if not users:
        raise DataError(f"{path}: the file is empty")
    return pd.DataFrame({"user_id": np.concatenate(users), "item_id": np.concatenate(items)})


def _load_gowalla(folder: Path) -> Dataset:
    train = read_user_item_lists(folder / "train.txt")
    test = read_user_item_lists(folder / "test.txt")
    both = pd.concat([train, test], ignore_index=True)
    users = Vocabulary(both["user_id"].to_numpy(), "user")
    items = Vocabulary(both["item_id"].to_numpy(), "item")
    inter = Interactions.from_dataframe(both, users=users, items=items, source=str(folder), name="gowalla")
    n_train = len(train)
    ds = _registered("gowalla", inter, folder)

    def given() -> Any:
        from recforge.data.split import Split

        mask = np.zeros(len(inter), bool)
        mask[:n_train] = True
        return Split(train=inter.subset(mask, "gowalla/train"), test=inter.subset(~mask, "gowalla/test"),
                     name="gowalla/given")

    ds._splits["given"] = given
    return ds


def _frappe_libfm_tables(folder: Path) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for part in ("validation", "test"):
        y, x = read_libfm(folder / f"frappe.{part}.libfm", labels=(-1.0, 1.0))
        tables[part] = (y, x)
    fields = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city")
    tables["fields"] = fields
    tables["n_features"] = 5382
    return tables


def _load_frappe(folder: Path) -> Dataset:
    from recforge.data.ctr.frappe import ARCHIVE, read_frappe_archive

    tables = _frappe_libfm_tables(folder)
    # locate() has checked the archive's checksum (data/checksums/frappe.txt)
    tables["log"], tables["meta"] = read_frappe_archive(folder / ARCHIVE, check=False)
    return _registered("frappe", None, folder, tables)


def _load_frappe_pooled(folder: Path) -> Dataset:
    return _registered("frappe-pooled", None, folder, _frappe_libfm_tables(folder))


def _load_ipinyou(folder: Path) -> Dataset:
    tables: dict[str, Any] = {}
    for part in ("train", "test"):
        tables[part] = read_libfm(folder / f"{part}.fm.txt", labels=(0.0, 1.0))
    featindex = pd.read_csv(folder / "featindex.fm.txt", sep="\t", header=None, names=["feature", "index"],
                            quoting=3, keep_default_na=False)
    tables["featindex"] = featindex
    tables["n_features"] = int(featindex["index"].max()) + 1
    tables["fields"] = tuple(dict.fromkeys(featindex["feature"].str.split(":").str[0]))
    return _registered("ipinyou-fnn-sample", None, folder, tables)


def _load_criteo(folder: Path) -> Dataset:
    path = folder / "criteo_sample.txt"
    df = pd.read_csv(path)
    need = ["label", *[f"I{j}" for j in range(1, 14)], *[f"C{j}" for j in range(1, 27)]]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return _registered("criteo-sample", None, folder, {"frame": df})


def _load_myanimelist(folder: Path) -> Dataset:
    from recforge.data.myanimelist import read_myanimelist

    ds = _registered("myanimelist2020-sample", read_myanimelist(folder / "animelist.csv"), folder)
    ds.notes.append("implicit log (values 1.0); signals episodes, watching/completed/on_hold/dropped/plan_to_watch "
                    "and rating (NaN where the score is 0): a format fixture of 3 users, not for accuracy claims")
    return ds


# ---------------------------------------------------------------------------------------- the registry
DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec(
        source=Source(
            "ml-100k",
            ("u.data", "u.item", "u.user", "u.genre", "u1.base", "u1.test", "u2.base", "u2.test", "u3.base",
             "u3.test", "u4.base", "u4.test", "u5.base", "u5.test", "ua.base", "ua.test", "ub.base", "ub.test"),
            url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            zip_prefix="ml-100k/",
            homepage="https://grouplens.org/datasets/movielens/100k/",
            terms="GroupLens: research use, acknowledge in publications, no redistribution, no commercial use",
        ),
        description="MovieLens 100K: 100,000 ratings 1-5 by 943 users on 1,682 movies, with user and movie features",
        task="rating",
        loader=_load_ml100k,
        ctr_reader="movielens_ctr",
    ),
    "gowalla": DatasetSpec(
        source=Source(
            "gowalla",
            ("train.txt", "test.txt"),
            homepage="https://snap.stanford.edu/data/loc-gowalla.html (NGCF/LightGCN preprocessing)",
            terms="SNAP loc-gowalla; cite Cho, Myers and Leskovec (KDD 2011)",
        ),
        description="Gowalla check-ins, NGCF/LightGCN 10-core train/test split (implicit)",
        task="ranking",
        loader=_load_gowalla,
        ctr_reader=None,
    ),
    "frappe": DatasetSpec(
        source=Source(
            "frappe",
            ("frappe.validation.libfm", "frappe.test.libfm", "Mobile_Frappe.zip"),
            homepage="https://github.com/hexiangnan/neural_factorization_machine (data/frappe) and "
                     "http://baltrunas.info/research-menu/frappe (Mobile_Frappe.zip)",
            terms="Frappe (Baltrunas et al. 2015): research use, cite frappe15, no redistribution",
        ),
        description="Frappe context-aware app usage on the published NFM split: training part rebuilt from the "
                    "raw log, the published validation and test files (10 fields; app metadata)",
        task="ctr",
        loader=_load_frappe,
        ctr_reader="frappe_ctr",
    ),
    "frappe-pooled": DatasetSpec(
        source=Source(
            "frappe",
            ("frappe.validation.libfm", "frappe.test.libfm"),
            homepage="https://github.com/hexiangnan/neural_factorization_machine (data/frappe)",
            terms="Frappe (Baltrunas et al. 2015): research use, cite frappe15, no redistribution",
        ),
        description="Frappe's published validation+test files pooled and split 8:1:1 (the variant used before "
                    "the raw log was available; numbers not comparable to the published split)",
        task="ctr",
        loader=_load_frappe_pooled,
        ctr_reader="frappe_pooled_ctr",
    ),
    "ipinyou-fnn-sample": DatasetSpec(
        source=Source(
            "ipinyou-fnn-sample",
            ("train.fm.txt", "test.fm.txt", "featindex.fm.txt"),
            homepage="https://github.com/wnzhang/deep-ctr (data/)",
            terms="iPinYou RTB sample (FNN paper): research use only",
        ),
        description="iPinYou RTB click-log sample from the FNN paper (16 fields)",
        task="ctr",
        loader=_load_ipinyou,
        ctr_reader="ipinyou_ctr",
    ),
    "criteo-sample": DatasetSpec(
        source=Source(
            "criteo-sample",
            ("criteo_sample.txt",),
            homepage="https://github.com/shenweichen/DeepCTR (examples/criteo_sample.txt)",
            terms="Criteo Display Advertising Challenge sample; no terms ship with it",
        ),
        description="200-row Criteo display-ads sample (13 numeric + 26 categorical); schema smoke test",
        task="ctr",
        loader=_load_criteo,
        ctr_reader="criteo_ctr",
    ),
    "myanimelist2020-sample": DatasetSpec(
        source=Source(
            "myanimelist2020-sample",
            ("animelist.csv",),
            homepage="https://github.com/Hernan4444/MyAnimeList-Database (data/animelist.csv, the 500-line sample)",
            terms="no licence; acknowledge MyAnimeList (the publisher's readme)",
        ),
        description="MyAnimeList 2020 sample: 499 anime-list rows of 3 users, watching status + episodes + a 1-10 "
                    "score on the same row (implicit-to-explicit format fixture)",
        task="rating",
        loader=_load_myanimelist,
    ),
}
