"""Each optimizer's update against its formula, written out in NumPy."""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from lstm_tutorial.optimizers import adadelta, rmsprop, sgd

MODE = "FAST_COMPILE"
TARGET = np.array([0.5, -1.0, 2.0])
START = np.array([0.1, 0.2, -0.3])


@pytest.fixture(autouse=True)
def float64():
    with pytensor.config.change_flags(floatX="float64"):
        yield


def compile_optimizer(optimizer):
    param = pytensor.shared(START.copy(), name="p")
    tparams = OrderedDict(p=param)
    x = pt.matrix("x", dtype="int64")
    mask = pt.matrix("mask")
    y = pt.vector("y", dtype="int64")
    # The cost ignores the data on purpose; its gradient is p - TARGET.
    cost = 0.5 * ((param - TARGET) ** 2).sum() + 0.0 * (x.sum() + mask.sum() + y.sum())
    grads = pytensor.grad(cost, wrt=[param])
    lr = pt.scalar("lr")
    f_grad_shared, f_update = optimizer(lr, tparams, grads, x, mask, y, cost, mode=MODE)
    return param, f_grad_shared, f_update


def run_steps(optimizer, n_steps=4, lr=0.3):
    param, f_grad_shared, f_update = compile_optimizer(optimizer)
    batch = (np.zeros((1, 1), dtype="int64"), np.ones((1, 1)), np.zeros(1, dtype="int64"))
    values = []
    for _ in range(n_steps):
        f_grad_shared(*batch)
        f_update(lr)
        values.append(param.get_value().copy())
    return values


def test_sgd_matches_formula():
    p = START.copy()
    for value in run_steps(sgd):
        p = p - 0.3 * (p - TARGET)
        np.testing.assert_allclose(value, p, rtol=1e-12)


def test_adadelta_matches_formula():
    p, eg2, ed2 = START.copy(), np.zeros(3), np.zeros(3)
    for value in run_steps(adadelta):
        g = p - TARGET
        eg2 = 0.95 * eg2 + 0.05 * g ** 2
        d = -np.sqrt(ed2 + 1e-6) / np.sqrt(eg2 + 1e-6) * g
        ed2 = 0.95 * ed2 + 0.05 * d ** 2
        p = p + d
        np.testing.assert_allclose(value, p, rtol=1e-12)


def test_adadelta_ignores_learning_rate():
    np.testing.assert_array_equal(run_steps(adadelta, lr=0.3)[-1],
                                  run_steps(adadelta, lr=5.0)[-1])


def test_rmsprop_matches_formula():
    p, eg, eg2, v = START.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for value in run_steps(rmsprop):
        g = p - TARGET
        eg = 0.95 * eg + 0.05 * g
        eg2 = 0.95 * eg2 + 0.05 * g ** 2
        v = 0.9 * v - 1e-4 * g / np.sqrt(eg2 - eg ** 2 + 1e-4)
        p = p + v
        np.testing.assert_allclose(value, p, rtol=1e-12)


@pytest.mark.parametrize("optimizer, names", [
    (sgd, []),
    (adadelta, ["p_rup2", "p_rgrad2"]),
    (rmsprop, ["p_rgrad", "p_rgrad2", "p_updir"]),
])
def test_optimizer_state_lists_running_averages(optimizer, names):
    param = pytensor.shared(START.copy(), name="p")
    x = pt.matrix("x", dtype="int64")
    mask = pt.matrix("mask")
    y = pt.vector("y", dtype="int64")
    cost = ((param - TARGET) ** 2).sum() + 0.0 * (x.sum() + mask.sum() + y.sum())
    functions = optimizer(pt.scalar("lr"), OrderedDict(p=param), pytensor.grad(cost, [param]),
                          x, mask, y, cost, mode=MODE)
    f_grad_shared, f_update = functions
    assert [shared.name for shared in functions.state] == names
