"""PyTensor's JAX compile mode: buckets of padded lengths, training, prediction, missing jax."""

import importlib.util
import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.tensor.random import shared_rng

from lstm_tutorial import train_lstm
from lstm_tutorial.jax_mode import bucket_length, compile_mode, pad_steps
from lstm_tutorial.model import build_model, init_params, init_tparams
from lstm_tutorial.modelio import model_options, open_model, save_model
from lstm_tutorial.optimizers import OPTIMIZERS
from reviews_corpus import TINY_N_WORDS

REPO_ROOT = Path(__file__).resolve().parents[1]
JAX_INSTALLED = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(not JAX_INSTALLED,
                               reason="jax is not installed (pip install -e '.[jax]')")

# dim_proj 4 and a 20-word vocabulary: the graphs compile in a few seconds.
SMALL = dict(n_words=20, dim_proj=4, ydim=2, decay_c=0.0, lstm_impl="scan", seed=1)


def small_batch():
    """Return a time-major batch of three reviews of 6, 4 and 3 tokens (x, mask, y)."""
    rng = np.random.default_rng(0)
    mask = np.ones((6, 3), dtype="float32")
    mask[4:, 1] = 0.0
    mask[3:, 2] = 0.0
    x = rng.integers(2, SMALL["n_words"], size=(6, 3)).astype("int64")
    x[mask == 0] = 0
    return x, mask, np.array([0, 1, 1], dtype="int64")


def build_small_model(use_dropout):
    tparams = init_tparams(init_params(SMALL, np.random.default_rng(0)))
    model = build_model(tparams, dict(SMALL, use_dropout=use_dropout),
                        shared_rng(seed=5, name="dropout_rng"))
    return tparams, model


def build_training_function(mode):
    """Return the parameters and a training step (adadelta, as under JAX) of a model with dropout.

    The step is ``step(x, mask, y)``: adadelta's ``f_grad_shared`` then ``f_update``;
    it returns the cost and has ``compile_seconds``, those of ``f_grad_shared``.
    """
    tparams, model = build_small_model(use_dropout=True)
    grads = pytensor.grad(model.cost, wrt=list(tparams.values()))
    lr = pt.scalar("lr", dtype="float32")
    f_grad_shared, f_update = OPTIMIZERS["adadelta"](
        lr, tparams, grads, model.x, model.mask, model.y, model.cost, updates=model.updates,
        mode=mode, fused=False)

    def step(x, mask, y):
        cost = f_grad_shared(x, mask, y)
        f_update(np.float32(0.0))
        return cost

    step.compile_seconds = f_grad_shared.compile_seconds
    return tparams, step


@pytest.mark.parametrize("n_steps, maxlen, expected", [
    (1, None, 32),
    (32, None, 32),
    (33, None, 64),
    (250, None, 256),
    (257, None, 320),
    (700, None, 768),
    (1000, None, 1024),
    (2049, None, 2560),
    (99, 100, 100),
    (96, 100, 96),
    (100, 100, 100),
    (120, 100, 128),
])
def test_bucket_length_table(n_steps, maxlen, expected):
    assert bucket_length(n_steps, maxlen) == expected


def test_bucket_length_rejects_empty_batch():
    with pytest.raises(ValueError, match="n_steps=0"):
        bucket_length(0)


def test_pad_steps_appends_zero_rows():
    mask = np.ones((3, 2), dtype="float32")
    padded = pad_steps(mask, 5)

    assert padded.shape == (5, 2)
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:3], mask)
    assert not padded[3:].any()


def test_padding_keeps_cost_under_numba():
    x, mask, y = small_batch()
    with pytensor.config.change_flags(floatX="float32"):
        _, model = build_small_model(use_dropout=False)
        f_cost = pytensor.function([model.x, model.mask, model.y], model.cost, mode="NUMBA")
        f_pred_prob = pytensor.function([model.x, model.mask], model.pred_prob, mode="NUMBA")

    longer = 40
    cost = f_cost(x, mask, y)
    padded_cost = f_cost(pad_steps(x, longer), pad_steps(mask, longer), y)

    np.testing.assert_allclose(padded_cost, cost, rtol=1e-6)
    np.testing.assert_allclose(f_pred_prob(pad_steps(x, longer), pad_steps(mask, longer)),
                               f_pred_prob(x, mask), rtol=1e-6)


@needs_jax
def test_padding_keeps_cost_under_jax():
    x, mask, y = small_batch()
    with pytensor.config.change_flags(floatX="float32"):
        _, model = build_small_model(use_dropout=False)
        f_cost = pytensor.function([model.x, model.mask, model.y], model.cost,
                                   mode=compile_mode())
        f_pred_prob = pytensor.function([model.x, model.mask], model.pred_prob,
                                        mode=compile_mode())
        reference_cost = pytensor.function([model.x, model.mask, model.y], model.cost,
                                           mode="NUMBA")(x, mask, y)

    # 6 steps go to the bucket of 32; 40 (6 real, 34 padded) to the bucket of 64.
    cost = f_cost(x, mask, y)
    padded_cost = f_cost(pad_steps(x, 40), pad_steps(mask, 40), y)

    assert sorted(f_cost.compile_seconds) == [(32, 3), (64, 3)]
    np.testing.assert_allclose(cost, reference_cost, rtol=1e-5)
    np.testing.assert_allclose(padded_cost, cost, rtol=1e-6)
    np.testing.assert_allclose(f_pred_prob(pad_steps(x, 40), pad_steps(mask, 40)),
                               f_pred_prob(x, mask), rtol=1e-6)


@needs_jax
def test_training_steps_ignore_bucket_changes():
    """Alternating buckets gives the costs, parameters and dropout stream of one bucket."""
    x, mask, y = small_batch()
    long_x, long_mask = pad_steps(x, 40), pad_steps(mask, 40)
    with pytensor.config.change_flags(floatX="float32"):
        one_bucket, f_one_bucket = build_training_function(compile_mode())
        two_buckets, f_two_buckets = build_training_function(compile_mode())

    costs_one_bucket = [float(f_one_bucket(x, mask, y)) for _ in range(4)]
    costs_two_buckets = [float(f_two_buckets(long_x, long_mask, y) if step % 2 else
                               f_two_buckets(x, mask, y)) for step in range(4)]

    assert sorted(f_two_buckets.compile_seconds) == [(32, 3), (64, 3)]
    # Dropout draws a new mask every update, so the costs differ from step to step.
    assert len(set(costs_one_bucket)) == 4
    np.testing.assert_allclose(costs_two_buckets, costs_one_bucket, rtol=1e-6)
    for name in one_bucket:
        np.testing.assert_allclose(two_buckets[name].get_value(), one_bucket[name].get_value(),
                                   rtol=1e-5, atol=1e-7, err_msg=name)


@needs_jax
def test_training_step_pads_to_maxlen():
    x, mask, y = small_batch()
    with pytensor.config.change_flags(floatX="float32"):
        _, f_grad_shared = build_training_function(compile_mode(maxlen=50))
        _, model = build_small_model(use_dropout=False)
        f_pred_prob = pytensor.function([model.x, model.mask], model.pred_prob,
                                        mode=compile_mode(maxlen=50))

    f_grad_shared(x, mask, y)
    f_grad_shared(pad_steps(x, 40), pad_steps(mask, 40), y)
    f_pred_prob(x, mask)
    f_pred_prob(pad_steps(x, 40), pad_steps(mask, 40))

    # One shape for every training batch that fits maxlen; evaluation keeps its buckets.
    assert sorted(f_grad_shared.compile_seconds) == [(50, 3)]
    assert sorted(f_pred_prob.compile_seconds) == [(32, 3), (50, 3)]


@needs_jax
def test_dropout_generator_advances():
    x, mask, y = small_batch()
    with pytensor.config.change_flags(floatX="float32"):
        tparams, model = build_small_model(use_dropout=True)
        f_cost = pytensor.function([model.x, model.mask, model.y], model.cost,
                                   updates=model.updates, mode=compile_mode())
    before = model.rng.get_value().bit_generator.state["state"]["state"]

    f_cost(x, mask, y)

    after = model.rng.get_value().bit_generator.state["state"]["state"]
    assert after != before
    # Only the low 64 bits hold JAX's key; the rest of the PCG64 state is kept.
    assert after >> 64 == before >> 64


@needs_jax
def test_jax_training_saves_model(tiny_reviews, tmp_path):
    saveto = tmp_path / "jax_model.npz"
    train_err, valid_err, test_err = train_lstm(
        dataset=str(tiny_reviews.dataset), saveto=str(saveto), mode="JAX", dim_proj=8,
        n_words=TINY_N_WORDS, max_epochs=80, batch_size=16, valid_batch_size=64,
        validFreq=35, saveFreq=10000, dispFreq=10000, valid_portion=0.1)

    arrays = open_model(saveto)
    history = arrays["history_errs"]
    options = model_options(arrays)
    # 108 training reviews make 7 updates an epoch: 560 updates, 16 validations.
    assert history.shape == (16, 2)
    assert ((history >= 0.0) & (history <= 1.0)).all()
    assert options["mode"] == "JAX"
    # The fused Op has no JAX implementation; the default lstm_impl is replaced.
    assert options["lstm_impl"] == "scan"
    assert arrays["Wemb"].dtype == np.float32
    # Six words of each sentiment decide the label. Adadelta's steps start small, so
    # the errors stay near 0.5 for about 40 epochs; 80 learn most of it.
    assert train_err < 0.25
    assert valid_err < 0.5
    assert test_err < 0.5
    assert history[-1].max() < history[0].max()
    assert float(arrays["test_err"]) == pytest.approx(test_err)

    # Prediction under JAX (the scan) agrees with the default mode (the fused Op).
    from lstm_tutorial import load_model

    texts = ["A wonderful and moving film.", "Dull, boring and clumsy.", "The plot."]
    jax_model = load_model(saveto, mode="JAX")
    reference = load_model(saveto)
    assert jax_model.mode == "JAX"
    assert reference.mode != "JAX"
    np.testing.assert_allclose(jax_model.predict_proba(texts), reference.predict_proba(texts),
                               rtol=1e-4, atol=1e-6)


@needs_jax
def test_float64_needs_jax_x64(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="JAX_ENABLE_X64=1"):
        train_lstm(dataset=str(tiny_dataset), saveto=str(tmp_path / "m.npz"), mode="JAX",
                   floatX="float64", dim_proj=4, n_words=10)


def run_without_jax(tmp_path, *arguments):
    """Run ``python *arguments`` where ``import jax`` raises ImportError."""
    blocker = tmp_path / "block_jax"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['jax'] = None\n")
    env = {"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *arguments], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=300)


def test_missing_jax_stops_the_command(tiny_dataset, tmp_path):
    saveto = tmp_path / "m.npz"
    result = run_without_jax(tmp_path, "-m", "lstm_tutorial.train", "--mode", "JAX",
                             "--dataset", str(tiny_dataset), "--saveto", str(saveto))

    assert result.returncode == 1
    assert "mode='JAX' needs jax" in result.stderr
    assert "pip install 'lstm-tutorial[jax]'" in result.stderr
    # It stops before loading the data, and without a traceback.
    assert "data dataset=" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not saveto.exists()


def test_missing_jax_raises_in_python(tiny_dataset, tmp_path):
    script = ("from lstm_tutorial import train_lstm\n"
              "from lstm_tutorial.jax_mode import JaxUnavailableError\n"
              "try:\n"
              f"    train_lstm(mode='JAX', dataset={str(tiny_dataset)!r}, saveto='')\n"
              "except JaxUnavailableError as error:\n"
              "    print('raised:', error)\n")
    result = run_without_jax(tmp_path, "-c", script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("raised: mode='JAX' needs jax")


def test_missing_jax_for_jax_model(tiny_reviews_model, tmp_path):
    """A model trained under JAX loads where jax is missing; --mode JAX fails there."""
    arrays = open_model(tiny_reviews_model)
    options = dict(model_options(arrays), mode="JAX", lstm_impl="scan")
    params = OrderedDict((name, arrays[name]) for name in
                         ("Wemb", "lstm_W", "lstm_U", "lstm_b", "U", "b"))
    jax_model = tmp_path / "trained_with_jax.npz"
    save_model(jax_model, params, arrays["history_errs"], options)

    script = ("import json\n"
              "from lstm_tutorial import load_model\n"
              f"model = load_model({str(jax_model)!r})\n"
              "print(json.dumps([model.mode, model.predict(['A wonderful film.']).tolist()]))\n")
    result = run_without_jax(tmp_path, "-c", script)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0] != "JAX"

    result = run_without_jax(tmp_path, "-m", "lstm_tutorial.predict", "--model", str(jax_model),
                             "--mode", "JAX", "A wonderful film.")
    assert result.returncode == 1
    assert "mode='JAX' needs jax" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_line_offers_jax():
    from lstm_tutorial.train import build_parser

    mode_action = next(action for action in build_parser()._actions if action.dest == "mode")
    assert "JAX" in mode_action.choices


@needs_jax
@pytest.mark.slow
def test_jax_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    """SIGTERM, then resume=True, gives the parameters and history of a run never stopped."""
    import random
    import signal

    from conftest import write_dataset
    from test_resume import RUN, _reviews, _signal_after_update

    rng = random.Random(0)
    dataset = str(write_dataset(tmp_path / "small.pkl", _reviews(rng, 48), _reviews(rng, 16)))
    reference_path = tmp_path / "reference.npz"
    train_lstm(dataset=dataset, saveto=str(reference_path), mode="JAX", **RUN)
    reference = open_model(reference_path)

    saveto = tmp_path / "m.npz"
    _signal_after_update(monkeypatch, 30, signal.SIGTERM)
    assert train_lstm(dataset=dataset, saveto=str(saveto), mode="JAX", **RUN).interrupted
    monkeypatch.undo()
    train_lstm(dataset=dataset, saveto=str(saveto), mode="JAX", resume=True, **RUN)

    resumed = open_model(saveto)
    # The errors move during the run, so equal histories compare real training.
    assert len(set(reference["history_errs"][:, 0].tolist())) >= 3
    np.testing.assert_array_equal(resumed["history_errs"], reference["history_errs"])
    for name in ("Wemb", "lstm_W", "lstm_U", "lstm_b", "U", "b"):
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
