"""Load a dataset in the tutorial's pickle format and turn batches into arrays.

A dataset file contains two consecutive pickles, ``(train_x, train_y)`` then
``(test_x, test_y)``. Each ``x`` is a list of reviews, each review a list of
word ids: 0 is padding, 1 is an unknown word and real words start at 2. Each
``y`` is a list of integer labels.
"""

import gzip
import io
import itertools
import logging
import pickle
import zlib
from pathlib import Path

import numpy as np

from lstm_tutorial.fileio import DataError

logger = logging.getLogger(__name__)

# Globals a dataset or dictionary pickle may name. Lists, tuples, dicts, ints
# and strings need none; NumPy arrays and scalars (some old dataset files store
# labels that way) need these. Anything else is rejected, because unpickling an
# arbitrary global can run code.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
    ("__builtin__", "set"),
    ("builtins", "set"),
    # NumPy arrays pickled by Python 3 with protocol 2 store their bytes this way.
    ("_codecs", "encode"),
}


# Exceptions that unpickling damaged or foreign bytes can raise.
_UNPICKLING_ERRORS = (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError,
                      AttributeError, ImportError, IndexError, KeyError, MemoryError,
                      UnicodeDecodeError, gzip.BadGzipFile, RecursionError, OverflowError,
                      zlib.error)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a dataset file")


def safe_pickle_load(handle):
    """Unpickle one object that may only hold lists, dicts, numbers, strings and arrays.

    ``encoding="latin1"`` lets files written by Python 2 load; their byte
    strings come back as ``str``.
    """
    return _SafeUnpickler(handle, encoding="latin1").load()


def open_maybe_gzip(path):
    """Open ``path`` for reading bytes, gunzipping it when its name ends in ``.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_dataset_file(path):
    """Read the two pickles of a dataset file and check their shape.

    Returns
    -------
    train, test : tuple of (list of list of int, list of int)

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    DataError
        When the file is truncated, is not in the tutorial's format, or has
        labels and sequences of different lengths.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset file {str(path)!r} not found; pass an existing .pkl or .pkl.gz "
            "file, an aclImdb folder or archive, or 'imdb'"
        )
    try:
        with open_maybe_gzip(path) as raw:
            # Reading everything first turns a truncated gzip stream into one error.
            handle = io.BytesIO(raw.read())
        train = safe_pickle_load(handle)
    except _UNPICKLING_ERRORS as error:
        raise _unreadable_dataset(path, error) from error
    _check_pair(train, "train", path)
    try:
        test = safe_pickle_load(handle)
    except _UNPICKLING_ERRORS as error:
        raise _unreadable_dataset(path, error) from error
    return _check_split(train, "train", path), _check_split(test, "test", path)


def _unreadable_dataset(path, error):
    if isinstance(error, PermissionError):
        return DataError(f"dataset file {str(path)!r} cannot be read ({error}); check its "
                         "permissions")
    return DataError(
        f"dataset file {str(path)!r} is truncated or not in the tutorial's format "
        f"(two pickles, (train_x, train_y) then (test_x, test_y)): {error}; "
        "rebuild it with 'python -m lstm_tutorial.preprocess' or pass the aclImdb source"
    )


def _check_pair(split, name, path):
    if not (isinstance(split, (tuple, list)) and len(split) == 2):
        raise DataError(
            f"dataset file {str(path)!r}: the {name} pickle must be a pair (x, y), "
            f"found {type(split).__name__}; rebuild it with 'python -m lstm_tutorial.preprocess'"
        )


def _integer(value):
    """Return ``value`` as an int, rejecting strings and floats with a fraction."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{value!r} is not an integer")
    as_int = int(value)
    if as_int != value:
        raise ValueError(f"{value!r} is not an integer")
    return as_int


def _id_lists(seqs):
    """Return ``seqs`` as lists of int, converting only when some id is not an int."""
    seqs = list(seqs)
    if all(type(seq) is list for seq in seqs) and \
            set(map(type, itertools.chain.from_iterable(seqs))) <= {int}:
        return seqs
    return [[_integer(word) for word in seq] for seq in seqs]


def _check_split(split, name, path):
    _check_pair(split, name, path)
    seqs, labels = split
    try:
        seqs = _id_lists(seqs)
        labels = [_integer(label) for label in labels]
    except (TypeError, ValueError, OverflowError) as error:
        raise DataError(
            f"dataset file {str(path)!r}: the {name} set must hold lists of integer ids "
            f"and integer labels ({error}); rebuild it with 'python -m lstm_tutorial.preprocess'"
        ) from error
    if len(seqs) != len(labels):
        raise DataError(
            f"dataset file {str(path)!r}: the {name} set has {len(seqs)} sequences but "
            f"{len(labels)} labels; each sequence needs exactly one label"
        )
    if min(itertools.chain.from_iterable(seqs), default=0) < 0:
        raise DataError(f"dataset file {str(path)!r}: the {name} set contains negative word ids; "
                        "word ids start at 0")
    return seqs, labels


def prepare_data(seqs, labels, maxlen=None):
    """Pad a batch of id lists into a time-major matrix and its mask.

    Parameters
    ----------
    seqs : list of list of int
        One list of word ids per example.
    labels : list of int
    maxlen : int, optional
        Keep only the examples with ``len(seq) < maxlen`` (strictly shorter).
        Longer ones are dropped, not cut.

    Returns
    -------
    x : ndarray of int64, shape (longest, n_samples)
        Word ids, time along the rows, zero padded::

            x = [[w00 w10 w20]      mask = [[1 1 1]
                 [w01 w11 w21]              [1 1 1]
                 [w02  0  w22]              [1 0 1]
                 [ 0   0  w23]]             [0 0 1]]

        where ``wij`` is word ``j`` of example ``i``.
    mask : ndarray of floatX, same shape
        1.0 on real tokens, 0.0 on padding.
    labels : list of int
        The labels of the examples kept.

    When ``maxlen`` removes every example all three are ``None``, as in the
    original tutorial.
    """
    import pytensor  # floatX is a PyTensor setting

    lengths = [len(seq) for seq in seqs]
    if maxlen is not None:
        kept = [(seq, label, length) for seq, label, length in zip(seqs, labels, lengths)
                if length < maxlen]
        if not kept:
            return None, None, None
        seqs = [seq for seq, _, _ in kept]
        labels = [label for _, label, _ in kept]
        lengths = [length for _, _, length in kept]

    n_samples = len(seqs)
    longest = max(lengths) if lengths else 0
    x = np.zeros((longest, n_samples), dtype="int64")
    mask = np.zeros((longest, n_samples), dtype=pytensor.config.floatX)
    for index, seq in enumerate(seqs):
        x[: lengths[index], index] = seq
        mask[: lengths[index], index] = 1.0
    return x, mask, labels


def load_data(path="imdb.pkl", n_words=100000, valid_portion=0.1, maxlen=None,
              sort_by_len=True, rng=None):
    """Load a dataset file and split its training part into train and valid.

    The steps run in the original's order: drop training examples with
    ``len >= maxlen`` (the test set is never filtered), split train/valid by a
    random permutation keeping ``round(n * (1 - valid_portion))`` for training,
    map every id ``>= n_words`` to 1 (unknown), and sort each set by length.

    Parameters
    ----------
    path : str or Path
        A dataset file (``.pkl`` or ``.pkl.gz``). ``train_lstm`` resolves names
        such as ``'imdb'`` or an aclImdb archive to such a file first.
    n_words : int
        Vocabulary size kept; ids from ``n_words`` up become 1.
    valid_portion : float
        Share of the (filtered) training set held out for validation, in (0, 1).
    maxlen : int, optional
    sort_by_len : bool
        Sort every set by sequence length, shortest first. This makes padded
        batches small at evaluation time.
    rng : numpy.random.Generator, optional
        Draws the train/valid permutation. A fresh unseeded generator when None.

    Returns
    -------
    train, valid, test : tuple of (list of list of int, list of int)
    """
    if not 0.0 < valid_portion < 1.0:
        raise ValueError(f"valid_portion={valid_portion!r} must lie strictly between 0 and 1")
    if n_words < 2:
        raise ValueError(f"n_words={n_words!r} must be at least 2 (ids 0 and 1 are reserved)")
    if rng is None:
        rng = np.random.default_rng()

    (train_x, train_y), (test_x, test_y) = read_dataset_file(path)

    if maxlen is not None:
        kept = [(seq, label) for seq, label in zip(train_x, train_y) if len(seq) < maxlen]
        train_x = [seq for seq, _ in kept]
        train_y = [label for _, label in kept]

    # Split the training set into train and valid.
    n_samples = len(train_x)
    permutation = rng.permutation(n_samples)
    n_train = int(round(n_samples * (1.0 - valid_portion)))
    valid_x = [train_x[s] for s in permutation[n_train:]]
    valid_y = [train_y[s] for s in permutation[n_train:]]
    train_x = [train_x[s] for s in permutation[:n_train]]
    train_y = [train_y[s] for s in permutation[:n_train]]

    def remove_unknown(seqs):
        return [[1 if word >= n_words else word for word in seq] for seq in seqs]

    train_x, valid_x, test_x = (remove_unknown(s) for s in (train_x, valid_x, test_x))

    def sort_by_length(seqs, labels):
        order = sorted(range(len(seqs)), key=lambda index: len(seqs[index]))
        return [seqs[i] for i in order], [labels[i] for i in order]

    if sort_by_len:
        train_x, train_y = sort_by_length(train_x, train_y)
        valid_x, valid_y = sort_by_length(valid_x, valid_y)
        test_x, test_y = sort_by_length(test_x, test_y)

    return (train_x, train_y), (valid_x, valid_y), (test_x, test_y)
