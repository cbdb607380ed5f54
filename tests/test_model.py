"""The LSTM graph against a NumPy reference, finite differences and its contracts."""

import numpy as np
import pytensor
import pytest

from lstm_tutorial.model import build_model, init_params, init_tparams, lstm_layer

# The Python linker compiles small graphs in about a second; these tests check
# the mathematics, and the end-to-end tests cover the compiled modes.
MODE = "FAST_COMPILE"
DIM, N_WORDS, YDIM = 3, 7, 3


@pytest.fixture(autouse=True)
def float64():
    with pytensor.config.change_flags(floatX="float64"):
        yield


def options(**overrides):
    base = {"dim_proj": DIM, "n_words": N_WORDS, "ydim": YDIM, "use_dropout": False,
            "decay_c": 0.0, "seed": 5}
    base.update(overrides)
    return base


def random_params(seed=0):
    params = init_params(options(), np.random.default_rng(seed))
    # Non-zero biases and larger classifier weights make every gradient visible.
    rng = np.random.default_rng(seed + 1)
    for name in params:
        params[name] = params[name] + 0.3 * rng.standard_normal(params[name].shape)
    return params


def padded_batch():
    # Three examples of lengths 4, 2 and 3: time-major, zero padded.
    x = np.array([[1, 2, 3], [4, 5, 6], [2, 0, 1], [6, 0, 0]], dtype="int64")
    mask = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 1], [1, 0, 0]], dtype="float64")
    y = np.array([0, 2, 1], dtype="int64")
    return x, mask, y


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def reference_lstm(params, embedding, mask):
    n_steps, n_samples, _ = embedding.shape
    h = np.zeros((n_samples, DIM))
    c = np.zeros((n_samples, DIM))
    hs = []
    for t in range(n_steps):
        z = h @ params["lstm_U"] + embedding[t] @ params["lstm_W"] + params["lstm_b"]
        i, f, o = (sigmoid(z[:, k * DIM:(k + 1) * DIM]) for k in range(3))
        candidate = np.tanh(z[:, 3 * DIM:])
        m = mask[t][:, None]
        c = m * (f * c + i * candidate) + (1 - m) * c
        h = m * (o * np.tanh(c)) + (1 - m) * h
        hs.append(h)
    return np.stack(hs)


def reference_cost(params, x, mask, y, decay_c=0.0):
    embedding = params["Wemb"][x]
    h = reference_lstm(params, embedding, mask)
    pooled = (h * mask[:, :, None]).sum(axis=0) / mask.sum(axis=0)[:, None]
    logits = pooled @ params["U"] + params["b"]
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cost = -np.log(probs[np.arange(len(y)), y] + 1e-8).mean()
    return cost + decay_c * (params["U"] ** 2).sum(), probs


def test_lstm_layer_matches_numpy():
    params = random_params()
    tparams = init_tparams(params)
    x, mask, _ = padded_batch()
    state_below = pytensor.tensor.tensor3("state_below")
    mask_var = pytensor.tensor.matrix("mask")
    h = lstm_layer(tparams, state_below, options(), mask=mask_var)
    f = pytensor.function([state_below, mask_var], h, mode=MODE)
    embedding = params["Wemb"][x]
    np.testing.assert_allclose(f(embedding, mask), reference_lstm(params, embedding, mask),
                               rtol=1e-10, atol=1e-12)


def test_padded_steps_carry_state():
    params = random_params()
    tparams = init_tparams(params)
    x, mask, _ = padded_batch()
    state_below = pytensor.tensor.tensor3("state_below")
    mask_var = pytensor.tensor.matrix("mask")
    f = pytensor.function([state_below, mask_var],
                          lstm_layer(tparams, state_below, options(), mask=mask_var), mode=MODE)
    h = f(params["Wemb"][x], mask)
    # Example 1 has two real steps; its state after them never changes.
    np.testing.assert_array_equal(h[2, 1], h[1, 1])
    np.testing.assert_array_equal(h[3, 1], h[1, 1])


@pytest.mark.parametrize("decay_c", [0.0, 0.1])
def test_cost_and_gradients_match_reference(decay_c):
    params = random_params()
    tparams = init_tparams(params)
    model = build_model(tparams, options(decay_c=decay_c))
    grads = pytensor.grad(model.cost, wrt=list(tparams.values()))
    f = pytensor.function([model.x, model.mask, model.y], [model.cost, *grads], mode=MODE)
    x, mask, y = padded_batch()
    cost, *computed = f(x, mask, y)
    expected_cost, _ = reference_cost(params, x, mask, y, decay_c)
    assert cost == pytest.approx(expected_cost, rel=1e-10)

    # Central finite differences of the NumPy reference, entry by entry.
    epsilon = 1e-6
    for (name, value), gradient in zip(params.items(), computed):
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {k: v.copy() for k, v in params.items()}
            shifted[name][index] += epsilon
            plus, _ = reference_cost(shifted, x, mask, y, decay_c)
            shifted[name][index] -= 2 * epsilon
            minus, _ = reference_cost(shifted, x, mask, y, decay_c)
            numeric[index] = (plus - minus) / (2 * epsilon)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8, err_msg=name)
        assert np.abs(gradient).max() > 0 or name == "Wemb", f"{name} gradient is all zero"


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7])
def test_softmax_rows_sum_to_one(batch_size):
    tparams = init_tparams(random_params())
    model = build_model(tparams, options(use_dropout=True))
    f = pytensor.function([model.x, model.mask], model.pred_prob, mode=MODE)
    rng = np.random.default_rng(batch_size)
    x = rng.integers(1, N_WORDS, size=(5, batch_size))
    mask = np.ones((5, batch_size))
    probs = f(x, mask)
    assert probs.shape == (batch_size, YDIM)
    np.testing.assert_allclose(probs.sum(axis=1), np.ones(batch_size), rtol=1e-12)


def test_evaluation_scales_by_half_without_noise():
    params = random_params()
    tparams = init_tparams(params)
    model = build_model(tparams, options(use_dropout=True))
    f = pytensor.function([model.x, model.mask], model.pred_prob, mode=MODE)
    x, mask, _ = padded_batch()
    halved = dict(params, U=params["U"] * 0.5)
    _, expected = reference_cost(halved, x, mask, np.zeros(3, dtype="int64"))
    np.testing.assert_allclose(f(x, mask), expected, rtol=1e-10)
    np.testing.assert_array_equal(f(x, mask), f(x, mask))


def test_dropout_draws_new_mask_per_update():
    tparams = init_tparams(random_params())
    model = build_model(tparams, options(use_dropout=True))
    f_cost = pytensor.function([model.x, model.mask, model.y], model.cost,
                               updates=model.updates, mode=MODE)
    x, mask, y = padded_batch()
    costs = {float(f_cost(x, mask, y)) for _ in range(6)}
    assert len(costs) > 1


def test_dropout_seed_repeats():
    x, mask, y = padded_batch()
    runs = []
    for _ in range(2):
        tparams = init_tparams(random_params())
        model = build_model(tparams, options(use_dropout=True, seed=11))
        f_cost = pytensor.function([model.x, model.mask, model.y], model.cost,
                                   updates=model.updates, mode=MODE)
        runs.append([float(f_cost(x, mask, y)) for _ in range(3)])
    assert runs[0] == runs[1]


def test_init_params_shapes_and_orthogonal_blocks():
    params = init_params(options(dim_proj=4), np.random.default_rng(0))
    assert params["Wemb"].shape == (N_WORDS, 4)
    assert params["Wemb"].min() >= 0.0
    assert params["Wemb"].max() < 0.01
    assert params["lstm_W"].shape == (4, 16)
    assert params["lstm_U"].shape == (4, 16)
    assert params["lstm_b"].shape == (16,)
    assert not params["lstm_b"].any()
    for block in range(4):
        weight = params["lstm_U"][:, block * 4:(block + 1) * 4]
        np.testing.assert_allclose(weight @ weight.T, np.eye(4), atol=1e-10)
    assert params["U"].shape == (4, YDIM)
    assert not params["b"].any()
