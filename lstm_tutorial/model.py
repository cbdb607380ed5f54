"""The tutorial's LSTM sentiment classifier as a PyTensor graph.

The model embeds each word id, runs an LSTM over time, averages the hidden
states over the real (unmasked) steps, applies dropout and classifies the
average with a softmax layer.

Parameters are kept by name in an ordered dict, as NumPy arrays (``params``)
or PyTensor shared variables (``tparams``). The names are the keys of the saved
``.npz`` model: ``Wemb``, ``lstm_W``, ``lstm_U``, ``lstm_b``, ``U`` and ``b``.

The LSTM's four gates sit side by side in ``lstm_W``, ``lstm_U`` and
``lstm_b``, each a block of ``dim_proj`` columns, in the order input, forget,
output, candidate.
"""

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.random import shared_rng
from pytensor.tensor.special import softmax

import lstm_tutorial.modes  # noqa: F401  (registers the VM compile mode)

GATE_ORDER = ("input", "forget", "output", "candidate")
PARAM_NAMES = ("Wemb", "lstm_W", "lstm_U", "lstm_b", "U", "b")


def _p(prefix, name):
    return f"{prefix}_{name}"


def ortho_weight(ndim, rng):
    """Return a random ``(ndim, ndim)`` orthogonal matrix of floatX.

    It is the left factor of the SVD of a standard normal matrix.
    """
    weight = rng.standard_normal((ndim, ndim))
    u, _, _ = np.linalg.svd(weight)
    return u.astype(pytensor.config.floatX)


def param_init_lstm(options, params, rng, prefix="lstm"):
    """Add the LSTM's ``W``, ``U`` (four orthogonal blocks each) and zero ``b``."""
    dim = options["dim_proj"]
    params[_p(prefix, "W")] = np.concatenate([ortho_weight(dim, rng) for _ in GATE_ORDER], axis=1)
    params[_p(prefix, "U")] = np.concatenate([ortho_weight(dim, rng) for _ in GATE_ORDER], axis=1)
    params[_p(prefix, "b")] = np.zeros((4 * dim,), dtype=pytensor.config.floatX)
    return params


def init_params(options, rng):
    """Draw the initial parameters.

    Parameters
    ----------
    options : dict
        Needs ``n_words``, ``dim_proj`` and ``ydim``.
    rng : numpy.random.Generator

    Returns
    -------
    OrderedDict of str to ndarray
        ``Wemb`` ``(n_words, dim_proj)`` uniform in [0, 0.01); the LSTM's
        ``lstm_W``, ``lstm_U`` ``(dim_proj, 4 * dim_proj)`` and ``lstm_b``;
        the classifier's ``U`` ``(dim_proj, ydim)`` normal times 0.01 and
        ``b`` ``(ydim,)`` zero.
    """
    floatx = pytensor.config.floatX
    params = OrderedDict()
    params["Wemb"] = (0.01 * rng.random((options["n_words"], options["dim_proj"]))).astype(floatx)
    params = param_init_lstm(options, params, rng, prefix="lstm")
    params["U"] = (0.01 * rng.standard_normal((options["dim_proj"], options["ydim"]))).astype(floatx)
    params["b"] = np.zeros((options["ydim"],), dtype=floatx)
    return params


def init_tparams(params):
    """Wrap every parameter array in a shared variable of the same name."""
    return OrderedDict((name, pytensor.shared(value, name=name)) for name, value in params.items())


def lstm_layer(tparams, state_below, options, prefix="lstm", mask=None):
    """Run the LSTM over time and return every step's hidden state.

    Parameters
    ----------
    tparams : dict of shared variables
        Needs ``lstm_W``, ``lstm_U`` and ``lstm_b``.
    state_below : tensor3, shape (n_steps, n_samples, dim_proj)
        Input at each step (the word embeddings), time-major.
    mask : matrix, shape (n_steps, n_samples)
        1 on real tokens, 0 on padding. On a padded step the cell and hidden
        states of that example are carried forward unchanged.

    Returns
    -------
    tensor3, shape (n_steps, n_samples, dim_proj)
        The hidden state ``h`` after each step.
    """
    # A constant size lets PyTensor fuse the gate slices: taking it from the
    # weights' shape made an update about 3 times slower under NUMBA.
    dim = options["dim_proj"]
    n_samples = state_below.shape[1]
    if mask is None:
        mask = pt.ones(state_below.shape[:2], dtype=pytensor.config.floatX)

    def gate(preactivation, index):
        return preactivation[:, index * dim:(index + 1) * dim]

    def step(mask_t, input_t, h_prev, c_prev):
        gate_preactivation = pt.dot(h_prev, tparams[_p(prefix, "U")]) + input_t
        input_gate = pt.sigmoid(gate(gate_preactivation, 0))
        forget_gate = pt.sigmoid(gate(gate_preactivation, 1))
        output_gate = pt.sigmoid(gate(gate_preactivation, 2))
        candidate = pt.tanh(gate(gate_preactivation, 3))

        c = forget_gate * c_prev + input_gate * candidate
        c = mask_t[:, None] * c + (1.0 - mask_t)[:, None] * c_prev
        h = output_gate * pt.tanh(c)
        h = mask_t[:, None] * h + (1.0 - mask_t)[:, None] * h_prev
        return h, c

    # The input projection x W + b is one matrix product for all steps at once;
    # only h_prev U stays inside the loop.
    input_projection = pt.dot(state_below, tparams[_p(prefix, "W")]) + tparams[_p(prefix, "b")]
    zeros = pt.zeros((n_samples, dim), dtype=pytensor.config.floatX)
    h, _ = pytensor.scan(
        step,
        sequences=[mask, input_projection],
        outputs_info=[zeros, zeros],
        name=_p(prefix, "layers"),
        return_updates=False,
    )
    return h


def lstm_layer_fused(tparams, state_below, options, prefix="lstm", mask=None):
    """Run the LSTM with the one-Op kernel; same arguments and result as :func:`lstm_layer`.

    The layer is the scan's, input projection included, computed by
    :class:`lstm_tutorial.lstm_op.LSTMSequence` and its gradient Op, which
    skip the padded steps of each review. Only the Numba and Python backends run it; the JAX backend needs
    :func:`lstm_layer`.
    """
    from lstm_tutorial.lstm_op import lstm_sequence

    if mask is None:
        mask = pt.ones(state_below.shape[:2], dtype=pytensor.config.floatX)
    h = lstm_sequence(state_below, mask, tparams[_p(prefix, "W")], tparams[_p(prefix, "U")],
                      tparams[_p(prefix, "b")])[0]
    return h


LSTM_LAYERS = {"scan": lstm_layer, "fused": lstm_layer_fused}


def dropout_layer(state_before, use_noise, rng=None):
    """Apply the tutorial's dropout with probability 0.5 and no rescaling.

    Parameters
    ----------
    state_before : tensor
    use_noise : bool
        True for training: multiply by a fresh Bernoulli(0.5) mask drawn from
        ``rng``. False for evaluation: multiply by 0.5, the mask's expectation.
    rng : RandomGeneratorSharedVariable
        Needed when ``use_noise`` is True.

    Returns
    -------
    output : tensor
    updates : dict
        ``{rng: next_rng}``. A compiled training function must apply it, or
        every call would reuse the same mask. Empty for evaluation.
    """
    if not use_noise:
        return state_before * np.asarray(0.5, dtype=pytensor.config.floatX), {}
    # uniform < 0.5 is a Bernoulli(0.5) draw; PyTensor's Python implementation
    # of bernoulli took 3.6 ms for a 16 x 128 mask, uniform 0.03 ms.
    next_rng, uniform = rng.uniform(size=state_before.shape, dtype=state_before.dtype)
    keep = pt.lt(uniform, np.asarray(0.5, dtype=state_before.dtype))
    return state_before * pt.cast(keep, state_before.dtype), {rng: next_rng}


def _classifier(tparams, options, x, mask, use_noise, rng):
    n_steps, n_samples = x.shape[0], x.shape[1]
    word_ids = x.flatten()
    embedding_rows = tparams["Wemb"][word_ids]
    embedding = embedding_rows.reshape((n_steps, n_samples, options["dim_proj"]))
    layer = LSTM_LAYERS[options.get("lstm_impl", "scan")]
    h = layer(tparams, embedding, options, prefix="lstm", mask=mask)

    # Mean of h over the real steps of each example.
    pooled = (h * mask[:, :, None]).sum(axis=0) / mask.sum(axis=0)[:, None]

    updates = {}
    if options["use_dropout"]:
        pooled, updates = dropout_layer(pooled, use_noise, rng)
    probabilities = softmax(pt.dot(pooled, tparams["U"]) + tparams["b"], axis=-1)
    return probabilities, updates, word_ids, embedding_rows


def build_pred_prob(tparams, options):
    """Build only the evaluation graph: class probabilities with dropout off.

    It is the ``pred_prob`` of :func:`build_model` without the training cost,
    for loading a saved model and classifying new text.

    Returns
    -------
    x : int64 matrix, shape (n_steps, n_samples)
    mask : floatX matrix, same shape
    pred_prob : floatX matrix, shape (n_samples, ydim)
    """
    x = pt.matrix("x", dtype="int64")
    mask = pt.matrix("mask", dtype=pytensor.config.floatX)
    pred_prob = _classifier(tparams, options, x, mask, False, None)[0]
    return x, mask, pred_prob


def build_model(tparams, options, rng=None):
    """Build the training cost and the evaluation probabilities.

    Parameters
    ----------
    tparams : OrderedDict of shared variables
    options : dict
        Needs ``dim_proj``, ``use_dropout`` and ``decay_c``. ``lstm_impl``
        picks the LSTM: ``"scan"`` (:func:`lstm_layer`, the default) or
        ``"fused"`` (:func:`lstm_layer_fused`).
    rng : RandomGeneratorSharedVariable, optional
        Source of the dropout masks; a new one seeded from ``options["seed"]``
        when None.

    Returns
    -------
    SimpleNamespace
        ``x`` (int64 matrix, ``(n_steps, n_samples)``), ``mask`` (floatX
        matrix, same shape), ``y`` (int64 vector, ``(n_samples,)``), ``cost``
        (scalar: mean of ``-log(p[y] + 1e-8)`` with dropout on, plus
        ``decay_c * sum(U ** 2)``), ``pred_prob`` (``(n_samples, ydim)``
        probabilities with dropout off), ``updates`` (the dropout generator's
        update for the training function), ``rng``, and ``word_ids`` (the
        flattened ``x``) with ``embedding_rows`` (``Wemb[word_ids]``), through
        which the cost's gradient reaches ``Wemb`` only in the batch's rows.
    """
    if pytensor.config.floatX not in ("float32", "float64"):
        raise ValueError(
            f"floatX={pytensor.config.floatX!r} is not supported; use float32 or float64"
        )
    if rng is None:
        rng = shared_rng(seed=options.get("seed", 123), name="dropout_rng")

    x = pt.matrix("x", dtype="int64")
    mask = pt.matrix("mask", dtype=pytensor.config.floatX)
    y = pt.vector("y", dtype="int64")

    train_probabilities, updates, word_ids, embedding_rows = _classifier(
        tparams, options, x, mask, True, rng)
    pred_prob = _classifier(tparams, options, x, mask, False, rng)[0]

    n_samples = x.shape[1]
    offset = 1e-8
    picked = train_probabilities[pt.arange(n_samples), y]
    cost = -pt.log(picked + np.asarray(offset, dtype=pytensor.config.floatX)).mean()
    if options.get("decay_c", 0.0) > 0.0:
        decay_c = np.asarray(options["decay_c"], dtype=pytensor.config.floatX)
        cost = cost + decay_c * (tparams["U"] ** 2).sum()

    return SimpleNamespace(x=x, mask=mask, y=y, cost=cost, pred_prob=pred_prob,
                           updates=updates, rng=rng, word_ids=word_ids,
                           embedding_rows=embedding_rows)
