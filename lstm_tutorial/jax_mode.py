"""PyTensor's JAX compile mode for this model: one compiled graph per bucket of lengths.

Under pytensor 3.0.7 with jax 0.10.2 the JAX backend traces a graph only when every
shape it computes is a compile-time constant. The scan LSTM reads its number of
steps from ``x.shape[0]``, and the gradient graph computes sizes such as ``n_steps *
n_samples`` for reshapes. With a dimension left symbolic these sizes become JAX
tracers and tracing stops ("Shapes must be 1D sequences of concrete values").

So every function of ``(x, mask, ...)`` (``f_grad_shared``, ``f_pred_prob``) is
compiled again for each ``(n_steps, n_samples)`` it meets, from the same symbolic
graph with inputs of that static shape. To keep the number of shapes small, each
minibatch's time axis is padded with zeros (mask 0) up to a bucket, see
:func:`bucket_length`. Training steps pad every minibatch that fits ``maxlen`` to
``maxlen`` itself, so a training run compiles two shapes: the full batch size and the
epoch's last, smaller batch.

Padding after a review's last token does not change the cost or the probabilities:
the LSTM carries its state over masked steps unchanged and the pooling averages over
real steps only (``tests/test_jax_mode.py`` checks both under NUMBA and JAX).

jax is an optional dependency: this module imports it only in :func:`require_jax`
and when compiling.
"""

import contextlib
import logging
import time
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode, get_mode
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import clone_get_equiv
from pytensor.tensor.random.type import RandomType

logger = logging.getLogger(__name__)

# NOTE: only JAX's CPU backend has run this module. The CUDA backend (jax[cuda12]) is
# expected to work the same way but is untested (scripts/gpu_check.sh is the check).
JAX_MODE = "JAX"
INSTALL_COMMAND = "pip install 'lstm-tutorial[jax]'"
# Buckets are multiples of BUCKET_STEP up to 8 * BUCKET_STEP, then four per doubling
# of the length, so above that padding adds less than a quarter of the steps.
BUCKET_STEP = 32

# Warnings of PyTensor's JAX backend that this module handles or that do not apply:
# the copy of the dropout generator (its state is synchronised by BucketedFunction) and
# the broadcast checks that JAX drops (the shapes are fixed when compiling).
_EXPECTED_WARNINGS = (
    r"The RandomType SharedVariables .* will not be used in the compiled JAX graph",
    r"Skipping Assert.*as JAX tracing would remove it",
)
# PyTensor's sums ask for a float64 accumulator, which JAX computes in float32 unless
# its 64-bit mode is on; resolve_options requires that mode for floatX=float64.
_FLOAT32_WARNING = r"Explicitly requested dtype float64 requested in astype is not available"


@contextlib.contextmanager
def _expected_warnings_ignored():
    with warnings.catch_warnings():
        for message in _EXPECTED_WARNINGS + (_FLOAT32_WARNING,):
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


class JaxUnavailableError(ImportError):
    """The JAX compile mode was requested but jax cannot be imported."""


def require_jax():
    """Import jax, or raise :class:`JaxUnavailableError` naming the install command."""
    try:
        import jax
    except ImportError as error:
        raise JaxUnavailableError(
            f"mode={JAX_MODE!r} needs jax, which cannot be imported ({error}); install it "
            f"with {INSTALL_COMMAND} (pip install -e '.[jax]' in a source checkout, "
            "'jax[cuda12]' for an NVIDIA GPU), or choose mode VM (the default), NUMBA or CVM"
        ) from error
    return jax


def resolve_options(options):
    """Check that jax imports and select the scan LSTM, the only one JAX can run.

    Changes ``options["lstm_impl"]`` to ``"scan"`` in place (with a warning) when it
    names the fused Op, which has Numba and Python implementations only.

    Raises
    ------
    JaxUnavailableError
        When jax cannot be imported.
    ValueError
        For ``floatX="float64"`` while JAX's 64-bit mode is off: JAX would compute
        in float32 without saying so.
    """
    jax = require_jax()
    if options.get("floatX") == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            f"floatX='float64' under mode={JAX_MODE!r} needs JAX's 64-bit mode, which is off; "
            "set the environment variable JAX_ENABLE_X64=1 before starting Python, or train "
            "with floatX float32"
        )
    if options.get("lstm_impl") != "scan":
        logger.warning("lstm_impl=%s has no JAX implementation; mode=%s trains with "
                       "lstm_impl=scan", options.get("lstm_impl"), JAX_MODE)
        options["lstm_impl"] = "scan"


def bucket_length(n_steps, maxlen=None):
    """Return the padded number of steps of a minibatch whose longest review has ``n_steps``.

    Lengths are rounded up to a multiple of ``BUCKET_STEP`` (32) up to 256, above that
    to a quarter of the power of two below them (320, 384, 448, 512, 640, ...). With
    ``maxlen`` set, a minibatch of at most ``maxlen`` steps is padded to ``maxlen`` at
    most, so that with ``maxlen=100`` such minibatches use the buckets 32, 64, 96 and 100.

    >>> [bucket_length(n) for n in (1, 32, 33, 250, 257, 1000)]
    [32, 32, 64, 256, 320, 1024]
    >>> bucket_length(99, maxlen=100)
    100
    """
    if n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r} is invalid: a minibatch has at least one step")
    step = max(BUCKET_STEP, 1 << max(0, (n_steps - 1).bit_length() - 3))
    rounded = -(-n_steps // step) * step
    if maxlen and n_steps <= maxlen:
        return min(rounded, maxlen)
    return rounded


def pad_steps(array, n_steps):
    """Return a time-major ``(steps, n_samples)`` array padded with zeros to ``n_steps`` rows."""
    if array.shape[0] == n_steps:
        return array
    padded = np.zeros((n_steps,) + array.shape[1:], dtype=array.dtype)
    padded[: array.shape[0]] = array
    return padded


class _GeneratorSync:
    """Keep a shared NumPy generator and the JAX copies of it in one random stream.

    PyTensor's JAX linker (checked with pytensor 3.0.7 and 3.3.8) gives each compiled
    function its own copy of a shared random generator, so the shared variable itself
    never advances. The copy is a dict whose ``"jax_state"`` (two uint32) is the key
    that ``bernoulli`` splits. Before each call the copy is set from the shared
    variable. After it the new key is written back into the low 64 bits of the PCG64
    state, the bits that PyTensor's conversion reads the key from. So the functions of
    all buckets continue one stream, and a checkpoint of the shared generator contains
    its current state.
    """

    def __init__(self, function):
        self._cells = [
            (function.input_storage[position], spec.variable)
            for position, spec in enumerate(function.maker.inputs)
            if isinstance(spec.variable, SharedVariable)
            and isinstance(spec.variable.type, RandomType)
        ]

    def before_call(self):
        from pytensor.link.jax.dispatch import jax_typify

        for container, shared in self._cells:
            container.storage[0] = jax_typify(shared.get_value(borrow=True))

    def after_call(self):
        for container, shared in self._cells:
            key = np.asarray(container.storage[0]["jax_state"], dtype="uint64")
            generator = shared.get_value(borrow=False)
            state = generator.bit_generator.state
            if state["bit_generator"] != "PCG64":
                raise TypeError(f"shared generator {shared.name!r} uses "
                                f"{state['bit_generator']}; the JAX mode supports PCG64 only")
            high_bits = state["state"]["state"] >> 64 << 64
            state["state"]["state"] = high_bits | (int(key[1]) << 32) | int(key[0])
            generator.bit_generator.state = state
            shared.set_value(generator, borrow=True)


class BucketedFunction:
    """A compiled function of ``(x, mask, *rest)`` with one JAX graph per input shape.

    ``x`` and ``mask`` are time-major ``(n_steps, n_samples)`` matrices. Each call
    pads them with zeros to :func:`bucket_length` steps, and the first call with a new
    ``(bucket, n_samples)`` compiles the graph with inputs of that static shape. The
    other inputs (``y``) get ``n_samples`` as their first dimension.

    Parameters
    ----------
    name : str
        Name of the compiled functions, for logs.
    inputs : list of variables
        ``x``, ``mask``, then the other explicit inputs.
    outputs : variable or list of variables
        As for ``pytensor.function``: a single variable returns a single value.
    updates : list of (shared variable, expression)
    maxlen : int or None
        Passed to :func:`bucket_length`.
    pad_to_maxlen : bool
        Pad every call of at most ``maxlen`` steps to ``maxlen``, one bucket.
    """

    def __init__(self, name, inputs, outputs, updates=(), *, maxlen=None, pad_to_maxlen=False,
                 on_unused_input=None):
        self.name = name
        self._inputs = list(inputs)
        self._outputs = outputs
        self._updates = list(updates)
        self._maxlen = maxlen
        self._pad_to_maxlen = pad_to_maxlen and bool(maxlen)
        self._on_unused_input = on_unused_input
        # Compiling reads floatX (the Scan's rewrites do), so each later compile uses the
        # value of the moment the graph was built.
        self._floatX = pytensor.config.floatX
        self._compiled = {}
        # Seconds spent compiling each (n_steps, n_samples) shape: PyTensor's rewrites
        # and, on the first call, JAX's tracing and XLA compilation.
        self.compile_seconds = {}

    def __call__(self, x, mask, *rest):
        x, mask = np.asarray(x), np.asarray(mask)
        if self._pad_to_maxlen and x.shape[0] <= self._maxlen:
            n_steps = self._maxlen
        else:
            n_steps = bucket_length(x.shape[0], self._maxlen)
        key = (n_steps, x.shape[1])
        first_call = key not in self._compiled
        if first_call:
            self._compile(key)
        function, sync = self._compiled[key]

        start = time.perf_counter()
        sync.before_call()
        with _expected_warnings_ignored(), pytensor.config.change_flags(floatX=self._floatX):
            result = function(pad_steps(x, n_steps), pad_steps(mask, n_steps), *rest)
        sync.after_call()
        if first_call:
            self.compile_seconds[key] += time.perf_counter() - start
            logger.info("compile function=%s n_steps=%d n_samples=%d seconds=%.1f", self.name,
                        n_steps, key[1], self.compile_seconds[key])
        return result

    def _compile(self, key):
        start = time.perf_counter()
        n_steps, n_samples = key
        static = [pt.tensor(variable.name, dtype=variable.dtype, shape=(n_steps, n_samples))
                  for variable in self._inputs[:2]]
        static += [pt.tensor(variable.name, dtype=variable.dtype,
                             shape=(n_samples,) + (None,) * (variable.ndim - 1))
                   for variable in self._inputs[2:]]

        # The JAX backend of pytensor 3.0 rewrites the inner graph of each Scan in place
        # while it compiles, so every shape gets its own copy of the graph, inner graphs
        # included. PyTensor 3.3 shares immutable inner graphs and warns that the flag
        # is ignored.
        single = not isinstance(self._outputs, list | tuple)
        outputs = [self._outputs] if single else list(self._outputs)
        targets = outputs + [expression for _, expression in self._updates]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`clone_inner_graphs` is deprecated",
                                    category=FutureWarning)
            copies = clone_get_equiv([], targets, copy_inputs=False, copy_orphans=False,
                                     clone_inner_graphs=True)
        outputs = [copies[variable] for variable in outputs]
        updates = [(shared, copies[expression]) for shared, expression in self._updates]

        with _expected_warnings_ignored(), pytensor.config.change_flags(floatX=self._floatX):
            function = pytensor.function(static, outputs[0] if single else outputs,
                                         updates=updates, givens=list(zip(self._inputs, static)),
                                         mode=JAX_MODE, name=self.name,
                                         on_unused_input=self._on_unused_input)
        self._compiled[key] = (function, _GeneratorSync(function))
        self.compile_seconds[key] = time.perf_counter() - start


def compile_mode(maxlen=None):
    """Return the ``mode`` to pass to ``pytensor.function`` for this model under JAX.

    Functions whose first two explicit inputs are matrices (``f(x, mask, ...)``)
    become :class:`BucketedFunction` objects; any other function (sgd's
    ``f_update(lr)``) compiles as under ``mode="JAX"``. Functions with updates (the
    training step) pad every minibatch that fits ``maxlen`` to ``maxlen``: the longest
    of a random minibatch is usually close to ``maxlen``, so one bucket saves compiles
    at little padding. Evaluation batches are sorted by length and use every bucket.
    """
    jax_mode = get_mode(JAX_MODE)

    class _BucketingMode(Mode):
        @property
        def function_maker(self):
            return _make_function

        def __str__(self):
            return f"{JAX_MODE} with buckets of steps (maxlen={maxlen})"

    def _make_function(inputs, outputs, mode, *, name=None, on_unused_input=None, **kwargs):
        explicit = [spec.variable for spec in inputs if not spec.implicit]
        if len(explicit) >= 2 and all(variable.ndim == 2 for variable in explicit[:2]):
            updates = [(spec.variable, spec.update) for spec in inputs
                       if spec.update is not None]
            return _Created(BucketedFunction(name, explicit, outputs, updates, maxlen=maxlen,
                                             pad_to_maxlen=bool(updates),
                                             on_unused_input=on_unused_input))
        return jax_mode.function_maker(inputs, outputs, jax_mode, name=name,
                                       on_unused_input=on_unused_input, **kwargs)

    return _BucketingMode(linker=jax_mode.provided_linker, optimizer=jax_mode.provided_optimizer)


class _Created:
    """Stand-in for a ``FunctionMaker``: ``pytensor.function`` returns ``create()``."""

    def __init__(self, function):
        self._function = function

    def create(self):
        return self._function
