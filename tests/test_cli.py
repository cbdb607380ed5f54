"""The training command line, end to end, as a user runs it."""

import json
import re
import os
import subprocess
import sys

import numpy as np
import pytensor
import pytest

from lstm_tutorial.cli import parse_parameter_docs
from lstm_tutorial.model import build_model, init_tparams
from lstm_tutorial.modelio import model_options, open_model
from lstm_tutorial.train import build_parser
from lstm_tutorial.training import get_minibatches_idx, load_splits, pred_error, train_lstm

import inspect


def run_train(*args, data_dir=None, cwd=None):
    env = dict(os.environ)
    if data_dir is not None:
        env["LSTM_TUTORIAL_DATA"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "lstm_tutorial.train", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, check=False)


def test_every_keyword_has_a_flag():
    parser = build_parser()
    destinations = {action.dest for action in parser._actions}
    keywords = [name for name, parameter in inspect.signature(train_lstm).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
    assert set(keywords) <= destinations
    documented = parse_parameter_docs(train_lstm)
    assert set(keywords) == set(documented)
    for name in keywords:
        default = inspect.signature(train_lstm).parameters[name].default
        assert parser.get_default(name) == default, name


def test_tutorial_and_kebab_spellings():
    parser = build_parser()
    args = parser.parse_args(["--dim_proj", "64", "--validFreq", "100", "--no-use_dropout",
                              "--max-epochs", "3", "--maxlen", "0", "--reload_model", "x.npz"])
    assert args.dim_proj == 64
    assert args.validFreq == 100
    assert args.use_dropout is False
    assert args.max_epochs == 3
    assert args.maxlen == 0  # train_lstm reads 0 as "no limit"
    assert args.reload_model == "x.npz"


def test_help_lists_meaning_and_default():
    result = run_train("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    # Python 3.13 prints "--dim_proj, --dim-proj INT", older versions repeat the metavar.
    assert re.search(r"--dim_proj( INT)?, --dim-proj INT Size of the word embeddings", text)
    assert "and of the LSTM's hidden state. (default: 128)" in text
    assert "--validFreq INT Compute train, valid and test errors every this many updates" in text


@pytest.mark.slow
def test_train_command_on_real_reviews(real_archive, real_dataset, real_data_dir, tmp_path):
    saveto = tmp_path / "lstm_model.npz"
    result = run_train("--dataset", real_archive, "--max_epochs", 2, "--dim_proj", 16,
                       "--test_size", 300, "--validFreq", 60, "--dispFreq", 50,
                       "--saveto", saveto, data_dir=real_data_dir)
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert "train=2003 valid=105 test=300" in log
    assert "epoch=0 update=50 cost=" in log
    assert "validation=1 update=60" in log
    assert "seconds_per_epoch=" in log
    errors = json.loads(result.stdout.strip().splitlines()[-1])

    # The model opens without pickle and has one history row per validation.
    with np.load(saveto, allow_pickle=False) as archive:
        history = archive["history_errs"]
        assert history.shape == (4, 2)
        assert (history < 1.0).all()
        assert float(archive["test_err"]) == pytest.approx(errors["test_err"])

    # Reloading the parameters and recomputing gives the saved errors back.
    arrays = open_model(saveto)
    options = model_options(arrays)
    options["dataset"] = options["dataset_file"]
    with pytensor.config.change_flags(floatX=options["floatX"]):
        train, valid, test = load_splits(options)
        tparams = init_tparams({name: arrays[name] for name in
                                ("Wemb", "lstm_W", "lstm_U", "lstm_b", "U", "b")})
        model = build_model(tparams, options)
        f_pred_prob = pytensor.function([model.x, model.mask], model.pred_prob,
                                        mode=options["mode"])

        def f_pred(x, mask):
            return f_pred_prob(x, mask).argmax(axis=1)

        from lstm_tutorial.data import prepare_data
        for name, split in (("train_err", train), ("valid_err", valid), ("test_err", test)):
            batches = get_minibatches_idx(len(split[0]), 64)
            assert pred_error(f_pred, prepare_data, split, batches) == pytest.approx(
                float(arrays[name]), abs=1e-12), name


def assert_clean_error(result, *fragments):
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "error:" in last_line
    for fragment in fragments:
        assert fragment in last_line
    assert "Traceback" not in result.stderr


def test_missing_dataset_path(tmp_path):
    result = run_train("--dataset", tmp_path / "nope.tar.gz", "--saveto", tmp_path / "m.npz")
    assert_clean_error(result, "nope.tar.gz", "not found")


def test_truncated_dataset_file(tiny_dataset, tmp_path):
    data = tiny_dataset.read_bytes()
    tiny_dataset.write_bytes(data[: len(data) // 3])
    before = tiny_dataset.read_bytes()
    result = run_train("--dataset", tiny_dataset, "--saveto", tmp_path / "m.npz")
    assert_clean_error(result, "truncated")
    assert tiny_dataset.read_bytes() == before


def test_reload_model_missing(tiny_dataset, tmp_path):
    result = run_train("--dataset", tiny_dataset, "--reload_model", tmp_path / "gone.npz",
                       "--saveto", tmp_path / "m.npz")
    assert_clean_error(result, "gone.npz", "not found")


def test_reload_model_other_dim_proj(tiny_dataset, tmp_path):
    from lstm_tutorial.model import init_params
    from lstm_tutorial.modelio import save_model

    other = tmp_path / "dim4.npz"
    params = init_params({"n_words": 10000, "dim_proj": 4, "ydim": 2}, np.random.default_rng(0))
    save_model(other, params, [], {"dim_proj": 4})
    saved = other.read_bytes()
    existing = tmp_path / "m.npz"
    existing.write_bytes(b"keep me")
    result = run_train("--dataset", tiny_dataset, "--reload_model", other, "--dim_proj", 8,
                       "--saveto", existing)
    assert_clean_error(result, "'Wemb'", "(10000, 4)", "(10000, 8)")
    assert other.read_bytes() == saved
    assert existing.read_bytes() == b"keep me"


@pytest.mark.slow
def test_maxlen_too_small_on_real_reviews(real_dataset, tmp_path):
    existing = tmp_path / "m.npz"
    existing.write_bytes(b"keep me")
    result = run_train("--dataset", real_dataset, "--maxlen", 5, "--saveto", existing)
    assert_clean_error(result, "maxlen=5")
    assert existing.read_bytes() == b"keep me"


def test_output_folder_missing(tiny_dataset, tmp_path):
    result = run_train("--dataset", tiny_dataset, "--saveto", tmp_path / "no" / "m.npz")
    assert_clean_error(result, "does not exist")


def test_bad_flag_value_exits_with_usage(tmp_path):
    result = run_train("--optimizer", "adam")
    assert result.returncode == 2
    assert "invalid choice: 'adam'" in result.stderr


def test_saveto_folder_is_rejected_before_training(tiny_dataset, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    result = run_train("--dataset", tiny_dataset, "--saveto", folder)
    assert_clean_error(result, "is a folder")
    assert list(folder.iterdir()) == []


def test_aborted_numba_call_is_one_line():
    from lstm_tutorial.interrupts import TrainingAborted
    from lstm_tutorial.train import _find_abort

    # Numba reports an exception raised by a signal handler as SystemError.
    try:
        try:
            raise TrainingAborted(15)
        except TrainingAborted as abort:
            raise SystemError("returned a result with an exception set") from abort
    except SystemError as error:
        assert _find_abort(error).signum == 15
    assert _find_abort(SystemError("unrelated")) is None
