"""Shared fixtures: the real review archive and small hand-made datasets."""

import os
import pickle
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHIVE_NAME = "aclImdb-labeled.tar.gz"


def find_real_archive():
    """Locate the labelled aclImdb archive: $LSTM_TUTORIAL_ARCHIVE or ../shared/data."""
    from_env = os.environ.get("LSTM_TUTORIAL_ARCHIVE")
    candidates = [Path(from_env)] if from_env else []
    for parent in (REPO_ROOT, *REPO_ROOT.parents):
        candidates.append(parent / "shared" / "data" / ARCHIVE_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def real_archive():
    """Path of the real Large Movie Review Dataset archive (50,000 labelled reviews)."""
    archive = find_real_archive()
    if archive is None:
        pytest.skip(f"{ARCHIVE_NAME} not found beside the checkout (../shared/data) "
                    "and LSTM_TUTORIAL_ARCHIVE is not set")
    return archive


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory):
    """A data folder shared by the tests of one session (LSTM_TUTORIAL_DATA for commands)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def real_dataset(real_archive, real_data_dir):
    """The real archive preprocessed once per session, cached as ``train_lstm`` caches it."""
    from lstm_tutorial.datasets import resolve_dataset

    return resolve_dataset(str(real_archive), real_data_dir)


def write_dataset(path, train, test):
    """Write two pickles (train then test) in the tutorial's dataset format."""
    with open(path, "wb") as handle:
        pickle.dump(train, handle)
        pickle.dump(test, handle)
    return path


@pytest.fixture
def tiny_dataset(tmp_path):
    """A 40-review, two-class dataset whose label is readable from the ids."""
    train_x, train_y = [], []
    for index in range(40):
        label = index % 2
        length = 3 + index % 7
        word = 2 + label
        train_x.append([word] * length)
        train_y.append(label)
    test = ([[2, 2, 2], [3, 3, 3, 3], [2, 5, 2], [3, 6]], [0, 1, 0, 1])
    return write_dataset(tmp_path / "tiny.pkl", (train_x, train_y), test)


@pytest.fixture(scope="session")
def tiny_reviews(tmp_path_factory):
    """A small aclImdb-style folder of raw reviews, preprocessed into ``tiny.*`` files.

    Returns a namespace with ``folder`` (the raw reviews), ``dataset``
    (``tiny.pkl``), ``dictionary`` (``tiny.dict.pkl``) and ``meta``.
    """
    from types import SimpleNamespace

    from lstm_tutorial.preprocess import preprocess
    from reviews_corpus import write_reviews_folder

    root = tmp_path_factory.mktemp("tiny_reviews")
    folder = write_reviews_folder(root / "aclImdb")
    preprocess(folder, root, name="tiny", workers=1)
    return SimpleNamespace(folder=folder, dataset=root / "tiny.pkl",
                           dictionary=root / "tiny.dict.pkl", meta=root / "tiny.meta.json")


@pytest.fixture(scope="session")
def tiny_reviews_model(tiny_reviews, tmp_path_factory):
    """A model trained on ``tiny_reviews`` (dim_proj 8, NUMBA, whole test set evaluated)."""
    from lstm_tutorial import train_lstm
    from reviews_corpus import TINY_N_WORDS

    path = tmp_path_factory.mktemp("tiny_model") / "lstm_model.npz"
    train_lstm(dim_proj=8, max_epochs=300, validFreq=35, saveFreq=10000, dispFreq=10000,
               batch_size=16, n_words=TINY_N_WORDS, dataset=str(tiny_reviews.dataset),
               saveto=str(path), mode="NUMBA", valid_portion=0.1, test_size=-1)
    return path
