"""Classifying raw text with a saved model: API, command line and mismatches."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytensor
import pytest

from lstm_tutorial import load_model
from lstm_tutorial.data import prepare_data, read_dataset_file
from lstm_tutorial.fileio import DataError
from lstm_tutorial.predict import main as predict_main
from lstm_tutorial.prediction import BATCH_SIZE, MAX_BATCH_TOKENS, NOTE_EMPTY, NOTE_NO_KNOWN_WORDS
from lstm_tutorial.preprocess import preprocess, read_imdb
from lstm_tutorial.training import get_minibatches_idx, pred_error, pred_probs
from reviews_corpus import TINY_N_WORDS, write_reviews_folder

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tiny_reviews_model):
    return load_model(tiny_reviews_model)


@pytest.fixture(scope="module")
def test_reviews(tiny_reviews):
    """Raw test texts and labels, and the stored ids as training evaluated them."""
    raw = read_imdb(tiny_reviews.folder)["test"]
    _, (stored_x, stored_y) = read_dataset_file(tiny_reviews.dataset)
    ids = [[index if index < TINY_N_WORDS else 1 for index in review] for review in stored_x]
    return [text for text, _ in raw], np.asarray([label for _, label in raw]), ids, stored_y


def strip_options(source, target):
    """Copy a model without its options, in the original tutorial's layout."""
    with np.load(source) as arrays:
        kept = {name: arrays[name] for name in arrays.files
                if name not in ("options_json", "history_updates")}
    np.savez(target, **kept)
    return target


def test_raw_text_gives_the_stored_ids(model, test_reviews):
    texts, _, ids, _ = test_reviews

    assert [item.ids for item in model.encode(texts)] == ids


def test_probabilities_match_pred_probs(model, test_reviews):
    texts, _, ids, stored_y = test_reviews
    with pytensor.config.change_flags(floatX=model.floatX):
        expected = pred_probs(model.f_pred_prob, prepare_data, (ids, stored_y),
                              get_minibatches_idx(len(ids), 64))
    probs = model.predict_proba(texts)

    assert probs.shape == (len(texts), 2)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_accuracy_equals_saved_test_error(model, tiny_reviews_model, test_reviews):
    texts, labels, ids, stored_y = test_reviews
    accuracy = float((model.predict(texts) == labels).mean())
    with np.load(tiny_reviews_model) as arrays:
        test_err = float(arrays["test_err"])
    with pytensor.config.change_flags(floatX=model.floatX):
        error = pred_error(lambda x, mask: model.f_pred_prob(x, mask).argmax(axis=1),
                           prepare_data, (ids, stored_y), get_minibatches_idx(len(ids), 64))

    assert list(labels) == list(stored_y)
    assert accuracy == pytest.approx(1.0 - test_err, abs=1e-12)
    assert accuracy == pytest.approx(1.0 - error, abs=1e-12)
    # The tiny model learns something: the check is not two chance levels agreeing.
    assert accuracy > 0.6


def test_labels_and_options_exposed(model):
    assert model.labels == ["neg", "pos"]
    assert model.options["dim_proj"] == 8
    assert model.n_words == TINY_N_WORDS
    assert model.floatX == "float32"
    assert model.mode == "VM"


def test_unknown_words_and_ids_beyond_n_words(model):
    frequent = [word for word, index in model.dictionary.items() if index < TINY_N_WORDS]
    rare = [word for word, index in model.dictionary.items() if index >= TINY_N_WORDS]
    assert frequent and rare
    [item] = model.encode([" ".join([frequent[0], "xylophone", rare[0]])])

    assert item.ids == [model.dictionary[frequent[0]], 1, 1]
    assert item.n_tokens == 3
    assert item.n_unknown == 2
    assert item.notes == []


def test_text_without_known_words_gets_note(model):
    [result] = model.classify(["xylophone zeppelin"])

    assert result["notes"] == [NOTE_NO_KNOWN_WORDS]
    assert result["n_unknown"] == 2
    assert result["label"] in model.labels
    expected = model.predict_proba_ids([[1, 1]])[0]
    assert [result["probabilities"][label] for label in model.labels] == \
        pytest.approx(expected.tolist())


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_predicted_as_one_unknown_word(model, text):
    [result] = model.classify([text])

    assert result["notes"] == [NOTE_EMPTY]
    assert result["n_tokens"] == 0
    probabilities = [result["probabilities"][label] for label in model.labels]
    assert probabilities == pytest.approx(model.predict_proba_ids([[1]])[0].tolist())
    assert np.isfinite(probabilities).all()


def test_many_and_long_texts_batched_in_order(model, test_reviews):
    texts = test_reviews[0]
    long_text = " ".join(texts) * 3
    many = [texts[index % len(texts)] for index in range(500)] + [long_text, ""]
    batched = model.predict_proba(many)
    one_by_one = np.concatenate([model.predict_proba([text]) for text in many[:40]]
                                + [model.predict_proba([long_text, ""])])

    np.testing.assert_allclose(batched[:40], one_by_one[:40], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched[-2:], one_by_one[-2:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched[:40], batched[40:80], rtol=1e-5, atol=1e-6)


def test_batches_respect_size_and_token_limits(model):
    lengths = [5] * 300 + [MAX_BATCH_TOKENS // 10] * 30 + [MAX_BATCH_TOKENS * 2, 1]
    batches = list(model._batches(lengths))

    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[index] for index in batch)
        assert len(batch) <= BATCH_SIZE
        assert len(batch) == 1 or len(batch) * longest <= MAX_BATCH_TOKENS


def test_single_string_is_one_text(model):
    assert model.predict_proba("a great film").shape == (1, 2)


def test_non_string_text_rejected(model):
    with pytest.raises(TypeError, match="strings"):
        model.predict([3])


def test_model_without_options_needs_dictionary(tiny_reviews_model, tiny_reviews, tmp_path,
                                                model, test_reviews):
    path = strip_options(tiny_reviews_model, tmp_path / "original.npz")
    with pytest.raises(FileNotFoundError, match="dictionary"):
        load_model(path)

    original = load_model(path, tiny_reviews.dictionary)
    texts = test_reviews[0]
    assert original.options is None
    assert original.labels == ["neg", "pos"]
    np.testing.assert_allclose(original.predict_proba(texts), model.predict_proba(texts),
                               rtol=1e-6)


def test_dropout_setting_matters_for_original_layout(tiny_reviews_model, tiny_reviews,
                                                     tmp_path, test_reviews):
    path = strip_options(tiny_reviews_model, tmp_path / "original.npz")
    with_dropout = load_model(path, tiny_reviews.dictionary).predict_proba(test_reviews[0])
    without = load_model(path, tiny_reviews.dictionary,
                         use_dropout=False).predict_proba(test_reviews[0])

    assert not np.allclose(with_dropout, without)


def test_dictionary_of_other_dataset_rejected(tiny_reviews_model, tmp_path):
    other = write_reviews_folder(tmp_path / "other", n_train=30, n_test=5, seed=7)
    preprocess(other, tmp_path, name="other", workers=1)

    with pytest.raises(DataError, match="does not match model"):
        load_model(tiny_reviews_model, tmp_path / "other.dict.pkl")


def test_dictionary_with_reserved_id_rejected(tiny_reviews_model, tmp_path):
    path = strip_options(tiny_reviews_model, tmp_path / "original.npz")
    dictionary = tmp_path / "bad.dict.pkl"
    dictionary.write_bytes(pickle.dumps({"great": 1, "film": 2}))

    with pytest.raises(DataError, match="reserved"):
        load_model(path, dictionary)


def test_dictionary_that_is_not_a_dict_rejected(tiny_reviews_model, tmp_path):
    path = strip_options(tiny_reviews_model, tmp_path / "original.npz")
    dictionary = tmp_path / "list.dict.pkl"
    dictionary.write_bytes(pickle.dumps(["great", "film"]))

    with pytest.raises(DataError, match="not a dict"):
        load_model(path, dictionary)


def test_labels_of_other_dataset_rejected(tiny_reviews_model, tiny_reviews, tmp_path):
    path = strip_options(tiny_reviews_model, tmp_path / "original.npz")
    dictionary = tmp_path / "three.dict.pkl"
    dictionary.write_bytes(tiny_reviews.dictionary.read_bytes())
    meta = json.loads(tiny_reviews.meta.read_text())
    meta["labels"] = ["neg", "neutral", "pos"]
    (tmp_path / "three.meta.json").write_text(json.dumps(meta))

    with pytest.raises(DataError, match="3 labels"):
        load_model(path, dictionary)


def test_recorded_dictionary_moved_is_reported(tiny_reviews_model, tmp_path):
    with np.load(tiny_reviews_model) as arrays:
        arrays = dict(arrays)
    options = json.loads(str(arrays["options_json"]))
    options["dictionary"] = str(tmp_path / "moved.dict.pkl")
    options["dataset_file"] = str(tmp_path / "moved.pkl")
    arrays["options_json"] = np.array(json.dumps(options))
    path = tmp_path / "moved.npz"
    np.savez(path, **arrays)

    with pytest.raises(FileNotFoundError, match="moved.dict.pkl.*--dict"):
        load_model(path)


def test_unknown_mode_rejected(tiny_reviews_model):
    with pytest.raises(ValueError, match="mode='GPU'"):
        load_model(tiny_reviews_model, mode="GPU")


def test_command_line_texts_as_arguments(tiny_reviews_model, capsys):
    status = predict_main(["--model", str(tiny_reviews_model), "A great and wonderful film.",
                           ""])
    lines = capsys.readouterr().out.splitlines()

    assert status == 0
    assert len(lines) == 2
    assert lines[0].split("\t")[0] in ("neg", "pos")
    assert "neg=" in lines[0]
    assert "pos=" in lines[0]
    assert "note: empty text" in lines[1]


def test_command_line_file_and_json(tiny_reviews_model, model, tmp_path, capsys, test_reviews):
    texts = test_reviews[0][:5] + [""]
    text_file = tmp_path / "reviews.txt"
    text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    status = predict_main(["--model", str(tiny_reviews_model), "--file", str(text_file),
                           "--json"])
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert status == 0
    assert [result["text"] for result in results] == texts
    expected = model.predict_proba(texts)
    for result, row in zip(results, expected):
        assert result["label"] == model.labels[int(row.argmax())]
        assert [result["probabilities"][label] for label in model.labels] == \
            pytest.approx(row.tolist())


def test_command_line_reports_bad_model(tmp_path, capsys):
    path = tmp_path / "notes.npz"
    path.write_text("not a model")
    status = predict_main(["--model", str(path), "some text"])
    err = capsys.readouterr().err

    assert status == 1
    assert len(err.strip().splitlines()) == 1
    assert "notes.npz" in err


def test_command_line_reports_missing_text_file(tiny_reviews_model, tmp_path, capsys):
    status = predict_main(["--model", str(tiny_reviews_model), "--file",
                           str(tmp_path / "absent.txt")])

    assert status == 1
    assert "absent.txt" in capsys.readouterr().err


def test_command_line_reads_standard_input(tiny_reviews_model, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "lstm_tutorial.predict", "--model", str(tiny_reviews_model),
         "--json"],
        input="A great film.\n\nawful and boring\n", capture_output=True, text=True,
        cwd=tmp_path, timeout=180)
    results = [json.loads(line) for line in completed.stdout.splitlines()]

    assert completed.returncode == 0, completed.stderr
    assert [result["text"] for result in results] == ["A great film.", "", "awful and boring"]
    assert results[1]["notes"] == [NOTE_EMPTY]


def test_evaluate_script_on_tiny_reviews(tiny_reviews, tiny_reviews_model):
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "evaluate_reviews.py"),
         str(tiny_reviews.folder), "--model", str(tiny_reviews_model), "-n", "0", "--json"],
        capture_output=True, text=True, timeout=180)
    result = json.loads(completed.stdout)
    with np.load(tiny_reviews_model) as arrays:
        test_err = float(arrays["test_err"])

    assert completed.returncode == 0, completed.stderr
    assert result["reviews"] == 40
    assert result["identical_ids"] == 40
    assert result["match"] is True
    assert result["pred_error"] == pytest.approx(test_err, abs=1e-12)
    assert result["accuracy"] == pytest.approx(1.0 - test_err, abs=1e-12)


@pytest.mark.slow
def test_real_reviews_accuracy_equals_pred_error(real_archive, real_dataset, tmp_path):
    from lstm_tutorial import train_lstm

    saveto = tmp_path / "real_model.npz"
    train_lstm(dim_proj=16, max_epochs=2, validFreq=100, saveFreq=10000, dispFreq=10000,
               dataset=str(real_dataset), saveto=str(saveto), mode="NUMBA", test_size=100)
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "evaluate_reviews.py"), str(real_archive),
         "--model", str(saveto), "-n", "300", "--seed", "1", "--json"],
        capture_output=True, text=True, timeout=600)
    result = json.loads(completed.stdout)

    assert completed.returncode == 0, completed.stderr
    assert result["reviews"] == 300
    assert result["identical_ids"] == 300
    assert result["labels_agree"] is True
    assert result["accuracy"] == pytest.approx(1.0 - result["pred_error"], abs=1e-12)


def test_compiled_graph_has_one_forward_lstm(model):
    from pytensor.scan.op import Scan

    from lstm_tutorial.lstm_op import LSTMSequence, LSTMSequenceGrad

    nodes = model.f_pred_prob.maker.fgraph.apply_nodes
    assert sum(isinstance(node.op, LSTMSequence) for node in nodes) == 1
    assert not any(isinstance(node.op, Scan | LSTMSequenceGrad) for node in nodes)
    assert [variable.name for variable in model.f_pred_prob.maker.fgraph.inputs[:2]] == \
        ["x", "mask"]


def test_dictionary_without_metadata_uses_class_numbers(tiny_reviews_model, tiny_reviews,
                                                        tmp_path, caplog):
    path = strip_options(tiny_reviews_model, tmp_path / "original.npz")
    dictionary = tmp_path / "bare.dict.pkl"
    dictionary.write_bytes(tiny_reviews.dictionary.read_bytes())
    with caplog.at_level("WARNING", logger="lstm_tutorial.prediction"):
        bare = load_model(path, dictionary)

    assert bare.labels == ["0", "1"]
    assert bare.tokenizer_settings == {"tokenizer": "moses"}
    assert "meta.json" in caplog.text
    assert "no dictionary digest" in caplog.text
