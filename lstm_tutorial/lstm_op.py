"""The whole masked LSTM sequence as one PyTensor Op, with its gradient Op.

:func:`lstm_tutorial.model.lstm_layer` builds the tutorial's LSTM with
``pytensor.scan``, which pays a per-step overhead of the scan loop larger than
the step's matrix work. :class:`LSTMSequence` computes the same recurrence in
one call, and :class:`LSTMSequenceGrad` its gradient, both with Numba kernels.
The kernels serve the ``perform`` methods (Python-linked modes such as CVM)
and are registered with PyTensor's Numba backend, so a ``NUMBA`` function
that contains these Ops stays fully compiled and can be cached on disk.

The recurrence is that of the scan: with ``a = h_prev U + x_t``, split into
four blocks in :data:`lstm_tutorial.model.GATE_ORDER`,
``i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o)``, ``g = tanh(a_g)``,
``c = m (f c_prev + i g) + (1 - m) c_prev`` and
``h = m o tanh(c) + (1 - m) h_prev`` for the step's mask value ``m``.

Rows whose mask is 0 at a step keep their state, so the kernels skip them:
the matrix products of a step only cover the rows still inside their review.
"""

import hashlib
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import (
    numba_njit,
    register_funcify_default_op_cache_key,
)

# Part of the key of PyTensor's on-disk Numba cache: a hash of this file, so
# that a changed kernel is never served from an older compiled version.
KERNEL_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12], 16)


# exp(x) = 2**n * exp(r) with n = round(x / ln 2) and |r| <= ln(2) / 2, where
# ln 2 is split into a short high part and the rest so that x - n ln 2 is exact.
_LOG2_E = 1.4426950408889634
_LN2_HIGH = 0.693145751953125
_LN2_LOW = 1.42860682030941723212e-6
# Beyond this |x| the float64 result overflows or underflows.
_EXP_LIMIT = 700.0


@numba.njit(cache=True, fastmath=True)
def _exp_inplace(values, exponent_bits):
    """Replace each float64 of ``values`` by its exponential, clamped to |x| <= 700.

    Numba calls the C library's ``exp`` once per element, which LLVM does not
    vectorize. This range reduction and degree-11 Taylor polynomial (relative
    error below 1e-14) vectorize: 8,192 values took 3.4 us against 61 us on
    the 2-core AMD EPYC of BENCHMARKS.md. ``exponent_bits`` is int64 scratch
    space at least as long as ``values``.
    """
    for j in range(values.size):
        x = min(max(values[j], -_EXP_LIMIT), _EXP_LIMIT)
        n = np.floor(x * _LOG2_E + 0.5)
        r = (x - n * _LN2_HIGH) - n * _LN2_LOW
        values[j] = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (
            1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (
                1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800)))))))))))
        # The IEEE-754 bit pattern of 2**n: the biased exponent in bits 52 to 62.
        exponent_bits[j] = (np.int64(n) + 1023) << 52
    scales = exponent_bits[:values.size].view(np.float64)
    for j in range(values.size):
        values[j] *= scales[j]


@numba.njit(cache=True, fastmath=True)
def _matmul_rows(left, right, out, n_rows):
    """Set ``out[:n_rows] = left[:n_rows] @ right`` for C-contiguous matrices.

    The per-step products have at most a batch of rows. For them this loop
    matches single-threaded BLAS and never waits on a BLAS thread pool. On a
    busy 2-core machine a two-thread pool took 3.8 ms for a 16 x 128 by
    128 x 512 product against 0.13 ms with one thread (BENCHMARKS.md).
    """
    for i in range(n_rows):
        out_row = out[i]
        out_row[:] = 0.0
        for k in range(left.shape[1]):
            coefficient = left[i, k]
            right_row = right[k]
            for j in range(out_row.size):
                out_row[j] += coefficient * right_row[j]


@numba.njit(cache=True, fastmath=True)
def _matmul_rows_transposed(left, right, out, n_rows):
    """Set ``out[:n_rows] = left[:n_rows] @ right.T`` for C-contiguous matrices.

    Each entry is a dot product of two contiguous rows. For the gradient's
    (16 x 512) @ (512 x 128) product this took 33 us against 58 us for
    :func:`_matmul_rows` on a transposed copy, in a micro-benchmark on the
    machine of BENCHMARKS.md.
    """
    for i in range(n_rows):
        left_row = left[i]
        for j in range(right.shape[0]):
            right_row = right[j]
            total = left_row[0] * 0
            for k in range(left_row.size):
                total += left_row[k] * right_row[k]
            out[i, j] = total


@numba.njit(cache=True)
def lstm_forward_kernel(x_projection, mask, weight_u):
    """Run the recurrence; return ``h``, ``c`` and the activated gates, all per step.

    ``x_projection`` is ``(n_steps, n_samples, 4 dim)``, ``mask``
    ``(n_steps, n_samples)`` and ``weight_u`` ``(dim, 4 dim)``. The gates
    output is ``(n_steps, n_samples, 5 dim)``: the four gates of
    :data:`lstm_tutorial.model.GATE_ORDER`, then ``tanh(c)``. The gates of a
    row that is masked out at a step are left at 0.
    """
    # PyTensor may pass strided views; C-contiguous copies let loops vectorize.
    x_projection = np.ascontiguousarray(x_projection)
    mask = np.ascontiguousarray(mask)
    n_steps, n_samples, four_dim = x_projection.shape
    dim = four_dim // 4
    three_dim = 3 * dim
    dtype = x_projection.dtype
    h = np.zeros((n_steps, n_samples, dim), dtype=dtype)
    c = np.zeros((n_steps, n_samples, dim), dtype=dtype)
    gates = np.zeros((n_steps, n_samples, 5 * dim), dtype=dtype)
    h_prev = np.zeros((n_samples, dim), dtype=dtype)
    c_prev = np.zeros((n_samples, dim), dtype=dtype)
    active = np.empty(n_samples, dtype=np.int64)
    h_active = np.empty((n_samples, dim), dtype=dtype)
    preactivation = np.empty((n_samples, four_dim), dtype=dtype)
    # exp() arguments, then results: four gate blocks of each active row.
    exponentials = np.empty(n_samples * four_dim, dtype=np.float64)
    cell_exponentials = np.empty(n_samples * dim, dtype=np.float64)
    exponent_bits = np.empty(n_samples * four_dim, dtype=np.int64)
    u = np.ascontiguousarray(weight_u)

    for t in range(n_steps):
        n_active = 0
        for n in range(n_samples):
            if mask[t, n] != 0:
                active[n_active] = n
                n_active += 1
        for k in range(n_active):
            h_active[k, :] = h_prev[active[k], :]
        _matmul_rows(h_active, u, preactivation, n_active)

        # sigmoid(a) = 1 / (1 + exp(-a)) and tanh(a) = 2 / (1 + exp(-2 a)) - 1.
        for k in range(n_active):
            x_row = x_projection[t, active[k]]
            base = k * four_dim
            for j in range(three_dim):
                exponentials[base + j] = -(preactivation[k, j] + x_row[j])
            for j in range(three_dim, four_dim):
                exponentials[base + j] = -2.0 * (preactivation[k, j] + x_row[j])
        _exp_inplace(exponentials[:n_active * four_dim], exponent_bits)

        for k in range(n_active):
            n = active[k]
            m = mask[t, n]
            gate_row = gates[t, n]
            base = k * four_dim
            for j in range(three_dim):
                gate_row[j] = 1.0 / (1.0 + exponentials[base + j])
            for j in range(three_dim, four_dim):
                gate_row[j] = 2.0 / (1.0 + exponentials[base + j]) - 1.0
            for j in range(dim):
                cell = m * (gate_row[dim + j] * c_prev[n, j] + gate_row[j] * gate_row[three_dim + j]) \
                    + (1 - m) * c_prev[n, j]
                c_prev[n, j] = cell
                cell_exponentials[k * dim + j] = -2.0 * cell
        _exp_inplace(cell_exponentials[:n_active * dim], exponent_bits)

        for k in range(n_active):
            n = active[k]
            m = mask[t, n]
            gate_row = gates[t, n]
            for j in range(dim):
                tanh_c = 2.0 / (1.0 + cell_exponentials[k * dim + j]) - 1.0
                gate_row[four_dim + j] = tanh_c
                h_prev[n, j] = m * gate_row[2 * dim + j] * tanh_c + (1 - m) * h_prev[n, j]
        h[t] = h_prev
        c[t] = c_prev
    return h, c, gates


@numba.njit(cache=True)
def lstm_backward_kernel(mask, weight_u, h, c, gates, grad_h):
    """Return the gradients of the cost with respect to ``x_projection`` and ``U``.

    ``h``, ``c`` and ``gates`` are the outputs of :func:`lstm_forward_kernel`
    and ``grad_h`` is the cost's gradient with respect to ``h``.
    """
    mask = np.ascontiguousarray(mask)
    h = np.ascontiguousarray(h)
    c = np.ascontiguousarray(c)
    gates = np.ascontiguousarray(gates)
    grad_h = np.ascontiguousarray(grad_h)
    n_steps, n_samples, dim = h.shape
    four_dim = 4 * dim
    dtype = h.dtype
    grad_x = np.zeros((n_steps, n_samples, four_dim), dtype=dtype)
    grad_h_next = np.zeros((n_samples, dim), dtype=dtype)
    grad_c_next = np.zeros((n_samples, dim), dtype=dtype)
    u = np.ascontiguousarray(weight_u)
    active = np.empty(n_samples, dtype=np.int64)
    grad_pre = np.empty((n_samples, four_dim), dtype=dtype)
    zero_row = np.zeros(dim, dtype=dtype)
    grad_h_recurrent = np.empty((n_samples, dim), dtype=dtype)

    # Rows of (h_prev, gradient of the preactivation) over every active step,
    # stacked so that the gradient of U is one matrix product at the end.
    n_rows = 0
    for t in range(n_steps):
        for n in range(n_samples):
            if mask[t, n] != 0:
                n_rows += 1
    stacked_h_prev = np.zeros((n_rows, dim), dtype=dtype)
    stacked_grad_pre = np.zeros((n_rows, four_dim), dtype=dtype)
    row = n_rows

    for t in range(n_steps - 1, -1, -1):
        n_active = 0
        for n in range(n_samples):
            if mask[t, n] != 0:
                active[n_active] = n
                n_active += 1
        grad_h_next += grad_h[t]

        for k in range(n_active):
            n = active[k]
            m = mask[t, n]
            row -= 1
            # Row views keep the inner loop free of branches, so that it vectorizes.
            gate_row = gates[t, n]
            c_before = c[t - 1, n] if t > 0 else zero_row
            h_before = h[t - 1, n] if t > 0 else zero_row
            grad_row = grad_pre[k]
            grad_h_row = grad_h_next[n]
            grad_c_row = grad_c_next[n]
            for j in range(dim):
                input_gate = gate_row[j]
                forget_gate = gate_row[dim + j]
                output_gate = gate_row[2 * dim + j]
                candidate = gate_row[3 * dim + j]
                tanh_c = gate_row[4 * dim + j]
                grad_hidden = grad_h_row[j]
                grad_output = grad_hidden * m * tanh_c
                grad_cell = grad_c_row[j] + grad_hidden * m * output_gate * (1 - tanh_c * tanh_c)
                grad_input = grad_cell * m * candidate
                grad_candidate = grad_cell * m * input_gate
                grad_forget = grad_cell * m * c_before[j]
                grad_row[j] = grad_input * input_gate * (1 - input_gate)
                grad_row[dim + j] = grad_forget * forget_gate * (1 - forget_gate)
                grad_row[2 * dim + j] = grad_output * output_gate * (1 - output_gate)
                grad_row[3 * dim + j] = grad_candidate * (1 - candidate * candidate)
                grad_c_row[j] = grad_cell * (m * forget_gate + (1 - m))
                grad_h_row[j] = grad_hidden * (1 - m)
            stacked_h_prev[row, :] = h_before
            grad_x[t, n, :] = grad_row
            stacked_grad_pre[row, :] = grad_row

        if n_active > 0:
            _matmul_rows_transposed(grad_pre, u, grad_h_recurrent, n_active)
            for k in range(n_active):
                n = active[k]
                for j in range(dim):
                    grad_h_next[n, j] += grad_h_recurrent[k, j]

    grad_u = np.dot(np.ascontiguousarray(stacked_h_prev.T), stacked_grad_pre)
    return grad_x, grad_u


def _check_inputs(x_projection, mask, weight_u):
    x_projection = pt.as_tensor_variable(x_projection)
    mask = pt.as_tensor_variable(mask)
    weight_u = pt.as_tensor_variable(weight_u)
    if x_projection.ndim != 3 or mask.ndim != 2 or weight_u.ndim != 2:
        raise ValueError(
            f"LSTM inputs have {x_projection.ndim}, {mask.ndim} and {weight_u.ndim} dimensions; "
            "expected x_projection (n_steps, n_samples, 4 dim), mask (n_steps, n_samples) "
            "and U (dim, 4 dim)"
        )
    dtypes = {x_projection.dtype, mask.dtype, weight_u.dtype}
    if len(dtypes) != 1 or x_projection.dtype not in ("float32", "float64"):
        raise ValueError(
            f"LSTM inputs have dtypes {x_projection.dtype}, {mask.dtype} and {weight_u.dtype}; "
            "they must all be float32 or all float64"
        )
    return x_projection, mask, weight_u


class LSTMSequence(Op):
    """Masked LSTM over a whole sequence: ``(x_projection, mask, U) -> (h, c, gates)``.

    Only ``h`` is meant for the rest of the graph. ``c`` and ``gates`` (the four
    gates and ``tanh(c)``, ``5 dim`` wide) are kept for :class:`LSTMSequenceGrad`,
    and a cost that depends on them raises NotImplementedError in ``pytensor.grad``.
    """

    __props__ = ()

    def make_node(self, x_projection, mask, weight_u):
        x_projection, mask, weight_u = _check_inputs(x_projection, mask, weight_u)
        dtype = x_projection.dtype
        outputs = [pt.tensor3(dtype=dtype), pt.tensor3(dtype=dtype), pt.tensor3(dtype=dtype)]
        return Apply(self, [x_projection, mask, weight_u], outputs)

    def perform(self, node, inputs, output_storage):
        results = lstm_forward_kernel(*inputs)
        for storage, result in zip(output_storage, results):
            storage[0] = result

    def infer_shape(self, fgraph, node, input_shapes):
        x_shape, _, u_shape = input_shapes
        state_shape = (x_shape[0], x_shape[1], u_shape[0])
        return [state_shape, state_shape, (x_shape[0], x_shape[1], 5 * u_shape[0])]

    def pullback(self, inputs, outputs, output_grads):
        from pytensor.gradient import DisconnectedType

        x_projection, mask, weight_u = inputs
        h, c, gates = outputs
        grad_h, grad_c, grad_gates = output_grads
        if not isinstance(grad_c.type, DisconnectedType) or \
                not isinstance(grad_gates.type, DisconnectedType):
            raise NotImplementedError(
                "LSTMSequence differentiates only through its first output h; "
                "use the cell states and gates only inside the gradient"
            )
        if isinstance(grad_h.type, DisconnectedType):
            grad_h = pt.zeros_like(h)
        grad_x, grad_u = LSTMSequenceGrad()(mask, weight_u, h, c, gates, grad_h)
        return [grad_x, pt.zeros_like(mask), grad_u]


class LSTMSequenceGrad(Op):
    """Gradient of :class:`LSTMSequence`: ``(mask, U, h, c, gates, dh) -> (dx_projection, dU)``."""

    __props__ = ()

    def make_node(self, mask, weight_u, h, c, gates, grad_h):
        variables = [pt.as_tensor_variable(v) for v in (mask, weight_u, h, c, gates, grad_h)]
        dtype = variables[2].dtype
        if any(v.dtype != dtype for v in variables):
            raise ValueError("LSTMSequenceGrad inputs must share one float dtype, got "
                             + ", ".join(v.dtype for v in variables))
        return Apply(self, variables, [pt.tensor3(dtype=dtype), pt.matrix(dtype=dtype)])

    def perform(self, node, inputs, output_storage):
        grad_x, grad_u = lstm_backward_kernel(*inputs)
        output_storage[0][0] = grad_x
        output_storage[1][0] = grad_u

    def infer_shape(self, fgraph, node, input_shapes):
        _, u_shape, _, _, _, _ = input_shapes
        h_shape = input_shapes[2]
        return [(h_shape[0], h_shape[1], u_shape[1]), u_shape]


@register_funcify_default_op_cache_key(LSTMSequence)
def _numba_funcify_lstm_sequence(op, node=None, **kwargs):
    @numba_njit
    def lstm_sequence(x_projection, mask, weight_u):
        return lstm_forward_kernel(x_projection, mask, weight_u)

    return lstm_sequence, KERNEL_VERSION


@register_funcify_default_op_cache_key(LSTMSequenceGrad)
def _numba_funcify_lstm_sequence_grad(op, node=None, **kwargs):
    @numba_njit
    def lstm_sequence_grad(mask, weight_u, h, c, gates, grad_h):
        return lstm_backward_kernel(mask, weight_u, h, c, gates, grad_h)

    return lstm_sequence_grad, KERNEL_VERSION


lstm_sequence = LSTMSequence()
