"""The fused LSTM Op against the tutorial's scan, and the fused optimizers against the two-step ones."""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from lstm_tutorial.lstm_op import LSTMSequence, lstm_backward_kernel, lstm_forward_kernel
from lstm_tutorial.model import (
    build_model,
    init_params,
    init_tparams,
    lstm_layer,
    lstm_layer_fused,
)
from lstm_tutorial.optimizers import adadelta, rmsprop

DIM = 6
N_STEPS = 7
N_SAMPLES = 4


def padded_mask(float_type):
    """A batch of reviews of lengths 7, 5, 1 and 3, left-aligned as prepare_data pads them."""
    mask = np.zeros((N_STEPS, N_SAMPLES), dtype=float_type)
    for column, length in enumerate((7, 5, 1, 3)):
        mask[:length, column] = 1
    return mask


def lstm_outputs_and_grads(layer, mode, float_type):
    """Compile h and the gradients of a cost that reads every step, for one LSTM layer."""
    rng = np.random.default_rng(0)
    with pytensor.config.change_flags(floatX=float_type):
        options = {"dim_proj": DIM, "n_words": 10, "ydim": 2}
        tparams = init_tparams(init_params(options, rng))
        tparams["lstm_b"].set_value(rng.normal(0, 0.5, 4 * DIM).astype(float_type))
        inputs = pt.tensor3("inputs", dtype=float_type)
        mask = pt.matrix("mask", dtype=float_type)
        h = layer(tparams, inputs, options, mask=mask)
        weights = pt.constant(rng.standard_normal((N_STEPS, N_SAMPLES, DIM)).astype(float_type))
        cost = (h * weights).sum() + (h[-1] ** 2).sum()
        wrt = [inputs, tparams["lstm_W"], tparams["lstm_U"], tparams["lstm_b"]]
        function = pytensor.function([inputs, mask], [h, *pytensor.grad(cost, wrt)], mode=mode)
        values = rng.standard_normal((N_STEPS, N_SAMPLES, DIM)).astype(float_type)
        return function(values, padded_mask(float_type))


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_fused_matches_scan_float64(mode):
    reference = lstm_outputs_and_grads(lstm_layer, "FAST_COMPILE", "float64")
    fused = lstm_outputs_and_grads(lstm_layer_fused, mode, "float64")
    names = ["h", "d_inputs", "d_lstm_W", "d_lstm_U", "d_lstm_b"]
    for name, expected, actual in zip(names, reference, fused):
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12, err_msg=name)


def test_fused_matches_scan_float32():
    reference = lstm_outputs_and_grads(lstm_layer, "FAST_COMPILE", "float32")
    fused = lstm_outputs_and_grads(lstm_layer_fused, "NUMBA", "float32")
    for expected, actual in zip(reference, fused):
        assert actual.dtype == np.float32
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_padded_steps_carry_state():
    rng = np.random.default_rng(1)
    x_projection = rng.standard_normal((N_STEPS, N_SAMPLES, 4 * DIM))
    weight_u = rng.standard_normal((DIM, 4 * DIM)) * 0.3
    h, c, _ = lstm_forward_kernel(x_projection, padded_mask("float64"), weight_u)
    # Review 2 has one token: its state after step 0 never changes.
    assert np.all(h[1:, 2] == h[0, 2])
    assert np.all(c[1:, 2] == c[0, 2])


def test_kernel_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    shape = (4, 3, 4 * 2)
    x_projection = rng.standard_normal(shape)
    weight_u = rng.standard_normal((2, 8)) * 0.5
    mask = np.ones(shape[:2])
    mask[2:, 1] = 0
    # A fractional mask value exercises the blend of new and carried state.
    mask[1, 2] = 0.25
    weights = rng.standard_normal((4, 3, 2))

    def cost(x, u):
        return float((lstm_forward_kernel(x, mask, u)[0] * weights).sum())

    h, c, gates = lstm_forward_kernel(x_projection, mask, weight_u)
    grad_x, grad_u = lstm_backward_kernel(mask, weight_u, h, c, gates, weights)
    step = 1e-6
    for array, analytic in ((x_projection, grad_x), (weight_u, grad_u)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + step
            upper = cost(x_projection, weight_u)
            array[index] = saved - step
            lower = cost(x_projection, weight_u)
            array[index] = saved
            numeric[index] = (upper - lower) / (2 * step)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_op_rejects_mixed_dtypes():
    with pytest.raises(ValueError, match="float32 or all float64"):
        LSTMSequence()(pt.tensor3(dtype="float32"), pt.matrix(dtype="float64"),
                       pt.matrix(dtype="float32"))


@pytest.mark.parametrize("optimizer", [adadelta, rmsprop])
def test_fused_optimizer_matches_two_steps(optimizer):
    """Parameters and optimizer state after two updates equal those of the two-function form."""
    rng = np.random.default_rng(3)
    x = rng.integers(2, 10, size=(5, 3)).astype("int64")
    mask = padded_mask("float64")[:5, :3]
    y = np.array([0, 1, 1], dtype="int64")
    results = []
    with pytensor.config.change_flags(floatX="float64"):
        options = {"dim_proj": 4, "n_words": 10, "ydim": 2, "use_dropout": False,
                   "decay_c": 0.0, "lstm_impl": "fused"}
        params = init_params(options, np.random.default_rng(4))
        for fused in (False, True):
            tparams = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
            model = build_model(tparams, options)
            grads = pytensor.grad(model.cost, list(tparams.values()))
            lr = pt.scalar("lr", dtype="float64")
            functions = optimizer(lr, tparams, grads, model.x, model.mask, model.y, model.cost,
                                  mode="FAST_COMPILE", fused=fused)
            f_grad_shared, f_update = functions
            costs = []
            for _ in range(2):
                costs.append(float(f_grad_shared(x, mask, y)))
                f_update(0.1)
            state = [shared.get_value() for shared in functions.state]
            results.append((costs, [p.get_value() for p in tparams.values()], state))
    (costs, values, state), (fused_costs, fused_values, fused_state) = results
    np.testing.assert_allclose(fused_costs, costs, rtol=1e-12)
    for expected, actual in zip(values + state, fused_values + fused_state):
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-14)


def test_grad_through_cell_state_raises():
    x_projection = pt.tensor3("x_projection", dtype="float64")
    mask = pt.matrix("mask", dtype="float64")
    weight_u = pt.matrix("U", dtype="float64")
    _, c, _ = LSTMSequence()(x_projection, mask, weight_u)
    with pytest.raises(NotImplementedError, match="only through its first output h"):
        pytensor.grad(c.sum(), weight_u)
