"""Resolve the ``dataset`` option to a dataset file, building it when needed.

``dataset`` may be:

- ``"imdb"``: the cached ``imdb.pkl`` in the data folder; when missing it is
  built from an ``aclImdb`` folder or ``aclImdb_v1.tar.gz`` in that folder,
  and when neither is there the archive is downloaded first;
- a path to an ``aclImdb`` folder or a ``.tar.gz`` of one: preprocessed once
  and cached in the data folder under a name keyed by the source's content;
- a path to a dataset file in the tutorial's format (``.pkl`` or ``.pkl.gz``).

The data folder is ``$LSTM_TUTORIAL_DATA`` when set, else ``data/`` of the
source checkout when the package runs from one, else ``./data``.
"""

import hashlib
import logging
import os
from pathlib import Path

from lstm_tutorial.download import IMDB_SHA256, IMDB_URL, download

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
DATASET_SUFFIXES = (".pkl", ".pkl.gz", ".pickle")
IMDB_ARCHIVE_NAME = "aclImdb_v1.tar.gz"
# Bump when preprocessing changes its output, so old caches are rebuilt.
PREPROCESS_VERSION = 1


def default_data_dir():
    """Return the folder where datasets are downloaded and cached."""
    from_env = os.environ.get("LSTM_TUTORIAL_DATA")
    if from_env:
        return Path(from_env)
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data"
    return Path("data")


def _has_suffix(path, suffixes):
    return any(path.name.lower().endswith(suffix) for suffix in suffixes)


def source_key(source):
    """Return a short hash that changes when the source's content changes.

    A file is hashed whole (a quarter second for the 84 MB archive); a folder
    by the names, sizes and modification times of its files.
    """
    digest = hashlib.sha256(f"v{PREPROCESS_VERSION}".encode())
    source = Path(source)
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                              .encode("utf-8", "surrogateescape"))
    else:
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _build_cached(source, data_dir, name):
    from lstm_tutorial.preprocess import preprocess

    dataset_path = data_dir / f"{name}.pkl"
    if dataset_path.is_file():
        logger.info("dataset cached=%s", dataset_path)
        return dataset_path
    logger.info("dataset building=%s from=%s", dataset_path, source)
    preprocess(source, data_dir, name=name)
    return dataset_path


def resolve_dataset(dataset, data_dir=None, *, url=IMDB_URL, sha256=IMDB_SHA256):
    """Return the path of a dataset file for ``dataset``, building it if needed.

    Raises
    ------
    FileNotFoundError
        When ``dataset`` is neither ``"imdb"`` nor an existing path.
    ValueError
        When the path is of a kind this project cannot read.
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()

    if dataset == "imdb":
        cached = data_dir / "imdb.pkl"
        if cached.is_file():
            logger.info("dataset cached=%s", cached)
            return cached
        for candidate in (data_dir / "aclImdb", data_dir / IMDB_ARCHIVE_NAME):
            if candidate.exists():
                data_dir.mkdir(parents=True, exist_ok=True)
                return _build_cached(candidate, data_dir, "imdb")
        data_dir.mkdir(parents=True, exist_ok=True)
        archive = download(url, data_dir / IMDB_ARCHIVE_NAME, sha256=sha256)
        return _build_cached(archive, data_dir, "imdb")

    path = Path(dataset).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"dataset {str(dataset)!r} not found; pass 'imdb', an aclImdb folder, an "
            "aclImdb_v1.tar.gz archive or a .pkl/.pkl.gz dataset file"
        )
    if path.is_dir() or _has_suffix(path, ARCHIVE_SUFFIXES):
        data_dir.mkdir(parents=True, exist_ok=True)
        stem = path.name
        for suffix in ARCHIVE_SUFFIXES:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
        return _build_cached(path, data_dir, f"{stem}-{source_key(path)}")
    if _has_suffix(path, DATASET_SUFFIXES):
        return path
    raise ValueError(
        f"dataset {str(dataset)!r} is neither a folder, a .tar.gz archive nor a .pkl/.pkl.gz "
        "dataset file; pass one of those or 'imdb'"
    )


def dictionary_path(dataset_path):
    """Return the dictionary file that belongs to a dataset file, if it exists."""
    dataset_path = Path(dataset_path)
    name = dataset_path.name
    for suffix in (".pkl.gz", ".pkl", ".pickle"):
        if name.endswith(suffix):
            candidate = dataset_path.with_name(name[: -len(suffix)] + ".dict.pkl")
            return candidate if candidate.is_file() else None
    return None
