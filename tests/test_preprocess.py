"""Preprocessing of aclImdb-style trees and archives into the tutorial's files."""

import io
import json
import pickle
import subprocess
import sys
import tarfile

import pytest

from lstm_tutorial.data import read_dataset_file
from lstm_tutorial.vocabulary import load_dictionary
from lstm_tutorial.datasets import resolve_dataset
from lstm_tutorial.fileio import DataError
from lstm_tutorial.preprocess import build_dict, preprocess, read_imdb, tokenize

REVIEWS = {
    ("train", "pos", "3_9.txt"): "A great film. Great acting!<br />Second line is ignored\nhidden",
    ("train", "pos", "10_8.txt"): "great great fun",
    ("train", "neg", "1_2.txt"): "A bad film, it's bad.",
    ("train", "neg", "2_1.txt"): "zzz aaa",
    ("test", "pos", "5_10.txt"): "great unseenword",
    ("test", "neg", "4_3.txt"): "bad film",
}


def write_tree(root):
    for (split, label, name), text in REVIEWS.items():
        folder = root / "aclImdb" / split / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return root / "aclImdb"


def test_tokenize_escapes_like_tokenizer_perl():
    tokens = tokenize(["It's <br />a \"test\" & more"], workers=1)[0]
    assert tokens == ["it", "&apos;s", "&lt;", "br", "/", "&gt;", "a", "&quot;", "test",
                      "&quot;", "&amp;", "more"]


def test_build_dict_ranks_by_count_then_alphabet():
    dictionary = build_dict([["b", "a", "c", "b"], ["c", "d"]])
    assert dictionary == {"b": 2, "c": 3, "a": 4, "d": 5}


def test_read_imdb_order(tmp_path):
    reviews = read_imdb(write_tree(tmp_path))
    train_texts = [text for text, _ in reviews["train"]]
    assert train_texts[0].startswith("A great film")  # pos 3_9 before pos 10_8
    assert train_texts[1] == "great great fun"
    assert [label for _, label in reviews["train"]] == [1, 1, 0, 0]
    assert reviews["train"][2][0] == "A bad film, it's bad."


def test_preprocess_small_tree(tmp_path):
    summary = preprocess(write_tree(tmp_path), tmp_path / "out", workers=1)
    (train_x, train_y), (test_x, test_y) = read_dataset_file(tmp_path / "out" / "imdb.pkl")
    dictionary = load_dictionary(tmp_path / "out" / "imdb.dict.pkl")

    # Only the first line of a review is read, and <br /> stays as escaped tokens.
    id_to_word = {index: word for word, index in dictionary.items()}
    assert [id_to_word[index] for index in train_x[0]] == [
        "a", "great", "film", ".", "great", "acting", "!", "&lt;", "br", "/", "&gt;",
        "second", "line", "is", "ignored"]
    assert "hidden" not in dictionary

    # "great" appears 4 times in training, more than any other word.
    assert dictionary["great"] == 2
    assert min(dictionary.values()) == 2
    assert sorted(dictionary.values()) == list(range(2, 2 + len(dictionary)))
    assert train_y == [1, 1, 0, 0]
    assert test_y == [1, 0]
    # The test review's unknown word maps to 1.
    assert test_x[0] == [dictionary["great"], 1]
    assert summary["train_reviews"] == 4
    assert summary["vocabulary"] == len(dictionary)

    meta = json.loads((tmp_path / "out" / "imdb.meta.json").read_text())
    assert meta["tokenizer"] == "moses"
    assert meta["labels"] == ["neg", "pos"]


def make_archive_slice(real_archive, path, per_class=25):
    """Copy the first reviews of each split and class of the real archive."""
    counts = {}
    with tarfile.open(real_archive, "r:gz") as source, tarfile.open(path, "w:gz") as target:
        for member in source:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or parts[2] not in ("pos", "neg"):
                continue
            key = (parts[1], parts[2])
            if counts.get(key, 0) >= per_class:
                if len(counts) == 4 and all(c >= per_class for c in counts.values()):
                    break
                continue
            counts[key] = counts.get(key, 0) + 1
            target.addfile(member, source.extractfile(member))
    return path


def test_preprocess_slice_of_real_archive(real_archive, tmp_path):
    archive = make_archive_slice(real_archive, tmp_path / "slice.tar.gz")
    summary = preprocess(archive, tmp_path / "out", workers=2)
    (train_x, train_y), (test_x, test_y) = read_dataset_file(tmp_path / "out" / "imdb.pkl")
    dictionary = load_dictionary(tmp_path / "out" / "imdb.dict.pkl")

    assert summary["train_reviews"] == 50
    assert summary["test_reviews"] == 50
    assert train_y == [1] * 25 + [0] * 25
    assert test_y == [1] * 25 + [0] * 25
    # Real reviews carry HTML line breaks, which the Moses escaping keeps as tokens.
    assert "&lt;" in dictionary
    assert "br" in dictionary
    assert dictionary["the"] == 2

    # Every training id decodes back to the tokens of the review.
    reviews = read_imdb(archive)
    id_to_word = {index: word for word, index in dictionary.items()}
    tokens = tokenize([reviews["train"][7][0]], workers=1)[0]
    assert [id_to_word[index] for index in train_x[7]] == tokens


def test_archive_with_escaping_path_is_rejected(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"pwned"
        info = tarfile.TarInfo("aclImdb/../../evil.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="points outside"):
        preprocess(archive, tmp_path / "out", workers=1)
    assert not (tmp_path.parent / "evil.txt").exists()
    assert not (tmp_path / "out" / "imdb.pkl").exists()


def test_archive_source_is_cached(tmp_path):
    tree = write_tree(tmp_path / "src")
    archive = tmp_path / "mini.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="aclImdb")
    first = resolve_dataset(str(archive), tmp_path / "cache")
    built_at = first.stat().st_mtime_ns
    second = resolve_dataset(str(archive), tmp_path / "cache")
    assert first == second
    assert second.stat().st_mtime_ns == built_at
    assert first.name.startswith("mini-")
    with open(first, "rb") as handle:
        assert pickle.load(handle)[1] == [1, 1, 0, 0]


def test_preprocess_command_line(tmp_path):
    tree = write_tree(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "lstm_tutorial.preprocess", str(tree), "--output",
         str(tmp_path / "out"), "--workers", "1"],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["vocabulary"] > 5
    assert "preprocess done" in result.stderr
    assert (tmp_path / "out" / "imdb.dict.pkl").is_file()


def test_preprocess_command_line_missing_source(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lstm_tutorial.preprocess", str(tmp_path / "nope")],
        capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr
