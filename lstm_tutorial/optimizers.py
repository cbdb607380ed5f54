"""The tutorial's three optimizers, each as two compiled PyTensor functions.

Every optimizer returns ``(f_grad_shared, f_update)``:

- ``f_grad_shared(x, mask, y)`` computes the cost and stores the gradients
  (and for adadelta and rmsprop the running averages) in shared variables;
- ``f_update(lr)`` applies the step. Adadelta and rmsprop ignore ``lr``.

The returned pair also has a ``state`` attribute: the shared variables that
hold the optimizer's running averages, so that a checkpoint can save and
restore them.

Adadelta and rmsprop also take ``fused=True``: then ``f_grad_shared`` computes
the gradients and applies the step in one compiled function, and ``f_update``
is a no-op kept so that the calling loop stays the same. The parameters and
the state after each pair of calls are those of the two-function form.

A gradient may also be given by rows, as a :class:`RowGradient`: the word
embedding's gradient is zero outside the rows of the batch's words. The
two-function forms, sgd and rmsprop add the rows into a dense gradient. The
fused adadelta touches only those rows (see
:class:`lstm_tutorial.optimizer_ops.AdadeltaRowStep`): a row's running
averages are brought up to date when its word next appears, with the closed
form of the updates it skipped, in which the gradient was zero and the row did
not move. Over a
10,000-word embedding this saves most of an update's memory traffic; the
results equal the dense step's up to rounding. RMSprop cannot do the same:
its momentum moves every row at every update.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

# Adadelta: decay rate of both running averages and the constant under the roots.
ADADELTA_RHO = 0.95
ADADELTA_EPSILON = 1e-6
# RMSprop: decay of the averages, momentum, fixed step and the constant under the root.
RMSPROP_RHO = 0.95
RMSPROP_MOMENTUM = 0.9
RMSPROP_STEP = 1e-4
RMSPROP_EPSILON = 1e-4


class OptimizerFunctions(tuple):
    """The pair ``(f_grad_shared, f_update)`` with the optimizer state attached."""

    def __new__(cls, f_grad_shared, f_update, state):
        functions = super().__new__(cls, (f_grad_shared, f_update))
        functions.state = list(state)
        return functions


class RowGradient:
    """The gradient of a matrix parameter that is zero outside some rows.

    ``ids`` is an int64 vector of row numbers, repeats allowed, and ``rows``
    contains the matching gradient rows. The full gradient is ``rows`` added
    into a zero matrix at ``ids``.
    """

    def __init__(self, ids, rows):
        self.ids = ids
        self.rows = rows

    def dense(self, param):
        """Return the full gradient of ``param`` as a tensor."""
        return pt.inc_subtensor(pt.zeros_like(param)[self.ids], self.rows)



def _dense(params, grads):
    return [g.dense(p) if isinstance(g, RowGradient) else g for p, g in zip(params, grads)]


def _row_clock(param):
    """Shared counters for lazily updated rows: the update count and each row's last update."""
    n_rows = param.get_value(borrow=True).shape[0]
    clock = pytensor.shared(np.asarray(0, dtype="int64"), name=f"{param.name}_clock")
    last = pytensor.shared(np.zeros(n_rows, dtype="int64"), name=f"{param.name}_last")
    return clock, last


def _zeros_like(tparam, suffix):
    value = tparam.get_value(borrow=True)
    return pytensor.shared(np.zeros_like(value), name=f"{tparam.name}_{suffix}")


def _const(value):
    return np.asarray(value, dtype=pytensor.config.floatX)


class NoUpdate:
    """Stand-in ``f_update`` of a fused optimizer: the step already happened."""

    name = "no_update"

    def __call__(self, *args):
        return []


def _compile_grad_shared(inputs, cost, stores, updates, mode):
    all_updates = list(stores) + list((updates or {}).items())
    return pytensor.function(inputs, cost, updates=all_updates, name="f_grad_shared", mode=mode)


def sgd(lr, tparams, grads, x, mask, y, cost, *, updates=None, mode=None, fused=False):
    """Plain stochastic gradient descent: ``p -= lr * g``.

    Parameters
    ----------
    lr : scalar tensor
        Learning rate input of ``f_update``.
    tparams : OrderedDict of shared variables
    grads : list of tensors or RowGradient
        Gradient of ``cost`` for each parameter, in ``tparams`` order.
    x, mask, y : tensors
        Inputs of ``f_grad_shared``.
    cost : scalar tensor
    updates : dict, optional
        Extra updates for ``f_grad_shared`` (the dropout generator's).
    mode : str or Mode, optional
        PyTensor compile mode.
    fused : bool
        Accepted for a uniform signature and ignored: the step needs ``lr``,
        an input of ``f_update``, so sgd always compiles two functions.
    """
    grads = _dense(list(tparams.values()), grads)
    gshared = [_zeros_like(p, "grad") for p in tparams.values()]
    f_grad_shared = _compile_grad_shared([x, mask, y], cost, zip(gshared, grads), updates, mode)
    param_updates = [(p, p - lr * g) for p, g in zip(tparams.values(), gshared)]
    f_update = pytensor.function([lr], [], updates=param_updates, name="sgd_f_update", mode=mode)
    return OptimizerFunctions(f_grad_shared, f_update, [])


def adadelta(lr, tparams, grads, x, mask, y, cost, *, updates=None, mode=None, fused=False):
    """Adadelta (Zeiler, 2012, arXiv:1212.5701) with rho 0.95 and epsilon 1e-6.

    ``Eg2 = .95 Eg2 + .05 g**2``, ``d = -sqrt(Ed2 + 1e-6) / sqrt(Eg2 + 1e-6) * g``,
    ``Ed2 = .95 Ed2 + .05 d**2``, ``p += d``. ``lr`` is ignored. With
    ``fused=True`` ``f_grad_shared`` applies the step itself and ``f_update``
    does nothing. The other arguments are those of :func:`sgd`.
    """
    rho, one_minus_rho, epsilon = _const(ADADELTA_RHO), _const(1 - ADADELTA_RHO), _const(ADADELTA_EPSILON)
    params = list(tparams.values())
    if fused:
        from lstm_tutorial.optimizer_ops import AdadeltaRowStep, AdadeltaStep

        running_up2 = [_zeros_like(p, "rup2") for p in params]
        running_grads2 = [_zeros_like(p, "rgrad2") for p in params]
        clocks = []
        all_updates = []
        for p, g, ru2, rg2 in zip(params, grads, running_up2, running_grads2):
            if isinstance(g, RowGradient):
                clock, last = _row_clock(p)
                clocks += [clock, last]
                new_p, new_rg2, new_ru2, new_last, new_clock = AdadeltaRowStep(
                    ADADELTA_RHO, ADADELTA_EPSILON)(p, rg2, ru2, last, clock, g.ids, g.rows)
                all_updates += [(last, new_last), (clock, new_clock)]
            else:
                new_p, new_rg2, new_ru2 = AdadeltaStep(ADADELTA_RHO, ADADELTA_EPSILON)(
                    p, rg2, ru2, g)
            all_updates += [(rg2, new_rg2), (ru2, new_ru2), (p, new_p)]
        f_grad_shared = _compile_grad_shared([x, mask, y], cost, all_updates, updates, mode)
        return OptimizerFunctions(f_grad_shared, NoUpdate(),
                                  running_up2 + running_grads2 + clocks)

    grads = _dense(params, grads)

    zipped_grads = [_zeros_like(p, "grad") for p in params]
    running_up2 = [_zeros_like(p, "rup2") for p in params]
    running_grads2 = [_zeros_like(p, "rgrad2") for p in params]

    stores = [(zg, g) for zg, g in zip(zipped_grads, grads)]
    stores += [(rg2, rho * rg2 + one_minus_rho * (g ** 2)) for rg2, g in zip(running_grads2, grads)]
    f_grad_shared = _compile_grad_shared([x, mask, y], cost, stores, updates, mode)

    steps = [-pt.sqrt(ru2 + epsilon) / pt.sqrt(rg2 + epsilon) * zg
             for zg, ru2, rg2 in zip(zipped_grads, running_up2, running_grads2)]
    step_averages = [(ru2, rho * ru2 + one_minus_rho * (step ** 2))
                     for ru2, step in zip(running_up2, steps)]
    param_updates = [(p, p + step) for p, step in zip(params, steps)]
    f_update = pytensor.function([lr], [], updates=step_averages + param_updates,
                                 on_unused_input="ignore", name="adadelta_f_update", mode=mode)
    return OptimizerFunctions(f_grad_shared, f_update, running_up2 + running_grads2)


def rmsprop(lr, tparams, grads, x, mask, y, cost, *, updates=None, mode=None, fused=False):
    """RMSprop in the form of Graves (2013, arXiv:1308.0850) with a fixed step 1e-4.

    ``Eg = .95 Eg + .05 g``, ``Eg2 = .95 Eg2 + .05 g**2``,
    ``v = .9 v - 1e-4 * g / sqrt(Eg2 - Eg**2 + 1e-4)``, ``p += v``. ``lr`` is
    ignored. With ``fused=True`` ``f_grad_shared`` applies the step itself and
    ``f_update`` does nothing. The other arguments are those of :func:`sgd`.
    """
    rho, one_minus_rho = _const(RMSPROP_RHO), _const(1 - RMSPROP_RHO)
    params = list(tparams.values())
    if fused:
        running_grads = [_zeros_like(p, "rgrad") for p in params]
        running_grads2 = [_zeros_like(p, "rgrad2") for p in params]
        velocities = [_zeros_like(p, "updir") for p in params]
        all_updates = []
        for p, g, rg, rg2, v in zip(params, _dense(params, grads), running_grads,
                                    running_grads2, velocities):
            new_rg = rho * rg + one_minus_rho * g
            new_rg2 = rho * rg2 + one_minus_rho * (g ** 2)
            new_v = (_const(RMSPROP_MOMENTUM) * v
                     - _const(RMSPROP_STEP) * g / pt.sqrt(new_rg2 - new_rg ** 2
                                                         + _const(RMSPROP_EPSILON)))
            all_updates += [(rg, new_rg), (rg2, new_rg2), (v, new_v), (p, p + new_v)]
        f_grad_shared = _compile_grad_shared([x, mask, y], cost, all_updates, updates, mode)
        return OptimizerFunctions(f_grad_shared, NoUpdate(),
                                  running_grads + running_grads2 + velocities)

    grads = _dense(params, grads)

    zipped_grads = [_zeros_like(p, "grad") for p in params]
    running_grads = [_zeros_like(p, "rgrad") for p in params]
    running_grads2 = [_zeros_like(p, "rgrad2") for p in params]
    velocities = [_zeros_like(p, "updir") for p in params]

    stores = [(zg, g) for zg, g in zip(zipped_grads, grads)]
    stores += [(rg, rho * rg + one_minus_rho * g) for rg, g in zip(running_grads, grads)]
    stores += [(rg2, rho * rg2 + one_minus_rho * (g ** 2)) for rg2, g in zip(running_grads2, grads)]
    f_grad_shared = _compile_grad_shared([x, mask, y], cost, stores, updates, mode)

    new_velocities = [
        _const(RMSPROP_MOMENTUM) * v
        - _const(RMSPROP_STEP) * zg / pt.sqrt(rg2 - rg ** 2 + _const(RMSPROP_EPSILON))
        for v, zg, rg, rg2 in zip(velocities, zipped_grads, running_grads, running_grads2)
    ]
    velocity_updates = list(zip(velocities, new_velocities))
    param_updates = [(p, p + v) for p, v in zip(params, new_velocities)]
    f_update = pytensor.function([lr], [], updates=velocity_updates + param_updates,
                                 on_unused_input="ignore", name="rmsprop_f_update", mode=mode)
    return OptimizerFunctions(f_grad_shared, f_update,
                              running_grads + running_grads2 + velocities)


OPTIMIZERS = {"sgd": sgd, "adadelta": adadelta, "rmsprop": rmsprop}
