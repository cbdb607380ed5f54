"""Rules of prepare_data and load_data, on small hand-made inputs."""

import gzip
import pickle

import numpy as np
import pytensor
import pytest

from conftest import write_dataset
from lstm_tutorial.data import load_data, prepare_data, read_dataset_file
from lstm_tutorial.vocabulary import load_dictionary
from lstm_tutorial.fileio import DataError


def test_prepare_data_layout_is_time_major():
    x, mask, labels = prepare_data([[5, 6, 7], [8], [9, 10]], [1, 0, 1])
    assert x.dtype == np.int64
    assert mask.dtype == pytensor.config.floatX
    assert x.shape == (3, 3)
    np.testing.assert_array_equal(x, [[5, 8, 9], [6, 0, 10], [7, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 1], [1, 0, 0]])
    assert labels == [1, 0, 1]


def test_prepare_data_maxlen_is_strict():
    seqs = [[2] * 3, [2] * 4, [2] * 5]
    x, mask, labels = prepare_data(seqs, [0, 1, 0], maxlen=4)
    assert x.shape == (3, 1)
    assert labels == [0]


def test_prepare_data_drops_everything():
    assert prepare_data([[2] * 5, [3] * 6], [0, 1], maxlen=5) == (None, None, None)


def make_dataset(tmp_path, n_train=20):
    # Review i has i + 1 tokens with ids counting up from 2, label i % 2.
    train_x = [list(range(2, 3 + i)) for i in range(n_train)]
    train_y = [i % 2 for i in range(n_train)]
    test_x = [list(range(2, 40)), [2, 3], list(range(2, 12))]
    test_y = [1, 0, 1]
    return write_dataset(tmp_path / "data.pkl", (train_x, train_y), (test_x, test_y))


def test_load_data_filters_train_not_test(tmp_path):
    path = make_dataset(tmp_path)
    train, valid, test = load_data(path, n_words=100, valid_portion=0.1, maxlen=10,
                                   rng=np.random.default_rng(0))
    lengths = [len(s) for s in train[0] + valid[0]]
    assert max(lengths) == 9
    assert len(train[0]) + len(valid[0]) == 9
    assert sorted(len(s) for s in test[0]) == [2, 10, 38]


def test_load_data_split_sizes(tmp_path):
    path = make_dataset(tmp_path, n_train=20)
    train, valid, _ = load_data(path, n_words=100, valid_portion=0.05,
                                rng=np.random.default_rng(1))
    # round(20 * 0.95) = 19 for training, the rest for validation.
    assert len(train[0]) == 19
    assert len(valid[0]) == 1
    assert len(train[1]) == 19


def test_load_data_maps_unknown_ids(tmp_path):
    path = make_dataset(tmp_path)
    train, valid, test = load_data(path, n_words=5, valid_portion=0.1,
                                   rng=np.random.default_rng(0))
    for split in (train, valid, test):
        for seq in split[0]:
            assert max(seq) <= 4
    longest_test = max(test[0], key=len)
    assert longest_test[:4] == [2, 3, 4, 1]
    assert set(longest_test[3:]) == {1}


def test_load_data_sorts_by_length(tmp_path):
    path = make_dataset(tmp_path)
    train, valid, test = load_data(path, n_words=100, valid_portion=0.3,
                                   rng=np.random.default_rng(2))
    for split in (train, valid, test):
        lengths = [len(s) for s in split[0]]
        assert lengths == sorted(lengths)
    # Labels follow their sequences: review of length n has label (n - 1) % 2.
    assert all(label == (len(seq) - 1) % 2 for seq, label in zip(*train))


def test_load_data_unsorted_keeps_permutation(tmp_path):
    path = make_dataset(tmp_path)
    train, _, _ = load_data(path, n_words=100, valid_portion=0.1, sort_by_len=False,
                            rng=np.random.default_rng(3))
    lengths = [len(s) for s in train[0]]
    assert lengths != sorted(lengths)


def test_load_data_seeded_split_repeats(tmp_path):
    path = make_dataset(tmp_path)
    first = load_data(path, n_words=100, rng=np.random.default_rng(7))
    second = load_data(path, n_words=100, rng=np.random.default_rng(7))
    assert first == second


def test_load_data_reads_gzip(tmp_path):
    path = make_dataset(tmp_path)
    gz_path = tmp_path / "data.pkl.gz"
    gz_path.write_bytes(gzip.compress(path.read_bytes()))
    assert load_data(gz_path, rng=np.random.default_rng(0)) == load_data(
        path, rng=np.random.default_rng(0))


# Written by CPython 2.7.18 with pickle protocol 2, as the original tutorial
# did: ([[2, 3, 4], [5]], [1, 0]), then ([[6, 7]], [1]); then a dictionary
# {'caf\xe9': 2} whose key is a Python 2 byte string.
PYTHON2_DATASET_BYTES = bytes.fromhex(
    "80025d7100285d7101284b024b034b04655d71024b0561655d7103284b014b00658671042e"
    "80025d71005d7101284b064b0765615d71024b01618671032e"
)
PYTHON2_DICTIONARY_BYTES = bytes.fromhex("80027d71005504636166e971014b02732e")


def test_load_data_reads_python2_pickles(tmp_path):
    path = tmp_path / "py2.pkl"
    path.write_bytes(PYTHON2_DATASET_BYTES)
    (train_x, train_y), (test_x, test_y) = read_dataset_file(path)
    assert train_x == [[2, 3, 4], [5]]
    assert train_y == [1, 0]
    assert test_x == [[6, 7]]
    assert test_y == [1]


def test_load_dictionary_reads_python2_pickle(tmp_path):
    path = tmp_path / "py2.dict.pkl"
    path.write_bytes(PYTHON2_DICTIONARY_BYTES)
    assert load_dictionary(path) == {"caf\xe9": 2}


def test_load_dictionary_rejects_non_dict(tmp_path):
    path = tmp_path / "list.dict.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="not a dict of word to id"):
        load_dictionary(path)


def test_read_dataset_rejects_truncated_file(tmp_path):
    path = make_dataset(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or not in the tutorial's format"):
        read_dataset_file(path)


def test_read_dataset_rejects_code_in_pickle(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(print) + pickle.dumps(print))
    with pytest.raises(DataError, match="builtins.print is not allowed"):
        read_dataset_file(path)


def test_read_dataset_rejects_label_count_mismatch(tmp_path):
    path = write_dataset(tmp_path / "bad.pkl", ([[2, 3], [4]], [1]), ([[2]], [0]))
    with pytest.raises(DataError, match="2 sequences but 1 labels"):
        read_dataset_file(path)


def test_read_dataset_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        read_dataset_file(tmp_path / "missing.pkl")


def test_load_data_rejects_bad_portion(tmp_path):
    path = make_dataset(tmp_path)
    with pytest.raises(ValueError, match="valid_portion=1.5"):
        load_data(path, valid_portion=1.5)
