"""Adadelta's step as two in-place PyTensor Ops with Numba kernels.

Written as graph arithmetic, one adadelta step is about a dozen elementwise
nodes per parameter. :class:`AdadeltaStep` does the same arithmetic in one
pass over the arrays. :class:`AdadeltaRowStep` does it for the rows of the
word embedding that a batch uses, and first brings each row's running averages
up to date. Over the updates since the row's last one its gradient was zero,
so each of them only multiplied both averages by rho and left the row where it
was. As PyTensor requires, the Ops a graph is built with return new arrays.
The ``fast_run`` rewrites (the ``inplace`` tag) turn them into versions that
overwrite the parameter and its averages, which are the shared variables that
the compiled function updates.
"""

import hashlib
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.compile import optdb
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import WalkingGraphRewriter, node_rewriter
from pytensor.link.numba.dispatch.basic import (
    numba_njit,
    register_funcify_default_op_cache_key,
)

# Part of the key of PyTensor's on-disk Numba cache, as in lstm_op.py.
KERNEL_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12], 16)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def adadelta_kernel(param, running_grads2, running_up2, grad, rho, epsilon):
    """Apply one adadelta step to whole C-contiguous arrays, in place."""
    p = param.reshape(param.size)
    rg2 = running_grads2.reshape(param.size)
    ru2 = running_up2.reshape(param.size)
    g = np.ascontiguousarray(grad).reshape(param.size)
    rho = p.dtype.type(rho)
    one_minus_rho = p.dtype.type(1.0) - rho
    epsilon = p.dtype.type(epsilon)
    for i in range(p.size):
        new_rg2 = rho * rg2[i] + one_minus_rho * (g[i] * g[i])
        step = -np.sqrt(ru2[i] + epsilon) / np.sqrt(new_rg2 + epsilon) * g[i]
        ru2[i] = rho * ru2[i] + one_minus_rho * (step * step)
        rg2[i] = new_rg2
        p[i] += step


@numba.njit(cache=True, nogil=True, error_model="numpy")
def adadelta_rows_kernel(param, running_grads2, running_up2, last, clock, ids, rows, rho,
                         epsilon):
    """Apply one adadelta step to the rows ``ids`` of a matrix, in place; return the new clock.

    ``rows`` contains one gradient row per entry of ``ids``; repeated ids add up.
    ``last[r]`` is the clock value at row ``r``'s last update.
    """
    n_ids = ids.size
    n_rows, dim = param.shape
    rows = np.ascontiguousarray(rows)
    dtype_rho = param.dtype.type(rho)
    one_minus_rho = param.dtype.type(1.0) - dtype_rho
    epsilon = param.dtype.type(epsilon)
    now = clock + 1
    # Sum the gradient rows of each distinct id, in order of first occurrence.
    slot_of_id = np.full(n_rows, -1, dtype=np.int64)
    unique_ids = np.empty(n_ids, dtype=np.int64)
    summed = np.zeros((n_ids, dim), dtype=param.dtype)
    n_unique = 0
    for k in range(n_ids):
        row_id = ids[k]
        if row_id < 0 or row_id >= n_rows:
            raise IndexError("a word id is outside the embedding's rows")
        slot = slot_of_id[row_id]
        if slot < 0:
            slot = n_unique
            slot_of_id[row_id] = slot
            unique_ids[slot] = row_id
            n_unique += 1
        for j in range(dim):
            summed[slot, j] += rows[k, j]
    for slot in range(n_unique):
        r = unique_ids[slot]
        decay = param.dtype.type(dtype_rho ** (now - last[r] - 1))
        g = summed[slot]
        p, rg2, ru2 = param[r], running_grads2[r], running_up2[r]
        for j in range(dim):
            old_rg2 = rg2[j] * decay
            old_ru2 = ru2[j] * decay
            new_rg2 = dtype_rho * old_rg2 + one_minus_rho * (g[j] * g[j])
            step = -np.sqrt(old_ru2 + epsilon) / np.sqrt(new_rg2 + epsilon) * g[j]
            ru2[j] = dtype_rho * old_ru2 + one_minus_rho * (step * step)
            rg2[j] = new_rg2
            p[j] += step
        last[r] = now
    return now


class _AdadeltaOp(Op):
    """An adadelta step whose first ``n_updated`` inputs come back updated as the outputs."""

    __props__ = ("rho", "epsilon", "inplace")
    n_updated = 0

    def __init__(self, rho, epsilon, inplace=False):
        self.rho = float(rho)
        self.epsilon = float(epsilon)
        self.inplace = inplace
        if inplace:
            self.destroy_map = {index: [index] for index in range(self.n_updated)}


class AdadeltaStep(_AdadeltaOp):
    """``(p, Eg2, Ed2, g) -> (p, Eg2, Ed2)`` after one adadelta step."""

    n_updated = 3

    def make_node(self, param, running_grads2, running_up2, grad):
        variables = [pt.as_tensor_variable(v) for v in (param, running_grads2, running_up2, grad)]
        if any(v.type.dtype != variables[0].type.dtype or v.ndim != variables[0].ndim
               for v in variables):
            raise ValueError("AdadeltaStep needs four tensors of one dtype and rank, got "
                             + ", ".join(str(v.type) for v in variables))
        return Apply(self, variables, [v.type() for v in variables[:3]])

    def perform(self, node, inputs, output_storage):
        param, running_grads2, running_up2, grad = inputs
        arrays = (param, running_grads2, running_up2)
        if not self.inplace or not all(v.flags.c_contiguous for v in arrays):
            # Work on C-contiguous copies, which the flat views below need.
            param, running_grads2, running_up2 = (np.array(v, order="C") for v in arrays)
        # Flat views: one compiled kernel serves vectors and matrices.
        adadelta_kernel(param.reshape(-1), running_grads2.reshape(-1), running_up2.reshape(-1),
                        np.ascontiguousarray(grad).reshape(-1), self.rho, self.epsilon)
        for storage, value in zip(output_storage, (param, running_grads2, running_up2)):
            storage[0] = value


class AdadeltaRowStep(_AdadeltaOp):
    """``(p, Eg2, Ed2, last, clock, ids, rows) -> (p, Eg2, Ed2, last, clock + 1)``."""

    # The clock, the fifth output, is a new 0-d array and never overwritten.
    n_updated = 4

    def make_node(self, param, running_grads2, running_up2, last, clock, ids, rows):
        variables = [pt.as_tensor_variable(v) for v in
                     (param, running_grads2, running_up2, last, clock, ids, rows)]
        param, running_grads2, running_up2, last, clock, ids, rows = variables
        floats = (param, running_grads2, running_up2, rows)
        if any(v.ndim != 2 or v.type.dtype != param.type.dtype for v in floats) or \
                last.ndim != 1 or clock.ndim != 0 or ids.ndim != 1 or \
                any(v.type.dtype != "int64" for v in (last, clock, ids)):
            raise ValueError("AdadeltaRowStep needs three matrices and the rows of one float "
                             "dtype, and int64 last (vector), clock (scalar) and ids (vector); got "
                             + ", ".join(str(v.type) for v in variables))
        return Apply(self, variables, [v.type() for v in variables[:5]])

    def perform(self, node, inputs, output_storage):
        param, running_grads2, running_up2, last, clock, ids, rows = inputs
        if not self.inplace:
            param, running_grads2, running_up2, last = (
                np.array(v, order="C") for v in (param, running_grads2, running_up2, last))
        now = adadelta_rows_kernel(param, running_grads2, running_up2, last, int(clock),
                                   np.ascontiguousarray(ids), rows, self.rho, self.epsilon)
        values = (param, running_grads2, running_up2, last, np.asarray(now, dtype="int64"))
        for storage, value in zip(output_storage, values):
            storage[0] = value


@register_funcify_default_op_cache_key(AdadeltaStep)
def _numba_funcify_adadelta_step(op, node=None, **kwargs):
    rho, epsilon, inplace = op.rho, op.epsilon, op.inplace

    @numba_njit
    def adadelta_step(param, running_grads2, running_up2, grad):
        if not inplace:
            param, running_grads2, running_up2 = (
                param.copy(), running_grads2.copy(), running_up2.copy())
        adadelta_kernel(param, running_grads2, running_up2, grad, rho, epsilon)
        return param, running_grads2, running_up2

    return adadelta_step, KERNEL_VERSION


@register_funcify_default_op_cache_key(AdadeltaRowStep)
def _numba_funcify_adadelta_row_step(op, node=None, **kwargs):
    rho, epsilon, inplace = op.rho, op.epsilon, op.inplace

    @numba_njit
    def adadelta_row_step(param, running_grads2, running_up2, last, clock, ids, rows):
        if not inplace:
            param, running_grads2, running_up2, last = (
                param.copy(), running_grads2.copy(), running_up2.copy(), last.copy())
        now = adadelta_rows_kernel(param, running_grads2, running_up2, last, clock.item(),
                                   np.ascontiguousarray(ids), rows, rho, epsilon)
        return param, running_grads2, running_up2, last, np.asarray(now)

    return adadelta_row_step, KERNEL_VERSION


@node_rewriter([AdadeltaStep, AdadeltaRowStep], inplace=True)
def local_inplace_adadelta(fgraph, node):
    """Make an adadelta step overwrite the arrays it updates."""
    if node.op.inplace:
        return None
    new_op = type(node.op)(node.op.rho, node.op.epsilon, inplace=True)
    return new_op(*node.inputs)


optdb.register(
    "lstm_tutorial_inplace_adadelta",
    WalkingGraphRewriter(local_inplace_adadelta,
                         failure_callback=WalkingGraphRewriter.warn_inplace),
    "fast_run",
    "inplace",
    position=50.2,
)
