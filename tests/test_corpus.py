"""Preprocessing users' own corpora: layouts, labels, encodings and tokenizers."""

import csv
import json
import pickle
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from lstm_tutorial.corpus import detect_format
from lstm_tutorial.data import read_dataset_file
from lstm_tutorial.datasets import resolve_dataset
from lstm_tutorial.fileio import DataError
from lstm_tutorial.preprocess import order_labels, preprocess
from lstm_tutorial.tokenizers import get_tokenizer, split_for_sudachi

# Three classes whose words tell the label apart; 8 examples each.
CLASSES = {
    "sports": ["goal match team", "the team won the match", "a late goal", "match ends",
               "team scores a goal", "great match", "goal goal", "the team lost"],
    "politics": ["vote election", "the minister spoke", "a new law", "election day",
                 "the vote failed", "minister resigns", "law passed", "vote again"],
    "weather": ["rain today", "sunny and warm", "cold wind", "rain and wind",
                "a sunny day", "snow tonight", "warm rain", "cold snow"],
}


def load(folder, name):
    (train_x, train_y), (test_x, test_y) = read_dataset_file(folder / f"{name}.pkl")
    with open(folder / f"{name}.dict.pkl", "rb") as handle:
        dictionary = pickle.load(handle)
    meta = json.loads((folder / f"{name}.meta.json").read_text(encoding="utf-8"))
    return train_x, train_y, test_x, test_y, dictionary, meta


def decode_ids(ids, dictionary):
    words = {index: word for word, index in dictionary.items()}
    return [words.get(index, "<unk>") for index in ids]


def check_three_classes(out, name, n_total=24):
    train_x, train_y, test_x, test_y, dictionary, meta = load(out, name)
    assert meta["labels"] == ["politics", "sports", "weather"]
    assert len(train_x) + len(test_x) == n_total
    assert sorted(set(train_y)) == [0, 1, 2]
    assert set(test_y) <= {0, 1, 2}
    # Every training example decodes back to one of its class's texts.
    for ids, label in zip(train_x, train_y):
        text = " ".join(decode_ids(ids, dictionary))
        assert text in CLASSES[meta["labels"][label]]
    return train_x, train_y, test_x, test_y, dictionary, meta


def write_rows(path, rows, delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(["id", "text", "label"])
        for index, (text, label) in enumerate(rows):
            writer.writerow([index, text, label])
    return path


def all_rows():
    return [(text, label) for label, texts in CLASSES.items() for text in texts]


# ---------------------------------------------------------------- layouts

def test_tree_layout_with_three_labels(tmp_path):
    for split in ("train", "test"):
        for label, texts in CLASSES.items():
            folder = tmp_path / "news" / split / label
            folder.mkdir(parents=True)
            chosen = texts[:6] if split == "train" else texts[6:]
            for index, text in enumerate(chosen):
                (folder / f"{index}.txt").write_text(text + "\nsecond line", encoding="utf-8")
    assert detect_format([str(tmp_path / "news")]) == "tree"
    summary = preprocess(tmp_path / "news", tmp_path / "out", workers=1)
    assert summary["format"] == "tree"
    assert summary["dataset"].endswith("news.pkl")
    train_x, train_y, test_x, test_y, dictionary, _ = load(tmp_path / "out", "news")
    # Other trees than aclImdb keep every line of a file.
    assert decode_ids(train_x[0], dictionary)[-2:] == ["second", "line"]
    # Grouped label by label in id order, files in name order.
    assert train_y == [0] * 6 + [1] * 6 + [2] * 6
    assert test_y == [0, 0, 1, 1, 2, 2]
    assert summary["label_counts"]["test"] == {"politics": 2, "sports": 2, "weather": 2}


def test_folders_layout_draws_stratified_test(tmp_path):
    for label, texts in CLASSES.items():
        folder = tmp_path / "topics" / label
        folder.mkdir(parents=True)
        for index, text in enumerate(texts):
            (folder / f"doc{index}.txt").write_text(text, encoding="utf-8")
    assert detect_format([str(tmp_path / "topics")]) == "folders"
    summary = preprocess(tmp_path / "topics", tmp_path / "out", workers=1, test_portion=0.25)
    _, train_y, _, test_y, _, meta = check_three_classes(tmp_path / "out", "topics")
    # 25 % of each class of 8 is 2 examples.
    assert np.bincount(test_y).tolist() == [2, 2, 2]
    assert np.bincount(train_y).tolist() == [6, 6, 6]
    assert meta["corpus"]["test_split"] == "drawn"
    assert summary["format"] == "folders"

    # The same seed draws the same split; another seed draws another one.
    preprocess(tmp_path / "topics", tmp_path / "again", workers=1, test_portion=0.25)
    assert (tmp_path / "out" / "topics.pkl").read_bytes() == \
        (tmp_path / "again" / "topics.pkl").read_bytes()
    preprocess(tmp_path / "topics", tmp_path / "other", workers=1, test_portion=0.25, seed=7)
    assert (tmp_path / "out" / "topics.pkl").read_bytes() != \
        (tmp_path / "other" / "topics.pkl").read_bytes()


def test_csv_single_file(tmp_path):
    path = write_rows(tmp_path / "news.csv", all_rows())
    summary = preprocess(path, tmp_path / "out", workers=1)
    assert summary["format"] == "csv"
    check_three_classes(tmp_path / "out", "news")


def test_csv_quoted_text_with_comma_and_newline(tmp_path):
    rows = all_rows() + [('she said "rain, then snow"\nall day', "weather")]
    path = write_rows(tmp_path / "quoted.csv", rows)
    preprocess(path, tmp_path / "out", workers=1, tokenizer="whitespace", test_portion=0.3)
    train_x, _, test_x, _, dictionary, _ = load(tmp_path / "out", "quoted")
    assert len(train_x) + len(test_x) == 25


def test_tsv_train_test_pair_with_named_columns(tmp_path):
    rows = all_rows()
    for split, chosen in (("train", rows[::2]), ("test", rows[1::2])):
        with open(tmp_path / f"{split}.tsv", "w", encoding="utf-8") as handle:
            handle.write("sentence\ttopic\n")
            for text, label in chosen:
                handle.write(f"{text}\t{label}\n")
    summary = preprocess([tmp_path / "train.tsv", tmp_path / "test.tsv"], tmp_path / "out",
                         workers=1, text_column="sentence", label_column="topic")
    assert summary["format"] == "tsv"
    assert summary["train_reviews"] == 12
    assert summary["test_reviews"] == 12
    # train.tsv and test.tsv are named after their folder.
    assert summary["dataset"].endswith(f"{tmp_path.name}.pkl")
    train_x, train_y, test_x, test_y, dictionary, meta = load(tmp_path / "out", tmp_path.name)
    assert meta["corpus"]["test_split"] == "given"
    # Row order is kept for tables; "won" occurs only in the test file.
    assert decode_ids(test_x[0], dictionary) == ["the", "team", "<unk>", "the", "match"]

    # A folder holding train.tsv and test.tsv is the same corpus.
    assert detect_format([str(tmp_path)]) == "tsv"


def test_tsv_missing_column_names_the_fix(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("sentence\ttopic\nrain\tweather\n", encoding="utf-8")
    with pytest.raises(DataError, match="--label_column") as error:
        preprocess(path, tmp_path / "out", workers=1)
    assert "data.tsv" in str(error.value)
    assert "'topic'" in str(error.value)


def test_jsonl_with_integer_labels(tmp_path):
    path = tmp_path / "stars.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for label, texts in zip((10, 2, 1), CLASSES.values()):
            for text in texts:
                handle.write(json.dumps({"body": text, "stars": label}) + "\n")
    summary = preprocess(path, tmp_path / "out", workers=1, text_column="body",
                         label_column="stars")
    assert summary["format"] == "jsonl"
    _, train_y, _, _, _, meta = load(tmp_path / "out", "stars")
    # Integer labels are ordered numerically, not as strings.
    assert meta["labels"] == ["1", "2", "10"]
    assert sorted(set(train_y)) == [0, 1, 2]


def test_json_array_file(tmp_path):
    records = [{"text": text, "label": label} for text, label in all_rows()]
    (tmp_path / "news.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    summary = preprocess(tmp_path / "news.json", tmp_path / "out", workers=1)
    assert summary["format"] == "jsonl"
    check_three_classes(tmp_path / "out", "news")


def test_folder_with_one_csv(tmp_path):
    (tmp_path / "corpus").mkdir()
    write_rows(tmp_path / "corpus" / "news.csv", all_rows())
    assert detect_format([str(tmp_path / "corpus")]) == "csv"
    dataset = resolve_dataset(str(tmp_path / "corpus"), tmp_path / "cache")
    (train_x, train_y), (test_x, _) = read_dataset_file(dataset)
    assert len(train_x) + len(test_x) == 24


def test_order_labels_numeric_and_text():
    assert order_labels(["pos", "neg"]) == ["neg", "pos"]
    assert order_labels(["10", "2", "-1"]) == ["-1", "2", "10"]
    assert order_labels(["b", "10", "a"]) == ["10", "a", "b"]


def test_lines_files_named_by_label(tmp_path):
    for label, texts in CLASSES.items():
        (tmp_path / f"news.{label}").write_text("\n".join(texts) + "\n", encoding="utf-8")
    sources = sorted(str(path) for path in tmp_path.glob("news.*"))
    assert detect_format(sources) == "lines"
    summary = preprocess(sources, tmp_path / "out", workers=1)
    assert summary["dataset"].endswith("news.pkl")
    check_three_classes(tmp_path / "out", "news")

    # LABEL=PATH pairs give other label names.
    pairs = [f"{label.upper()}={path}" for label, path in
             zip(("politics", "sports", "weather"), sources)]
    preprocess(pairs, tmp_path / "pairs", workers=1, name="pairs")
    assert load(tmp_path / "pairs", "pairs")[5]["labels"] == ["POLITICS", "SPORTS", "WEATHER"]


def test_folder_of_label_files_trains_directly(tmp_path):
    folder = tmp_path / "polarity"
    folder.mkdir()
    (folder / "rt.pos").write_text("good fun\ngreat film\nloved it\nfun fun\n", encoding="utf-8")
    (folder / "rt.neg").write_text("bad film\ndull plot\nhated it\nbad bad\n", encoding="utf-8")
    dataset = resolve_dataset(str(folder), tmp_path / "cache")
    assert dataset.name.startswith("polarity-")
    meta = json.loads(dataset.with_name(dataset.name[:-4] + ".meta.json").read_text())
    assert meta["labels"] == ["neg", "pos"]
    # A preprocessed output folder resolves to its .pkl.
    assert resolve_dataset(str(dataset.parent), tmp_path / "unused") == dataset


def test_tar_archive_of_three_label_tree(tmp_path):
    for split in ("train", "test"):
        for label, texts in CLASSES.items():
            folder = tmp_path / "src" / "news" / split / label
            folder.mkdir(parents=True)
            for index, text in enumerate(texts[:6] if split == "train" else texts[6:]):
                (folder / f"{index}.txt").write_text(text, encoding="utf-8")
    archive = tmp_path / "news.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "news", arcname="news")
    summary = preprocess(archive, tmp_path / "out", workers=1)
    assert summary["dataset"].endswith("news.pkl")
    _, train_y, _, test_y, _, _ = check_three_classes(tmp_path / "out", "news")
    assert train_y == [0] * 6 + [1] * 6 + [2] * 6
    assert test_y == [0, 0, 1, 1, 2, 2]


def test_aclimdb_tree_keeps_tutorial_order(tmp_path):
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            folder = tmp_path / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for index in (10, 2):
                (folder / f"{index}_7.txt").write_text(f"{label} review {index}\nignored",
                                                       encoding="utf-8")
        (tmp_path / "aclImdb" / "train" / "unsup").mkdir(exist_ok=True)
        (tmp_path / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("no label")
    summary = preprocess(tmp_path / "aclImdb", tmp_path / "out", workers=1)
    train_x, train_y, _, test_y, dictionary, meta = load(tmp_path / "out", "imdb")
    assert summary["dataset"].endswith("imdb.pkl")
    assert meta["labels"] == ["neg", "pos"]
    assert train_y == [1, 1, 0, 0]
    assert test_y == [1, 1, 0, 0]
    # pos before neg, file 2 before file 10, first line only, unsup skipped.
    assert decode_ids(train_x[0], dictionary) == ["pos", "review", "2"]
    assert "ignored" not in dictionary
    assert "unsup" not in dictionary
    assert "label" not in dictionary


# ---------------------------------------------------------------- labels

def test_one_class_corpus_is_rejected(tmp_path):
    path = write_rows(tmp_path / "one.csv", [(text, "sports") for text in CLASSES["sports"]])
    with pytest.raises(DataError, match="at least two classes") as error:
        preprocess(path, tmp_path / "out", workers=1)
    assert "one.csv" in str(error.value)
    assert "'sports'" in str(error.value)
    assert not (tmp_path / "out" / "one.pkl").exists()


def test_label_only_in_test_split_is_rejected(tmp_path):
    write_rows(tmp_path / "train.csv", [("goal", "sports"), ("vote", "politics")] * 3)
    write_rows(tmp_path / "test.csv", [("goal", "sports"), ("rain", "weather")])
    with pytest.raises(DataError, match="'weather' appears in the test split"):
        preprocess(tmp_path, tmp_path / "out", workers=1)


def test_empty_texts_are_skipped_and_counted(tmp_path):
    rows = all_rows() + [("", "sports"), ("   ", "weather")]
    path = write_rows(tmp_path / "gaps.csv", rows)
    summary = preprocess(path, tmp_path / "out", workers=1)
    assert summary["empty_texts"] == 2
    assert summary["train_reviews"] + summary["test_reviews"] == 24
    train_x, _, test_x, _, _, _ = load(tmp_path / "out", "gaps")
    assert all(len(ids) > 0 for ids in train_x + test_x)


# ---------------------------------------------------------------- decoding

def test_latin1_file_with_encoding_option(tmp_path):
    pos = "un film très réussi\nune bonne idée\nsuperbe\nj'ai adoré\n"
    neg = "raté\nun navet\nennuyeux à mourir\ntrop long\n"
    (tmp_path / "avis.pos").write_bytes(pos.encode("latin-1"))
    (tmp_path / "avis.neg").write_bytes(neg.encode("latin-1"))
    sources = [str(tmp_path / "avis.pos"), str(tmp_path / "avis.neg")]

    with pytest.raises(DataError) as error:
        preprocess(sources, tmp_path / "out", workers=1)
    message = str(error.value)
    assert "avis.pos" in message
    # "très" is at bytes 8-11; the latin-1 "è" is byte 10.
    assert "byte offset 10" in message
    assert "--encoding" in message
    assert "--errors replace" in message

    preprocess(sources, tmp_path / "out", workers=1, encoding="latin-1",
               tokenizer="whitespace")
    train_x, _, test_x, _, dictionary, meta = load(tmp_path / "out", "avis")
    words = {word for ids in train_x + test_x for word in decode_ids(ids, dictionary)}
    assert {"très", "réussi", "idée", "raté"} & words
    assert meta["corpus"]["encoding"] == "latin-1"


def test_shift_jis_csv(tmp_path):
    text = "text,label\n良い映画,pos\n最高です,pos\n楽しい,pos\n悪い映画,neg\n退屈です,neg\nひどい,neg\n"
    (tmp_path / "sjis.csv").write_bytes(text.encode("shift_jis"))
    summary = preprocess(tmp_path / "sjis.csv", tmp_path / "out", workers=1,
                         encoding="shift_jis", tokenizer="whitespace", test_portion=0.34)
    assert summary["train_reviews"] + summary["test_reviews"] == 6
    dictionary = load(tmp_path / "out", "sjis")[4]
    assert set(dictionary) <= {"良い映画", "最高です", "楽しい", "悪い映画", "退屈です", "ひどい"}


def test_invalid_bytes_name_file_and_offset(tmp_path):
    good = b"text,label\ngreat,pos\nfine,pos\n"
    bad_line = b"terrible \xff\xfe film,neg\n"
    (tmp_path / "broken.csv").write_bytes(good + bad_line + b"awful,neg\n")
    with pytest.raises(DataError) as error:
        preprocess(tmp_path / "broken.csv", tmp_path / "out", workers=1)
    message = str(error.value)
    assert "broken.csv" in message
    assert f"byte offset {len(good) + len(b'terrible ')}" in message
    assert "--errors replace" in message

    summary = preprocess(tmp_path / "broken.csv", tmp_path / "out", workers=1,
                         errors="replace", test_portion=0.5)
    assert summary["train_reviews"] + summary["test_reviews"] == 4


def test_invalid_bytes_in_tree_file(tmp_path):
    for label in ("a", "b"):
        folder = tmp_path / "corpus" / label
        folder.mkdir(parents=True)
        for index in range(2):
            (folder / f"{index}.txt").write_text(f"{label} text", encoding="utf-8")
    (tmp_path / "corpus" / "b" / "bad.txt").write_bytes(b"ok \xe9")
    with pytest.raises(DataError, match=r"bad\.txt: .*byte offset 3"):
        preprocess(tmp_path / "corpus", tmp_path / "out", workers=1)


def test_utf8_bom_is_ignored(tmp_path):
    rows = "text,label\nrain,weather\nsun,weather\ngoal,sports\nmatch,sports\n"
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + rows.encode("utf-8"))
    (tmp_path / "bom.pos").write_bytes(b"\xef\xbb\xbfgood\nnice\n")
    (tmp_path / "bom.neg").write_bytes(b"bad\nawful\n")
    summary = preprocess(tmp_path / "bom.csv", tmp_path / "out", workers=1, test_portion=0.5)
    assert summary["labels"] == ["sports", "weather"]
    preprocess([tmp_path / "bom.pos", tmp_path / "bom.neg"], tmp_path / "out", workers=1,
               test_portion=0.5)
    dictionary = load(tmp_path / "out", "bom")[4]
    assert all("\ufeff" not in word for word in dictionary)


def test_unknown_encoding_is_rejected(tmp_path):
    path = write_rows(tmp_path / "x.csv", all_rows())
    with pytest.raises(ValueError, match="encoding 'latin-9000' is unknown"):
        preprocess(path, tmp_path / "out", workers=1, encoding="latin-9000")


# ---------------------------------------------------------------- tokenizers

def test_whitespace_tokenizer():
    tokenize = get_tokenizer({"tokenizer": "whitespace"})
    assert tokenize("Hello,  World!\tOK") == ["hello,", "world!", "ok"]
    keep_case = get_tokenizer({"tokenizer": "whitespace", "lowercase": False})
    assert keep_case("Hello World") == ["Hello", "World"]


def test_get_tokenizer_ignores_meta_keys():
    tokenize = get_tokenizer({"tokenizer": "moses", "lang": "en", "labels": ["a", "b"],
                              "corpus": {"format": "csv"}})
    assert tokenize("Don't") == ["don", "&apos;t"]


def test_unknown_tokenizer_is_rejected():
    with pytest.raises(ValueError, match="choose one of moses, whitespace, japanese"):
        get_tokenizer({"tokenizer": "spacy"})


def test_japanese_tokens_match_sudachi():
    sudachipy = pytest.importorskip("sudachipy")
    tokenize = get_tokenizer({"tokenizer": "japanese"})
    sentence = "今日は良い天気ですね。この映画はとても面白かった！"
    expected = [morpheme.surface() for morpheme in
                sudachipy.Dictionary(dict="core").tokenizer(mode="C").tokenize(sentence)]
    assert tokenize(sentence) == expected
    assert tokenize(sentence) == ["今日", "は", "良い", "天気", "です", "ね", "。", "この",
                                  "映画", "は", "とても", "面白かっ", "た", "！"]
    # Split mode A cuts compounds into shorter units than C.
    short = get_tokenizer({"tokenizer": "japanese", "split_mode": "A"})
    assert short("東京都に住んでいます") == ["東京", "都", "に", "住ん", "で", "い", "ます"]
    assert tokenize("東京都に住んでいます")[0] == "東京都"
    # Spaces are not tokens; Latin letters are lower-cased.
    assert tokenize("ＡＩ と Python") == ["ａｉ", "と", "python"]


def test_japanese_long_text_is_split():
    pytest.importorskip("sudachipy")
    text = "映画はとても面白かった。" * 5000
    pieces = split_for_sudachi(text)
    assert "".join(pieces) == text
    assert all(len(piece.encode("utf-8")) <= 40000 for piece in pieces)
    assert all(piece.endswith("。") for piece in pieces)
    tokens = get_tokenizer({"tokenizer": "japanese"})(text)
    assert tokens.count("映画") == 5000


def test_japanese_corpus_preprocess(tmp_path):
    pytest.importorskip("sudachipy")
    rows = [("この映画は最高に面白かった", "良い"), ("俳優の演技が素晴らしい", "良い"),
            ("もう一度見たい映画です", "良い"), ("とても退屈な映画だった", "悪い"),
            ("時間の無駄でした", "悪い"), ("二度と見たくない", "悪い")]
    path = write_rows(tmp_path / "eiga.csv", rows)
    summary = preprocess(path, tmp_path / "out", workers=2, tokenizer="japanese",
                         test_portion=0.34)
    train_x, train_y, test_x, test_y, dictionary, meta = load(tmp_path / "out", "eiga")
    assert meta["tokenizer"] == "japanese"
    assert meta["split_mode"] == "C"
    assert meta["labels"] == ["悪い", "良い"]
    assert summary["test_reviews"] == 2
    assert "映画" in dictionary
    # Each stored example is the analyser's segmentation of its row.
    tokenize = get_tokenizer(meta)
    texts = {tuple(tokenize(text)) for text, _ in rows}
    for ids in train_x:
        assert tuple(decode_ids(ids, dictionary)) in texts


# ---------------------------------------------------------------- command line

def run_module(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          check=False, cwd=cwd)


def test_preprocess_command_line_bad_encoding(tmp_path):
    (tmp_path / "rt.pos").write_bytes("très bon\n".encode("latin-1"))
    (tmp_path / "rt.neg").write_bytes(b"bad\n")
    result = run_module("lstm_tutorial.preprocess", str(tmp_path / "rt.pos"),
                        str(tmp_path / "rt.neg"), "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    assert not (tmp_path / "out").exists()
    assert "rt.pos" in result.stderr
    assert "--encoding" in result.stderr
    assert "Traceback" not in result.stderr


def test_preprocess_command_line_one_class(tmp_path):
    (tmp_path / "only.pos").write_text("good\nnice\n", encoding="utf-8")
    result = run_module("lstm_tutorial.preprocess", str(tmp_path / "only.pos"),
                        "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    assert not (tmp_path / "out").exists()
    assert "at least two classes" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_three_class_training_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    vocab = {label: " ".join(texts).split() for label, texts in CLASSES.items()}
    with open(tmp_path / "topics.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for index in range(240):
            label = list(CLASSES)[index % 3]
            words = rng.choice(vocab[label], size=int(rng.integers(3, 8)))
            writer.writerow([" ".join(words), label])

    result = run_module("lstm_tutorial.preprocess", str(tmp_path / "topics.csv"),
                        "--output", str(tmp_path / "data"), "--workers", "1")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["labels"] == ["politics", "sports", "weather"]

    model = tmp_path / "model.npz"
    result = run_module("lstm_tutorial.train", "--dataset", str(tmp_path / "data"),
                        "--dim_proj", "8", "--max_epochs", "15", "--mode", "NUMBA",
                        "--batch_size", "8", "--validFreq", "20", "--saveto", str(model),
                        "--data_dir", str(tmp_path / "cache"), "--optimizer", "adadelta")
    assert result.returncode == 0, result.stderr
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    assert errors["test_err"] < 0.34  # chance is 0.67 with three classes

    with np.load(model, allow_pickle=False) as saved:
        assert saved["U"].shape == (8, 3)
        assert saved["b"].shape == (3,)
        options = json.loads(str(saved["options_json"]))
    assert options["ydim"] == 3
    assert options["labels"] == ["politics", "sports", "weather"]
