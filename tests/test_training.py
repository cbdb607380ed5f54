"""The training loop: batching, early stopping, seeding, reloading and modes."""

from types import SimpleNamespace

import numpy as np
import pytest

from lstm_tutorial import train_lstm
from lstm_tutorial.fileio import DataError
from lstm_tutorial.modelio import model_options, open_model, save_model
from lstm_tutorial.training import (
    TrainingDivergedError,
    TrainingState,
    _validate,
    get_minibatches_idx,
)

# Small, fast settings shared by every run below, so PyTensor compiles the
# training graph once (NUMBA's on-disk cache serves the later runs).
TINY = dict(dim_proj=8, n_words=10, max_epochs=3, batch_size=4, valid_batch_size=8,
            validFreq=5, saveFreq=1000, dispFreq=5, maxlen=None, valid_portion=0.2,
            patience=10)


def test_minibatches_cover_everything_and_are_reusable():
    rng = np.random.default_rng(0)
    batches = get_minibatches_idx(10, 4, shuffle=True, rng=rng)
    assert [len(index) for _, index in batches] == [4, 4, 2]
    first = sorted(np.concatenate([index for _, index in batches]))
    second = sorted(np.concatenate([index for _, index in batches]))
    assert first == second == list(range(10))


def run_validations(valid_errors, patience):
    """Feed made-up validation errors through the loop's validation step."""
    state = TrainingState()
    sequence = iter(valid_errors)
    functions = SimpleNamespace(tparams={})
    options = {"patience": patience}
    for _ in valid_errors:
        state.n_updates += 1
        _validate(options, functions, lambda: (0.0, next(sequence), 0.0), state)
        if state.stopped_early:
            break
    return state


def test_early_stopping_rule():
    # Patience 2: validations 4, 5 and 6 are no better than the best from
    # before the last two, so the third of them passes the patience.
    state = run_validations([0.5, 0.4, 0.45, 0.45, 0.41, 0.42, 0.43], patience=2)
    assert state.stopped_early
    assert len(state.history_errs) == 6
    assert state.bad_counter == 3


def test_early_stopping_counter_resets_on_new_best():
    state = run_validations([0.5, 0.4, 0.45, 0.45, 0.39, 0.42, 0.43, 0.44, 0.46], patience=2)
    assert state.stopped_early
    assert len(state.history_errs) == 8


def test_early_stopping_never_with_improvement():
    state = run_validations([0.5, 0.4, 0.3, 0.2, 0.1], patience=1)
    assert not state.stopped_early


@pytest.mark.slow
def test_same_seed_same_history(tiny_dataset, tmp_path):
    histories = []
    for run in range(2):
        saveto = tmp_path / f"model{run}.npz"
        train_lstm(dataset=str(tiny_dataset), saveto=str(saveto), seed=3, **TINY)
        histories.append(open_model(saveto)["history_errs"])
    assert len(histories[0]) == 4
    np.testing.assert_array_equal(histories[0], histories[1])


@pytest.mark.slow
def test_model_file_contents(tiny_dataset, tmp_path):
    saveto = tmp_path / "model.npz"
    errors = train_lstm(dataset=str(tiny_dataset), saveto=str(saveto), **TINY)
    with np.load(saveto, allow_pickle=False) as archive:
        names = set(archive.files)
        assert {"Wemb", "lstm_W", "lstm_U", "lstm_b", "U", "b", "history_errs", "train_err",
                "valid_err", "test_err"} <= names
        assert archive["Wemb"].shape == (10, 8)
        assert archive["U"].shape == (8, 2)
        assert archive["lstm_W"].dtype == np.float32
        assert float(archive["test_err"]) == pytest.approx(errors[2])
    options = model_options(open_model(saveto))
    assert options["optimizer"] == "adadelta"
    assert options["ydim"] == 2
    assert options["dim_proj"] == 8
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.slow
def test_reload_model_reads_given_path(tiny_dataset, tmp_path):
    first = tmp_path / "elsewhere" / "first.npz"
    first.parent.mkdir()
    train_lstm(dataset=str(tiny_dataset), saveto=str(first), **TINY)
    # Starting from the saved weights with no training reproduces its errors.
    params = open_model(first)
    errors = train_lstm(dataset=str(tiny_dataset), saveto=str(tmp_path / "second.npz"),
                        reload_model=str(first), **dict(TINY, max_epochs=1, validFreq=10 ** 6,
                                                        batch_size=10 ** 4))
    assert errors[2] != 1.0
    reloaded = open_model(tmp_path / "second.npz")
    assert reloaded["Wemb"].shape == params["Wemb"].shape


@pytest.mark.slow
def test_reload_model_shape_mismatch_names_parameter(tiny_dataset, tmp_path):
    other = tmp_path / "other.npz"
    save_model(other, {"Wemb": np.zeros((10, 4), "float32"), "lstm_W": np.zeros((4, 16), "float32"),
                       "lstm_U": np.zeros((4, 16), "float32"), "lstm_b": np.zeros(16, "float32"),
                       "U": np.zeros((4, 2), "float32"), "b": np.zeros(2, "float32")}, [], {})
    with pytest.raises(DataError, match=r"parameter 'Wemb' .* shape \(10, 4\)"):
        train_lstm(dataset=str(tiny_dataset), saveto="", reload_model=str(other), **TINY)


def test_reload_model_missing_file(tiny_dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        train_lstm(dataset=str(tiny_dataset), reload_model=str(tmp_path / "missing.npz"),
                   saveto=str(tmp_path / "m.npz"), **TINY)


@pytest.mark.slow
def test_diverging_cost_keeps_saved_model(tiny_dataset, tmp_path):
    saveto = tmp_path / "model.npz"
    saveto.write_bytes(b"previous model")
    with pytest.raises(TrainingDivergedError, match="cost is nan at update 2"):
        train_lstm(dataset=str(tiny_dataset), saveto=str(saveto), optimizer="sgd",
                   lrate=1e30, **TINY)
    assert saveto.read_bytes() == b"previous model"

    # Saving after every update keeps the last finite parameters.
    with pytest.raises(TrainingDivergedError):
        train_lstm(dataset=str(tiny_dataset), saveto=str(saveto), optimizer="sgd",
                   lrate=1e30, **dict(TINY, saveFreq=1))
    saved = open_model(saveto)
    for name in ("Wemb", "lstm_W", "lstm_U", "lstm_b", "U", "b"):
        assert np.isfinite(saved[name]).all(), name


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["NUMBA", "CVM"])
def test_modes_train(tiny_dataset, tmp_path, mode):
    saveto = tmp_path / f"{mode}.npz"
    train_err, valid_err, test_err = train_lstm(
        dataset=str(tiny_dataset), saveto=str(saveto), mode=mode, **dict(TINY, max_epochs=6))
    history = open_model(saveto)["history_errs"]
    assert len(history) > 0
    # The tiny dataset is separable by its word ids; any working mode learns it.
    assert valid_err < 0.5
    assert test_err < 0.5


@pytest.mark.parametrize("name, value, message", [
    ("batch_size", 0, "batch_size=0"),
    ("n_words", 1, "n_words=1"),
    ("dim_proj", 0, "dim_proj=0"),
    ("patience", -1, "patience=-1"),
    ("validFreq", -5, "validFreq=-5"),
    ("valid_portion", 1.0, "valid_portion=1.0"),
    ("optimizer", "adam", "optimizer='adam'"),
    ("mode", "C", "mode='C'"),
    ("floatX", "float16", "floatX='float16'"),
    ("noise_std", 0.1, "noise_std=0.1"),
])
def test_invalid_options_are_named(tiny_dataset, name, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        train_lstm(dataset=str(tiny_dataset), **dict(TINY, **{name: value}))


def test_maxlen_leaving_nothing(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="maxlen=2 leaves no training review"):
        train_lstm(dataset=str(tiny_dataset), saveto=str(tmp_path / "m.npz"),
                   **dict(TINY, maxlen=2))
