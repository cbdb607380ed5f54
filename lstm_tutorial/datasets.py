"""Resolve the ``dataset`` option to a dataset file, building it when needed.

``dataset`` may be:

- ``"imdb"``: the cached ``imdb.pkl`` in the data folder; when missing it is
  built from an ``aclImdb`` folder or ``aclImdb_v1.tar.gz`` in that folder,
  and when neither is there the archive is downloaded first;
- a path to an ``aclImdb`` folder or a ``.tar.gz`` of one, or to a corpus in
  another layout of :mod:`lstm_tutorial.corpus` (folder tree, label folders,
  CSV/TSV/JSON Lines file, folder of ``name.LABEL`` files): preprocessed once
  with the default settings and cached in the data folder under a name keyed
  by the source's content and those settings;
- a folder written by ``python -m lstm_tutorial.preprocess`` (it contains one
  ``<name>.pkl`` beside ``<name>.meta.json``);
- a path to a dataset file in the tutorial's format (``.pkl`` or ``.pkl.gz``).

Corpora that need other settings (an encoding, a tokenizer, column names)
are preprocessed with ``python -m lstm_tutorial.preprocess`` first, and its
output folder or ``.pkl`` is passed as the dataset.

The data folder is ``$LSTM_TUTORIAL_DATA`` when set, else ``data/`` of the
source checkout when the package runs from one, else ``./data``.
"""

import hashlib
import json
import logging
import os
from pathlib import Path

from lstm_tutorial.download import IMDB_SHA256, IMDB_URL, download

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
DATASET_SUFFIXES = (".pkl", ".pkl.gz", ".pickle")
IMDB_ARCHIVE_NAME = "aclImdb_v1.tar.gz"
# Bump when preprocessing changes its output, so old caches are rebuilt.
PREPROCESS_VERSION = 2


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


def default_preprocess_settings():
    """Return the preprocessing settings used for a corpus passed straight to training."""
    from lstm_tutorial.preprocess import DEFAULT_SEED, DEFAULT_TEST_PORTION
    from lstm_tutorial.tokenizers import MOSES_DEFAULTS

    return {"tokenizer": MOSES_DEFAULTS, "encoding": "utf-8", "errors": "strict",
            "data_format": None, "text_column": None, "label_column": None,
            "test_portion": DEFAULT_TEST_PORTION, "seed": DEFAULT_SEED}


def source_key(source, settings=None):
    """Return a short hash that changes when the source's content or the settings change.

    A file is hashed whole (a quarter second for the 84 MB archive); a folder
    by the names, sizes and modification times of its files. ``settings``
    (the preprocessing options, JSON-serializable) enter the hash too.
    """
    digest = hashlib.sha256(f"v{PREPROCESS_VERSION}".encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
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
            "aclImdb_v1.tar.gz archive, a corpus folder or file, a folder written by "
            "python -m lstm_tutorial.preprocess, or a .pkl/.pkl.gz dataset file"
        )
    if _has_suffix(path, DATASET_SUFFIXES):
        return path
    if path.is_dir():
        preprocessed = preprocessed_dataset(path)
        if preprocessed is not None:
            logger.info("dataset preprocessed=%s", preprocessed)
            return preprocessed
    # Any other folder or file is a corpus: preprocess it once with the defaults.
    data_dir.mkdir(parents=True, exist_ok=True)
    stem = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    key = source_key(path, default_preprocess_settings())
    return _build_cached(path, data_dir, f"{stem}-{key}")


def preprocessed_dataset(folder):
    """Return the ``<name>.pkl`` of a folder written by the preprocess command, or None.

    Raises
    ------
    ValueError
        When the folder contains several preprocessed datasets.
    """
    found = sorted(meta.with_name(meta.name[: -len(".meta.json")] + ".pkl")
                   for meta in Path(folder).glob("*.meta.json"))
    found = [path for path in found if path.is_file()]
    if len(found) > 1:
        raise ValueError(f"folder {str(folder)!r} contains several datasets "
                         f"({', '.join(path.name for path in found)}); pass the .pkl to use")
    return found[0] if found else None


def dataset_labels(dataset_path):
    """Return the label names saved beside a dataset (index = label id), or None."""
    meta = _sibling_file(dataset_path, ".meta.json")
    if meta is None:
        return None
    try:
        labels = json.loads(meta.read_text(encoding="utf-8")).get("labels")
    except (ValueError, AttributeError) as error:
        logger.warning("meta=%s unreadable (%s); labels are shown as ids", meta, error)
        return None
    return [str(label) for label in labels] if isinstance(labels, list) else None


def dictionary_path(dataset_path):
    """Return the dictionary file that belongs to a dataset file, if it exists."""
    return _sibling_file(dataset_path, ".dict.pkl")


def _sibling_file(dataset_path, suffix):
    """Return ``<stem><suffix>`` beside a ``<stem>.pkl`` dataset file if it exists, else None."""
    dataset_path = Path(dataset_path)
    name = dataset_path.name
    for dataset_suffix in (".pkl.gz", ".pkl", ".pickle"):
        if name.endswith(dataset_suffix):
            candidate = dataset_path.with_name(name[: -len(dataset_suffix)] + suffix)
            return candidate if candidate.is_file() else None
    return None
