"""The whole masked LSTM layer as one PyTensor Op, with its gradient Op.

:func:`lstm_tutorial.model.lstm_layer` builds the tutorial's LSTM with
``pytensor.scan``, which pays a per-step overhead of the scan loop larger than
the step's matrix work. :class:`LSTMSequence` computes the same layer,
including the input projection ``x W + b``, in one call, and
:class:`LSTMSequenceGrad` its gradient, with Numba kernels. The kernels serve
the ``perform`` methods (Python-linked modes such as ``VM`` and CVM) and are
registered with PyTensor's Numba backend, so that a ``NUMBA`` function that
contains these Ops stays fully compiled.

The recurrence is that of the scan: with ``a = h_prev U + x_t W + b``, split
into four blocks in :data:`lstm_tutorial.model.GATE_ORDER`,
``i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o)``, ``g = tanh(a_g)``,
``c = m (f c_prev + i g) + (1 - m) c_prev`` and
``h = m o tanh(c) + (1 - m) h_prev`` for the step's mask value ``m``.

Where the mask is 0 the state is carried over unchanged, so the kernels only
compute the *tokens*, the (step, sample) pairs whose mask is not 0. Tokens are
numbered group by group, then step by step, then sample by sample, where a
group is a contiguous range of samples. The tokens of one group at one step
are then consecutive rows, so that each step's products are single BLAS calls
on contiguous blocks, and the products over all tokens (``x W`` and the
weight gradients) are one BLAS call each. Groups are independent recurrences:
:func:`set_num_threads` (or ``LSTM_TUTORIAL_THREADS``) runs them on several threads.
"""

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from numba.extending import overload
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import (
    numba_njit,
    register_funcify_default_op_cache_key,
)

# Part of the key of PyTensor's on-disk Numba cache: a hash of this file, so
# that a changed kernel is never served from an older compiled version.
KERNEL_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12], 16)

# ---------------------------------------------------------------------------
# A vectorizable exponential.
#
# exp(x) = 2**n * exp(r) with n = round(x / ln 2) and |r| <= ln(2) / 2, where
# ln 2 is split into a short high part and the rest so that x - n ln 2 is
# exact. Numba calls the C library's exp once per element, which LLVM does not
# vectorize. These loops vectorize: 8,192 float64 values took 3.4 us against
# 61 us on the 2-core AMD EPYC of BENCHMARKS.md.


def exp_inplace(values, exponent_bits):
    """Replace each value by its exponential; ``exponent_bits`` is int64 scratch space.

    The argument is clamped to the range where the result is a normal number
    (|x| <= 87 for float32, 700 for float64). float32 uses a degree-7 Taylor
    polynomial (relative error below 1e-7), float64 a degree-11 one (below
    1e-14). Callable from Numba-compiled code only.
    """
    raise NotImplementedError("exp_inplace runs inside Numba-compiled code only")


def _exp_float32(values, exponent_bits):
    bits = exponent_bits.view(np.int32)
    limit = np.float32(87.0)
    log2_e = np.float32(1.4426950408889634)
    ln2_high = np.float32(0.693145751953125)
    ln2_low = np.float32(1.42860682030941723212e-6)
    half = np.float32(0.5)
    one = np.float32(1.0)
    for j in range(values.size):
        x = min(max(values[j], -limit), limit)
        n = np.floor(x * log2_e + half)
        r = (x - n * ln2_high) - n * ln2_low
        values[j] = one + r * (one + r * (np.float32(1 / 2) + r * (np.float32(1 / 6) + r * (
            np.float32(1 / 24) + r * (np.float32(1 / 120) + r * (
                np.float32(1 / 720) + r * np.float32(1 / 5040)))))))
        # The IEEE-754 bit pattern of 2**n: the biased exponent in bits 23 to 30.
        bits[j] = (np.int32(n) + np.int32(127)) << np.int32(23)
    scales = bits[:values.size].view(np.float32)
    for j in range(values.size):
        values[j] *= scales[j]


def _exp_float64(values, exponent_bits):
    for j in range(values.size):
        x = min(max(values[j], -700.0), 700.0)
        n = np.floor(x * 1.4426950408889634 + 0.5)
        r = (x - n * 0.693145751953125) - n * 1.42860682030941723212e-6
        values[j] = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (
            1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (
                1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800)))))))))))
        # The IEEE-754 bit pattern of 2**n: the biased exponent in bits 52 to 62.
        exponent_bits[j] = (np.int64(n) + 1023) << 52
    scales = exponent_bits[:values.size].view(np.float64)
    for j in range(values.size):
        values[j] *= scales[j]


@overload(exp_inplace, jit_options={"fastmath": True})
def _exp_inplace_overload(values, exponent_bits):
    if values.dtype == numba.types.float32:
        return _exp_float32
    return _exp_float64


# ---------------------------------------------------------------------------
# Token layout.


@numba.njit(cache=True, nogil=True, error_model="numpy")
def token_layout(mask, group_edges):
    """Number the tokens; return ``(step_offsets, token_sample)``.

    ``group_edges`` contains the first sample of each group and then the number
    of samples. The tokens of group ``g`` at step ``t`` are the rows
    ``step_offsets[g, t]`` to ``step_offsets[g, t + 1]`` (exclusive), and
    ``token_sample[row]`` is the sample of each row.
    """
    n_steps, n_samples = mask.shape
    n_groups = group_edges.size - 1
    step_offsets = np.empty((n_groups, n_steps + 1), dtype=np.int64)
    token_sample = np.empty(n_steps * n_samples, dtype=np.int64)
    row = 0
    for g in range(n_groups):
        for t in range(n_steps):
            step_offsets[g, t] = row
            for n in range(group_edges[g], group_edges[g + 1]):
                if mask[t, n] != 0:
                    token_sample[row] = n
                    row += 1
        step_offsets[g, n_steps] = row
    return step_offsets, token_sample[:row]


def split_samples(mask, n_groups):
    """Cut the samples into at most ``n_groups`` contiguous ranges of about equal token counts."""
    n_samples = mask.shape[1]
    n_groups = max(1, min(n_groups, n_samples))
    if n_groups == 1:
        return np.array([0, n_samples], dtype=np.int64)
    cumulative = np.cumsum(np.count_nonzero(mask, axis=0))
    targets = cumulative[-1] * np.arange(1, n_groups) / n_groups
    inner = np.searchsorted(cumulative, targets, side="left") + 1
    edges = np.concatenate([[0], np.clip(inner, 1, n_samples - 1), [n_samples]])
    return np.unique(edges).astype(np.int64)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def gather_tokens(values, token_sample, step_offsets):
    """Copy ``values[t, n]`` of every token into consecutive rows."""
    n_groups, n_steps_plus_one = step_offsets.shape
    width = values.shape[2]
    out = np.empty((token_sample.size, width), dtype=values.dtype)
    for g in range(n_groups):
        for t in range(n_steps_plus_one - 1):
            for row in range(step_offsets[g, t], step_offsets[g, t + 1]):
                n = token_sample[row]
                for j in range(width):
                    out[row, j] = values[t, n, j]
    return out


# ---------------------------------------------------------------------------
# Forward.


@numba.njit(cache=True, nogil=True, error_model="numpy")
def forward_prepare(embedding, mask, weight_w, bias, group_edges):
    """Lay out the tokens and project them: return ``(step_offsets, token_sample, x W + b)``."""
    step_offsets, token_sample = token_layout(mask, group_edges)
    tokens = gather_tokens(embedding, token_sample, step_offsets)
    projection = np.empty((tokens.shape[0], weight_w.shape[1]), dtype=embedding.dtype)
    if tokens.shape[0] > 0:
        np.dot(tokens, weight_w, projection)
        for row in range(projection.shape[0]):
            for j in range(bias.size):
                projection[row, j] += bias[j]
    return step_offsets, token_sample, projection


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def forward_group(group, mask, weight_u, group_edges, step_offsets, token_sample, projection,
                  h, h_before, c_before, gates):
    """Run the recurrence of one group of samples, writing into the output arrays.

    ``h`` gets every step's hidden state, carried over where the mask is 0.
    For each token, ``h_before`` and ``c_before`` get the states it started
    from and ``gates`` the four activated gates and ``tanh(c)``.
    """
    n_steps = mask.shape[0]
    first, stop = group_edges[group], group_edges[group + 1]
    size = stop - first
    dim = weight_u.shape[0]
    four_dim = 4 * dim
    three_dim = 3 * dim
    dtype = projection.dtype
    h_state = np.zeros((size, dim), dtype=dtype)
    c_state = np.zeros((size, dim), dtype=dtype)
    preactivation = np.empty((size, four_dim), dtype=dtype)
    exponentials = np.empty(size * four_dim, dtype=dtype)
    cell_exponentials = np.empty(size * dim, dtype=dtype)
    exponent_bits = np.empty(size * four_dim, dtype=np.int64)
    one = dtype.type(1.0)
    two = dtype.type(2.0)

    for t in range(n_steps):
        start, end = step_offsets[group, t], step_offsets[group, t + 1]
        count = end - start
        if count > 0:
            for k in range(count):
                local = token_sample[start + k] - first
                for j in range(dim):
                    h_before[start + k, j] = h_state[local, j]
                    c_before[start + k, j] = c_state[local, j]
            np.dot(h_before[start:end], weight_u, preactivation[:count])

            # sigmoid(a) = 1 / (1 + exp(-a)) and tanh(a) = 2 / (1 + exp(-2 a)) - 1.
            for k in range(count):
                x_row = projection[start + k]
                pre_row = preactivation[k]
                base = k * four_dim
                for j in range(three_dim):
                    exponentials[base + j] = -(pre_row[j] + x_row[j])
                for j in range(three_dim, four_dim):
                    exponentials[base + j] = -two * (pre_row[j] + x_row[j])
            exp_inplace(exponentials[:count * four_dim], exponent_bits)

            for k in range(count):
                row = start + k
                m = mask[t, token_sample[row]]
                gate_row = gates[row]
                c_row = c_before[row]
                base = k * four_dim
                for j in range(three_dim):
                    gate_row[j] = one / (one + exponentials[base + j])
                for j in range(three_dim, four_dim):
                    gate_row[j] = two / (one + exponentials[base + j]) - one
                local = token_sample[row] - first
                for j in range(dim):
                    cell = m * (gate_row[dim + j] * c_row[j] + gate_row[j] * gate_row[three_dim + j]) \
                        + (one - m) * c_row[j]
                    c_state[local, j] = cell
                    cell_exponentials[k * dim + j] = -two * cell
            exp_inplace(cell_exponentials[:count * dim], exponent_bits)

            for k in range(count):
                row = start + k
                m = mask[t, token_sample[row]]
                gate_row = gates[row]
                h_row = h_before[row]
                local = token_sample[row] - first
                for j in range(dim):
                    tanh_c = two / (one + cell_exponentials[k * dim + j]) - one
                    gate_row[four_dim + j] = tanh_c
                    h_state[local, j] = m * gate_row[2 * dim + j] * tanh_c + (one - m) * h_row[j]
        for local in range(size):
            for j in range(dim):
                h[t, first + local, j] = h_state[local, j]


# ---------------------------------------------------------------------------
# Backward.


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def backward_group(group, mask, weight_u_t, group_edges, step_offsets, token_sample,
                   h_before, c_before, gates, grad_h, grad_preactivation):
    """Back-propagate through one group's recurrence.

    Writes the gradient of the cost with respect to each token's
    preactivation ``a`` into the rows of ``grad_preactivation``.
    ``weight_u_t`` is ``U`` transposed, C-contiguous.
    """
    n_steps = mask.shape[0]
    first, stop = group_edges[group], group_edges[group + 1]
    size = stop - first
    dim = weight_u_t.shape[1]
    dtype = gates.dtype
    one = dtype.type(1.0)
    grad_h_next = np.zeros((size, dim), dtype=dtype)
    grad_c_next = np.zeros((size, dim), dtype=dtype)
    grad_h_recurrent = np.empty((size, dim), dtype=dtype)

    for t in range(n_steps - 1, -1, -1):
        for local in range(size):
            for j in range(dim):
                grad_h_next[local, j] += grad_h[t, first + local, j]
        start, end = step_offsets[group, t], step_offsets[group, t + 1]
        count = end - start
        if count == 0:
            continue
        for row in range(start, end):
            local = token_sample[row] - first
            m = mask[t, token_sample[row]]
            gate_row = gates[row]
            c_row = c_before[row]
            grad_row = grad_preactivation[row]
            grad_h_row = grad_h_next[local]
            grad_c_row = grad_c_next[local]
            for j in range(dim):
                input_gate = gate_row[j]
                forget_gate = gate_row[dim + j]
                output_gate = gate_row[2 * dim + j]
                candidate = gate_row[3 * dim + j]
                tanh_c = gate_row[4 * dim + j]
                grad_hidden = grad_h_row[j]
                grad_output = grad_hidden * m * tanh_c
                grad_cell = grad_c_row[j] + grad_hidden * m * output_gate * (one - tanh_c * tanh_c)
                grad_row[j] = grad_cell * m * candidate * input_gate * (one - input_gate)
                grad_row[dim + j] = grad_cell * m * c_row[j] * forget_gate * (one - forget_gate)
                grad_row[2 * dim + j] = grad_output * output_gate * (one - output_gate)
                grad_row[3 * dim + j] = grad_cell * m * input_gate * (one - candidate * candidate)
                grad_c_row[j] = grad_cell * (m * forget_gate + (one - m))
                grad_h_row[j] = grad_hidden * (one - m)
        np.dot(grad_preactivation[start:end], weight_u_t, grad_h_recurrent[:count])
        for k in range(count):
            local = token_sample[start + k] - first
            for j in range(dim):
                grad_h_next[local, j] += grad_h_recurrent[k, j]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def backward_finish(embedding, weight_w, step_offsets, token_sample, h_before,
                    grad_preactivation):
    """Return the gradients of ``embedding``, ``W``, ``U`` and ``b`` from the tokens' rows."""
    n_steps, n_samples, dim = embedding.shape
    dtype = embedding.dtype
    tokens = gather_tokens(embedding, token_sample, step_offsets)
    grad_w = np.zeros(weight_w.shape, dtype=dtype)
    grad_u = np.zeros((h_before.shape[1], weight_w.shape[1]), dtype=dtype)
    grad_b = np.zeros(weight_w.shape[1], dtype=dtype)
    grad_embedding = np.zeros((n_steps, n_samples, dim), dtype=dtype)
    if token_sample.size == 0:
        return grad_embedding, grad_w, grad_u, grad_b
    np.dot(np.ascontiguousarray(tokens.T), grad_preactivation, grad_w)
    np.dot(np.ascontiguousarray(h_before.T), grad_preactivation, grad_u)
    for row in range(grad_preactivation.shape[0]):
        for j in range(grad_b.size):
            grad_b[j] += grad_preactivation[row, j]
    grad_tokens = np.dot(grad_preactivation, np.ascontiguousarray(weight_w.T))
    n_groups = step_offsets.shape[0]
    for g in range(n_groups):
        for t in range(n_steps):
            for row in range(step_offsets[g, t], step_offsets[g, t + 1]):
                n = token_sample[row]
                for j in range(dim):
                    grad_embedding[t, n, j] = grad_tokens[row, j]
    return grad_embedding, grad_w, grad_u, grad_b


# ---------------------------------------------------------------------------
# Whole-layer entry points, serial or on a thread pool.

_threads = {"count": None}
_pool_lock = threading.Lock()
# Thread pools by number of threads, and the BLAS controllers under "blas".
_pools = {}
# A forked child has none of the parent's pool threads: it starts new pools.
os.register_at_fork(after_in_child=_pools.clear)


def set_num_threads(count):
    """Run the recurrence of up to ``count`` groups of samples at once (None: the default).

    The default is one thread, or the number in the environment variable
    ``LSTM_TUTORIAL_THREADS``. The products outside the recurrence use BLAS's
    own threads either way.
    """
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError(f"thread count {count!r} is not a positive integer; pass 1 or more, "
                         "or None for the default")
    _threads["count"] = count


def get_num_threads():
    """Return the number of threads the kernels use (see :func:`set_num_threads`)."""
    if _threads["count"] is not None:
        return _threads["count"]
    environment = os.environ.get("LSTM_TUTORIAL_THREADS", "")
    if environment.isdigit() and int(environment) > 0:
        return int(environment)
    # NOTE: one thread by default. With two groups, about one run of the resume
    # tests in four under load ended with parameters a few float32 steps away
    # from an identical run's, and the cause is not found yet.
    return 1


def _run_groups(function, n_groups, *args):
    if n_groups == 1:
        function(0, *args)
        return
    with _pool_lock:
        pool = _pools.get(n_groups - 1)
        if pool is None:
            pool = _pools[n_groups - 1] = ThreadPoolExecutor(
                n_groups - 1, thread_name_prefix="lstm-kernel")
    # One BLAS thread per group while the groups run. With more, each group's
    # products get however many of BLAS's threads are free at that moment.
    # With OpenBLAS's Haswell kernels, a (12 x 128) @ (128 x 512) float32
    # product differs in the last bit between 1 and 2 threads.
    libraries = _blas_libraries()
    saved = [library.get_num_threads() for library in libraries]
    try:
        # Inside the try, so that a signal handler raising between two of these
        # calls still gets every library's thread count restored.
        for library in libraries:
            library.set_num_threads(1)
        futures = [pool.submit(function, group, *args) for group in range(1, n_groups)]
        function(0, *args)
        for future in futures:
            future.result()
    finally:
        for library, count in zip(libraries, saved):
            if count is not None:
                library.set_num_threads(count)


def _blas_libraries():
    """threadpoolctl's controllers of the loaded BLAS libraries (none without threadpoolctl)."""
    if "blas" not in _pools:
        try:
            from threadpoolctl import ThreadpoolController

            selected = ThreadpoolController().select(user_api="blas")
            _pools["blas"] = list(selected.lib_controllers)
        except ImportError:
            _pools["blas"] = []
    return _pools["blas"]


def lstm_forward(embedding, mask, weight_w, weight_u, bias, n_threads=1):
    """Return ``h`` and what the gradient needs: ``(h, h_before, c_before, gates, group_edges)``."""
    embedding = np.ascontiguousarray(embedding)
    mask = np.ascontiguousarray(mask)
    weight_u = np.ascontiguousarray(weight_u)
    group_edges = split_samples(mask, n_threads)
    step_offsets, token_sample, projection = forward_prepare(
        embedding, mask, np.ascontiguousarray(weight_w), np.ascontiguousarray(bias), group_edges)
    n_steps, n_samples = mask.shape
    dim = weight_u.shape[0]
    dtype = embedding.dtype
    n_tokens = token_sample.size
    h = np.empty((n_steps, n_samples, dim), dtype=dtype)
    h_before = np.empty((n_tokens, dim), dtype=dtype)
    c_before = np.empty((n_tokens, dim), dtype=dtype)
    gates = np.empty((n_tokens, 5 * dim), dtype=dtype)
    _run_groups(forward_group, group_edges.size - 1, mask, weight_u, group_edges, step_offsets,
                token_sample, projection, h, h_before, c_before, gates)
    return h, h_before, c_before, gates, group_edges


def lstm_backward(embedding, mask, weight_w, weight_u, group_edges, h_before, c_before, gates,
                  grad_h):
    """Return the gradients ``(d embedding, dW, dU, db)`` of a cost with gradient ``grad_h``."""
    embedding = np.ascontiguousarray(embedding)
    mask = np.ascontiguousarray(mask)
    grad_h = np.ascontiguousarray(grad_h)
    step_offsets, token_sample = token_layout(mask, group_edges)
    grad_preactivation = np.empty((token_sample.size, 4 * weight_u.shape[0]), dtype=gates.dtype)
    _run_groups(backward_group, group_edges.size - 1, mask,
                np.ascontiguousarray(weight_u.T), group_edges, step_offsets, token_sample,
                h_before, c_before, gates, grad_h, grad_preactivation)
    return backward_finish(embedding, np.ascontiguousarray(weight_w), step_offsets, token_sample,
                           h_before, grad_preactivation)


@numba.njit(cache=True, error_model="numpy")
def lstm_forward_serial(embedding, mask, weight_w, weight_u, bias):
    """:func:`lstm_forward` with one group, for Numba-compiled graphs."""
    embedding = np.ascontiguousarray(embedding)
    mask = np.ascontiguousarray(mask)
    weight_u = np.ascontiguousarray(weight_u)
    group_edges = np.array([0, mask.shape[1]], dtype=np.int64)
    step_offsets, token_sample, projection = forward_prepare(
        embedding, mask, np.ascontiguousarray(weight_w), np.ascontiguousarray(bias), group_edges)
    n_steps, n_samples = mask.shape
    dim = weight_u.shape[0]
    n_tokens = token_sample.size
    h = np.empty((n_steps, n_samples, dim), dtype=embedding.dtype)
    h_before = np.empty((n_tokens, dim), dtype=embedding.dtype)
    c_before = np.empty((n_tokens, dim), dtype=embedding.dtype)
    gates = np.empty((n_tokens, 5 * dim), dtype=embedding.dtype)
    forward_group(0, mask, weight_u, group_edges, step_offsets, token_sample, projection,
                  h, h_before, c_before, gates)
    return h, h_before, c_before, gates, group_edges


@numba.njit(cache=True, error_model="numpy")
def lstm_backward_serial(embedding, mask, weight_w, weight_u, group_edges, h_before, c_before,
                         gates, grad_h):
    """:func:`lstm_backward` on the calling thread, for Numba-compiled graphs."""
    embedding = np.ascontiguousarray(embedding)
    mask = np.ascontiguousarray(mask)
    grad_h = np.ascontiguousarray(grad_h)
    h_before = np.ascontiguousarray(h_before)
    c_before = np.ascontiguousarray(c_before)
    gates = np.ascontiguousarray(gates)
    step_offsets, token_sample = token_layout(mask, group_edges)
    grad_preactivation = np.empty((token_sample.size, 4 * weight_u.shape[0]), dtype=gates.dtype)
    weight_u_t = np.ascontiguousarray(weight_u.T)
    for group in range(group_edges.size - 1):
        backward_group(group, mask, weight_u_t, group_edges, step_offsets, token_sample,
                       h_before, c_before, gates, grad_h, grad_preactivation)
    return backward_finish(embedding, np.ascontiguousarray(weight_w), step_offsets, token_sample,
                           h_before, grad_preactivation)


# ---------------------------------------------------------------------------
# The Ops.


def _check_inputs(embedding, mask, weight_w, weight_u, bias):
    variables = [pt.as_tensor_variable(v) for v in (embedding, mask, weight_w, weight_u, bias)]
    expected = (3, 2, 2, 2, 1)
    if tuple(v.ndim for v in variables) != expected:
        raise ValueError(
            "LSTM inputs have {} dimensions; expected embedding (n_steps, n_samples, n_in), "
            "mask (n_steps, n_samples), W (n_in, 4 dim), U (dim, 4 dim) and b (4 dim,)"
            .format(", ".join(str(v.ndim) for v in variables)))
    dtypes = {v.dtype for v in variables}
    if len(dtypes) != 1 or variables[0].dtype not in ("float32", "float64"):
        raise ValueError(
            "LSTM inputs have dtypes {}; they must all be float32 or all float64"
            .format(", ".join(v.dtype for v in variables)))
    return variables


class LSTMSequence(Op):
    """Masked LSTM layer: ``(embedding, mask, W, U, b) -> (h, h_before, c_before, gates, groups)``.

    Only ``h``, ``(n_steps, n_samples, dim)``, is meant for the rest of the
    graph. The other outputs are per token (see the module's docstring) and
    kept for :class:`LSTMSequenceGrad`; a cost that depends on them raises
    NotImplementedError in ``pytensor.grad``. There is no ``infer_shape``:
    the per-token outputs' sizes depend on the mask's values.
    """

    __props__ = ()

    def make_node(self, embedding, mask, weight_w, weight_u, bias):
        inputs = _check_inputs(embedding, mask, weight_w, weight_u, bias)
        dtype = inputs[0].dtype
        outputs = [pt.tensor3(dtype=dtype), pt.matrix(dtype=dtype), pt.matrix(dtype=dtype),
                   pt.matrix(dtype=dtype), pt.vector(dtype="int64")]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        results = lstm_forward(*inputs, n_threads=get_num_threads())
        for storage, result in zip(output_storage, results):
            storage[0] = result

    def pullback(self, inputs, outputs, output_grads):
        from pytensor.gradient import DisconnectedType

        embedding, mask, weight_w, weight_u, bias = inputs
        h, h_before, c_before, gates, group_edges = outputs
        grad_h = output_grads[0]
        if any(not isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            raise NotImplementedError(
                "LSTMSequence differentiates only through its first output h; "
                "use the per-token states and gates only inside the gradient"
            )
        if isinstance(grad_h.type, DisconnectedType):
            grad_h = pt.zeros_like(h)
        grad_embedding, grad_w, grad_u, grad_b = LSTMSequenceGrad()(
            embedding, mask, weight_w, weight_u, group_edges, h_before, c_before, gates, grad_h)
        return [grad_embedding, pt.zeros_like(mask), grad_w, grad_u, grad_b]


class LSTMSequenceGrad(Op):
    """Gradient of :class:`LSTMSequence`: ``-> (d embedding, dW, dU, db)``."""

    __props__ = ()

    def make_node(self, embedding, mask, weight_w, weight_u, group_edges, h_before, c_before,
                  gates, grad_h):
        variables = [pt.as_tensor_variable(v) for v in (
            embedding, mask, weight_w, weight_u, group_edges, h_before, c_before, gates, grad_h)]
        dtype = variables[0].dtype
        floats = variables[:4] + variables[5:]
        if any(v.dtype != dtype for v in floats) or variables[4].dtype != "int64":
            raise ValueError("LSTMSequenceGrad inputs must share one float dtype, got "
                             + ", ".join(v.dtype for v in variables))
        outputs = [pt.tensor3(dtype=dtype), pt.matrix(dtype=dtype), pt.matrix(dtype=dtype),
                   pt.vector(dtype=dtype)]
        return Apply(self, variables, outputs)

    def perform(self, node, inputs, output_storage):
        results = lstm_backward(*inputs)
        for storage, result in zip(output_storage, results):
            storage[0] = result

    def infer_shape(self, *args):
        # PyTensor 3.0 passes (fgraph, node, input_shapes), 3.3 (node, input_shapes).
        input_shapes = args[-1]
        embedding_shape, _, w_shape, u_shape = input_shapes[:4]
        return [embedding_shape, w_shape, u_shape, (w_shape[1],)]


@register_funcify_default_op_cache_key(LSTMSequence)
def _numba_funcify_lstm_sequence(op, node=None, **kwargs):
    @numba_njit
    def lstm_sequence(embedding, mask, weight_w, weight_u, bias):
        return lstm_forward_serial(embedding, mask, weight_w, weight_u, bias)

    return lstm_sequence, KERNEL_VERSION


@register_funcify_default_op_cache_key(LSTMSequenceGrad)
def _numba_funcify_lstm_sequence_grad(op, node=None, **kwargs):
    @numba_njit
    def lstm_sequence_grad(embedding, mask, weight_w, weight_u, group_edges, h_before,
                           c_before, gates, grad_h):
        return lstm_backward_serial(embedding, mask, weight_w, weight_u, group_edges, h_before,
                                    c_before, gates, grad_h)

    return lstm_sequence_grad, KERNEL_VERSION


lstm_sequence = LSTMSequence()
