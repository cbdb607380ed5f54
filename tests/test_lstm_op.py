"""The fused LSTM Op against the tutorial's scan, and the fused optimizers against the two-step ones."""

import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from lstm_tutorial.lstm_op import LSTMSequence, lstm_backward, lstm_forward
from lstm_tutorial.model import (
    build_model,
    init_params,
    init_tparams,
    lstm_layer,
    lstm_layer_fused,
)
from lstm_tutorial.optimizers import (
    ADADELTA_RHO,
    RowGradient,
    adadelta,
    rmsprop,
)

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
    embedding = rng.standard_normal((N_STEPS, N_SAMPLES, DIM))
    weight_w, weight_u = rng.standard_normal((2, DIM, 4 * DIM)) * 0.3
    bias = rng.standard_normal(4 * DIM)
    h = lstm_forward(embedding, padded_mask("float64"), weight_w, weight_u, bias)[0]
    # Review 2 has one token: its state after step 0 never changes.
    assert np.all(h[1:, 2] == h[0, 2])


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_kernel_gradient_matches_finite_differences(n_threads):
    rng = np.random.default_rng(2)
    n_steps, n_samples, n_in, dim = 4, 3, 3, 2
    embedding = rng.standard_normal((n_steps, n_samples, n_in))
    weight_w = rng.standard_normal((n_in, 4 * dim)) * 0.5
    weight_u = rng.standard_normal((dim, 4 * dim)) * 0.5
    bias = rng.standard_normal(4 * dim) * 0.5
    mask = np.ones((n_steps, n_samples))
    mask[2:, 1] = 0
    # A hole and a fractional mask value exercise the blend of new and carried state.
    mask[1, 0] = 0
    mask[1, 2] = 0.25
    weights = rng.standard_normal((n_steps, n_samples, dim))
    arrays = [embedding, weight_w, weight_u, bias]

    def cost():
        h = lstm_forward(embedding, mask, weight_w, weight_u, bias, n_threads=n_threads)[0]
        return float((h * weights).sum())

    _, h_before, c_before, gates, groups = lstm_forward(
        embedding, mask, weight_w, weight_u, bias, n_threads=n_threads)
    assert groups.size - 1 == n_threads
    analytic = lstm_backward(embedding, mask, weight_w, weight_u, groups, h_before, c_before,
                             gates, weights)
    step = 1e-6
    for array, gradient in zip(arrays, analytic):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + step
            upper = cost()
            array[index] = saved - step
            lower = cost()
            array[index] = saved
            numeric[index] = (upper - lower) / (2 * step)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8)


def test_threads_give_the_same_layer():
    rng = np.random.default_rng(5)
    embedding = rng.standard_normal((9, 7, 5)).astype("float32")
    weight_w, weight_u = (rng.standard_normal((2, 5, 20)) * 0.4).astype("float32")
    bias = rng.standard_normal(20).astype("float32")
    mask = (np.arange(9)[:, None] < rng.integers(1, 10, size=7)).astype("float32")
    serial = lstm_forward(embedding, mask, weight_w, weight_u, bias, n_threads=1)[0]
    for n_threads in (2, 4, 16):
        parallel = lstm_forward(embedding, mask, weight_w, weight_u, bias, n_threads=n_threads)[0]
        np.testing.assert_allclose(parallel, serial, rtol=1e-6, atol=1e-7)


def test_op_rejects_mixed_dtypes():
    with pytest.raises(ValueError, match="float32 or all float64"):
        LSTMSequence()(pt.tensor3(dtype="float32"), pt.matrix(dtype="float64"),
                       pt.matrix(dtype="float32"), pt.matrix(dtype="float32"),
                       pt.vector(dtype="float32"))


def test_op_rejects_wrong_dimensions():
    with pytest.raises(ValueError, match="expected embedding"):
        LSTMSequence()(pt.matrix(dtype="float32"), pt.matrix(dtype="float32"),
                       pt.matrix(dtype="float32"), pt.matrix(dtype="float32"),
                       pt.vector(dtype="float32"))


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
    variables = [pt.tensor3("embedding", dtype="float64"), pt.matrix("mask", dtype="float64"),
                 pt.matrix("W", dtype="float64"), pt.matrix("U", dtype="float64"),
                 pt.vector("b", dtype="float64")]
    c_before = LSTMSequence()(*variables)[2]
    with pytest.raises(NotImplementedError, match="only through its first output h"):
        pytensor.grad(c_before.sum(), variables[3])


@pytest.mark.parametrize("optimizer", [adadelta, rmsprop])
def test_row_gradient_matches_dense_step(optimizer):
    """The fused step on the embedding's rows equals the dense two-function step.

    The batches use disjoint word ids, so that rows sit out several updates
    before their words come back and adadelta's averages must catch up.
    RMSprop turns the rows back into a dense gradient.
    """
    _check_row_gradient(optimizer)


def _check_row_gradient(optimizer):
    rng = np.random.default_rng(6)
    batches = [rng.integers(low, low + 3, size=(5, 3)).astype("int64")
               for low in (2, 6, 10, 2, 10, 6, 2)]
    mask = padded_mask("float64")[:5, :3]
    y = np.array([0, 1, 1], dtype="int64")

    results = []
    with pytensor.config.change_flags(floatX="float64"):
        options = {"dim_proj": 4, "n_words": 14, "ydim": 2, "use_dropout": False,
                   "decay_c": 0.0, "lstm_impl": "fused"}
        params = init_params(options, np.random.default_rng(4))
        for rows in (False, True):
            tparams = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
            model = build_model(tparams, options)
            if rows:
                wrt = [model.embedding_rows] + list(tparams.values())[1:]
                grads = pytensor.grad(model.cost, wrt)
                grads[0] = RowGradient(model.word_ids, grads[0])
            else:
                grads = pytensor.grad(model.cost, list(tparams.values()))
            lr = pt.scalar("lr", dtype="float64")
            functions = optimizer(lr, tparams, grads, model.x, model.mask, model.y, model.cost,
                                  mode="FAST_COMPILE", fused=rows)
            f_grad_shared, f_update = functions
            costs = []
            for x in batches:
                costs.append(float(f_grad_shared(x, mask, y)))
                f_update(0.1)
            state = {shared.name: shared.get_value() for shared in functions.state}
            results.append((costs, [p.get_value() for p in tparams.values()], state))

    (costs, values, state), (row_costs, row_values, row_state) = results
    np.testing.assert_allclose(row_costs, costs, rtol=1e-12)
    for expected, actual in zip(values, row_values):
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-14)
    if optimizer is rmsprop:
        for name, value in state.items():
            np.testing.assert_allclose(row_state[name], value, rtol=1e-10, atol=1e-14)
        return
    # Bring the lazily kept averages of Wemb up to date and compare them too.
    clock, last = row_state["Wemb_clock"], row_state["Wemb_last"]
    decay = ADADELTA_RHO ** (clock - last)
    averages = [name for name in state if name.startswith("Wemb_r")]
    assert averages
    for name in averages:
        np.testing.assert_allclose(row_state[name] * decay[:, None], state[name],
                                   rtol=1e-10, atol=1e-14, err_msg=name)


def test_adadelta_step_on_non_contiguous_arrays():
    from lstm_tutorial.optimizer_ops import AdadeltaStep

    rng = np.random.default_rng(7)
    arrays = [np.asfortranarray(rng.random((3, 4))) for _ in range(4)]
    param, running_grads2, running_up2, grad = (a.copy(order="F") for a in arrays)
    op = AdadeltaStep(0.95, 1e-6, inplace=True)
    node = op.make_node(*[pt.constant(a) for a in arrays])
    storage = [[None] for _ in range(3)]
    # The in-place step on Fortran-ordered shared values must still return the update.
    op.perform(node, arrays, storage)
    values = [cell[0] for cell in storage]
    expected_rg2 = 0.95 * running_grads2 + 0.05 * grad ** 2
    step = -np.sqrt(running_up2 + 1e-6) / np.sqrt(expected_rg2 + 1e-6) * grad
    np.testing.assert_allclose(values[0], param + step, rtol=1e-12)
    np.testing.assert_allclose(values[1], expected_rg2, rtol=1e-12)
    np.testing.assert_allclose(values[2], 0.95 * running_up2 + 0.05 * step ** 2, rtol=1e-12)


FORKED_CHILD_SCRIPT = """
import multiprocessing
import numpy as np
from lstm_tutorial.lstm_op import lstm_forward

rng = np.random.default_rng(8)
embedding = rng.standard_normal((6, 4, 3))
weight_w, weight_u = rng.standard_normal((2, 3, 12)) * 0.4
bias = np.zeros(12)
mask = np.ones((6, 4))
expected = lstm_forward(embedding, mask, weight_w, weight_u, bias, n_threads=2)[0]
with multiprocessing.get_context("fork").Pool(1) as pool:
    result = pool.apply_async(lstm_forward, (embedding, mask, weight_w, weight_u, bias, 2))
    actual = result.get(timeout=60)[0]
assert np.array_equal(actual, expected)
print("same")
"""


def test_threads_work_in_a_forked_child():
    # A fresh interpreter: forking this test process, which may have loaded
    # JAX's threads, could deadlock for reasons of its own.
    finished = subprocess.run([sys.executable, "-c", FORKED_CHILD_SCRIPT], capture_output=True,
                              text=True, timeout=240, check=False)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "same"


def test_thread_count_default_and_environment(monkeypatch):
    from lstm_tutorial import lstm_op

    monkeypatch.delenv("LSTM_TUTORIAL_THREADS", raising=False)
    assert lstm_op.get_num_threads() == 1
    monkeypatch.setenv("LSTM_TUTORIAL_THREADS", "3")
    assert lstm_op.get_num_threads() == 3
    lstm_op.set_num_threads(2)
    try:
        assert lstm_op.get_num_threads() == 2
    finally:
        lstm_op.set_num_threads(None)
    with pytest.raises(ValueError, match="not a positive integer"):
        lstm_op.set_num_threads(0)
