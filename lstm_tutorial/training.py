"""Train the LSTM classifier: the port of the tutorial's ``train_lstm``."""

import logging
import math
import signal
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

import numpy as np

from lstm_tutorial.checkpoint import (
    CheckpointError,
    check_resume_data,
    check_resume_options,
    checkpoint_path,
    data_fingerprint,
    generator_state,
    load_checkpoint,
    restore_generator,
    save_checkpoint,
)
from lstm_tutorial.fileio import DataError, check_output_folder
from lstm_tutorial.interrupts import StopRequest, TrainingAborted

logger = logging.getLogger(__name__)

# JAX (optional, jax_mode.py) runs the scan LSTM only, and compiles one graph per
# bucket of padded lengths and batch size because its scan needs static shapes.
MODES = ("VM", "NUMBA", "CVM", "JAX")
LSTM_IMPLS = ("fused", "scan")
FLOAT_TYPES = ("float32", "float64")
class TrainingDivergedError(FloatingPointError):
    """The cost became NaN or infinite; the saved model was left as it was."""


class TrainingResult(tuple):
    """``(train_err, valid_err, test_err)`` with how the run ended.

    ``interrupted`` is True when Ctrl-C or SIGTERM stopped training early, and
    ``stop_signal`` is then that signal's number (``signal.SIGINT`` or
    ``signal.SIGTERM``).
    """

    def __new__(cls, train_err, valid_err, test_err, interrupted=False, stop_signal=None):
        result = super().__new__(cls, (train_err, valid_err, test_err))
        result.interrupted = interrupted
        result.stop_signal = stop_signal
        return result


def get_minibatches_idx(n, minibatch_size, shuffle=False, rng=None):
    """Split ``range(n)`` into minibatches of indices.

    The last minibatch is smaller when ``minibatch_size`` does not divide
    ``n``. Unlike the original, the result is a list, so it can be iterated
    more than once.

    Returns
    -------
    list of (int, ndarray of int)
        ``(minibatch_number, indices)`` pairs.
    """
    indices = np.arange(n, dtype="int64")
    if shuffle:
        rng.shuffle(indices)
    return [(number, indices[start:start + minibatch_size])
            for number, start in enumerate(range(0, n, minibatch_size))]


def pred_probs(f_pred_prob, prepare_data, data, iterator, verbose=False):
    """Return the class probabilities of every example, shape ``(n, ydim)``."""
    n_samples = len(data[0])
    probs = None
    for _, index in iterator:
        x, mask, _ = prepare_data([data[0][t] for t in index], np.asarray(data[1])[index],
                                  maxlen=None)
        batch_probs = f_pred_prob(x, mask)
        if probs is None:
            probs = np.zeros((n_samples, batch_probs.shape[1]), dtype=batch_probs.dtype)
        probs[index, :] = batch_probs
        if verbose:
            logger.info("pred_probs done=%d/%d", int(index[-1]) + 1, n_samples)
    return probs


def pred_error(f_pred, prepare_data, data, iterator, verbose=False):
    """Return the error rate, ``1 - accuracy``, of ``f_pred`` on ``data``.

    Parameters
    ----------
    f_pred : callable
        ``f_pred(x, mask)`` returns the predicted class of each example.
    prepare_data : callable
    data : tuple of (list of list of int, list of int)
    iterator : list of (int, ndarray)
        Minibatches as made by :func:`get_minibatches_idx`.
    """
    labels = np.asarray(data[1])
    correct = 0
    for _, index in iterator:
        x, mask, _ = prepare_data([data[0][t] for t in index], labels[index], maxlen=None)
        correct += int((f_pred(x, mask) == labels[index]).sum())
    return 1.0 - correct / len(data[0])


def should_stop_early(history_errs, bad_counter, patience):
    """Apply the tutorial's early-stopping rule after a validation.

    Once more than ``patience`` validations exist, a validation whose error is
    no better than the best one from before the last ``patience`` validations
    counts as bad. Training stops when the count of bad validations passes
    ``patience``. The count is reset only when a new best validation error is
    reached (see :class:`TrainingState`), as in the original.

    Returns
    -------
    bad_counter : int
        The updated count.
    stop : bool
    """
    errors = np.asarray(history_errs, dtype="float64")[:, 0]
    if len(errors) > patience and errors[-1] >= errors[:-patience].min():
        bad_counter += 1
        if bad_counter > patience:
            return bad_counter, True
    return bad_counter, False


@dataclass
class TrainingState:
    """Counters of the training loop, kept together so that they can be saved."""

    epoch: int = 0
    n_updates: int = 0
    # Order of the training reviews in the current epoch (None between
    # epochs) and how many of its minibatches are done.
    epoch_order: np.ndarray = None
    batch_position: int = 0
    bad_counter: int = 0
    history_errs: list = field(default_factory=list)
    # Update number of each validation, the same length as history_errs.
    history_updates: list = field(default_factory=list)
    best_p: OrderedDict = None
    stopped_early: bool = False
    interrupted: bool = False
    stop_signal: int = None
    # Update count of the newest checkpoint written by this process.
    checkpoint_update: int = None


def unzip(tparams):
    """Copy the values of shared variables into NumPy arrays, by name."""
    return OrderedDict((name, tparam.get_value()) for name, tparam in tparams.items())


def zipp(params, tparams):
    """Set the shared variables from NumPy arrays, by name."""
    for name, value in params.items():
        tparams[name].set_value(value)


def validate_options(options):
    """Raise ``ValueError`` naming the first option that is out of range."""
    def require(condition, name, rule):
        if not condition:
            raise ValueError(f"{name}={options[name]!r} is invalid: {rule}")

    require(isinstance(options["seed"], (int, np.integer)) and options["seed"] >= 0, "seed",
            "it must be an integer of 0 or more")
    for name in ("dim_proj", "batch_size", "valid_batch_size", "max_epochs"):
        require(isinstance(options[name], (int, np.integer)) and options[name] >= 1,
                name, "it must be an integer of at least 1")
    require(options["n_words"] >= 2, "n_words", "it must be at least 2 (ids 0 and 1 are reserved)")
    require(options["patience"] >= 0, "patience", "it must be 0 or more")
    for name in ("dispFreq", "validFreq", "saveFreq"):
        require(options[name] >= 1, name, "it must be at least 1 update")
    require(options["maxlen"] is None or options["maxlen"] >= 2, "maxlen",
            "it must be at least 2 (reviews shorter than maxlen are kept) or None for no limit")
    require(0.0 < options["valid_portion"] < 1.0, "valid_portion",
            "it must lie strictly between 0 and 1")
    require(math.isfinite(options["decay_c"]) and options["decay_c"] >= 0.0, "decay_c",
            "it must be a finite number of 0 or more")
    require(math.isfinite(options["lrate"]) and options["lrate"] > 0.0, "lrate",
            "it must be a finite positive number")
    require(options["test_size"] == -1 or options["test_size"] >= 1, "test_size",
            "it must be -1 (the whole test set) or a positive count")

    from lstm_tutorial.optimizers import OPTIMIZERS

    require(options["optimizer"] in OPTIMIZERS, "optimizer",
            f"choose one of {', '.join(OPTIMIZERS)}")
    require(options["encoder"] == "lstm", "encoder", "only 'lstm' is implemented")
    require(options["noise_std"] == 0.0, "noise_std",
            "the original accepted it but never used it; leave it at 0")
    require(options["mode"] in MODES, "mode", f"choose one of {', '.join(MODES)}")
    require(options["lstm_impl"] in LSTM_IMPLS, "lstm_impl",
            f"choose one of {', '.join(LSTM_IMPLS)}")
    require(options["floatX"] in FLOAT_TYPES, "floatX",
            "choose float32 or float64 (float16 is not supported on the CPU backends)")
    require(isinstance(options["resume"], (bool, np.bool_)), "resume",
            "it must be True or False; the checkpoint is always saveto + '.ckpt.npz'")
    require(not options["resume"] or bool(options["saveto"]), "resume",
            "resuming needs saveto, the model path whose checkpoint to continue")


def train_lstm(
    *,
    dim_proj=128,
    patience=10,
    max_epochs=5000,
    dispFreq=10,
    decay_c=0.0,
    lrate=0.0001,
    n_words=10000,
    optimizer="adadelta",
    encoder="lstm",
    saveto="lstm_model.npz",
    validFreq=370,
    saveFreq=1110,
    maxlen=100,
    batch_size=16,
    valid_batch_size=64,
    dataset="imdb",
    noise_std=0.0,
    use_dropout=True,
    reload_model=None,
    test_size=-1,
    seed=123,
    valid_portion=0.05,
    mode="VM",
    floatX="float32",
    data_dir=None,
    resume=False,
    lstm_impl="fused",
):
    """Train the LSTM sentiment classifier and save the best model.

    Parameters
    ----------
    dim_proj : int
        Size of the word embeddings and of the LSTM's hidden state.
    patience : int
        Validations without improvement tolerated before early stopping.
    max_epochs : int
        Maximum number of passes over the training set.
    dispFreq : int
        Log the training cost every this many updates.
    decay_c : float
        Weight decay on the classifier weights U: adds decay_c * sum(U**2) to the cost.
    lrate : float
        Learning rate of sgd; adadelta and rmsprop ignore it.
    n_words : int
        Vocabulary size; word ids from n_words up are mapped to 1 (unknown).
    optimizer : str
        Optimizer: sgd, adadelta or rmsprop.
    encoder : str
        Sequence encoder; only lstm exists, as in the original.
    saveto : str
        Path of the saved model (.npz); empty to save nothing.
    validFreq : int
        Compute train, valid and test errors every this many updates.
    saveFreq : int
        Save the best parameters so far every this many updates.
    maxlen : int
        Drop training reviews of maxlen tokens or more; 0 or None keeps all.
    batch_size : int
        Reviews per training update.
    valid_batch_size : int
        Reviews per batch when computing errors.
    dataset : str
        'imdb', an aclImdb folder or .tar.gz archive, a corpus (folder tree, label
        folders, .csv/.tsv/.jsonl file, folder of name.LABEL files), a folder written
        by python -m lstm_tutorial.preprocess, or a .pkl/.pkl.gz dataset file.
    noise_std : float
        Accepted for compatibility; the original never used it and it must stay 0.
    use_dropout : bool
        Apply dropout (p=0.5) to the pooled LSTM output.
    reload_model : str
        Path of a saved model whose parameters to start from; None to start fresh.
    test_size : int
        Number of test reviews drawn at random for evaluation; -1 uses all.
    seed : int
        Seed of every random choice: initial weights, valid split, shuffling, dropout.
    valid_portion : float
        Share of the training reviews held out for validation.
    mode : str
        PyTensor compile mode: VM (the Python VM over the package's cached Numba kernels, ready in seconds), NUMBA (compiles the whole graph with Numba, a minute on an empty cache), CVM or JAX (needs jax; trains the scan LSTM, compiling once per bucket of padded lengths).
    floatX : str
        Floating-point type of parameters and computation: float32 or float64.
    data_dir : str
        Folder for downloaded and cached datasets; None for the default data folder.
    resume : bool
        Continue the interrupted run whose checkpoint is saveto + '.ckpt.npz' (same options); without one, start anew.
    lstm_impl : str
        LSTM implementation: fused (one compiled Op per sequence, the fast default) or scan (the tutorial's loop, the reference).

    Returns
    -------
    train_err, valid_err, test_err : float
        Error rates (1 - accuracy) of the best parameters, as a
        :class:`TrainingResult` whose ``interrupted`` and ``stop_signal``
        tell whether Ctrl-C or SIGTERM stopped training early.

    Raises
    ------
    ValueError
        For an option out of range, data that leaves nothing to train on, or
        a checkpoint whose options differ when resuming.
    FileExistsError
        When a checkpoint of an unfinished run exists and ``resume`` is False.
    TrainingDivergedError
        When the cost becomes NaN or infinite.
    TrainingAborted
        When a second Ctrl-C or SIGTERM arrives while the run is stopping.

    Notes
    -----
    While training runs, a checkpoint ``<saveto>.ckpt.npz`` is written every
    ``saveFreq`` updates and when Ctrl-C or SIGTERM stops the run. It contains
    everything needed to continue exactly where the run stopped (parameters,
    optimizer averages, best parameters, history, counters, position in the
    epoch and random generator states). ``resume=True`` continues from it, or
    starts a new run when there is none; a finished run deletes it.
    """
    options = {name: value for name, value in locals().items()}
    if options["maxlen"] == 0:
        options["maxlen"] = None
    validate_options(options)
    if options["mode"] == "JAX":
        from lstm_tutorial.jax_mode import resolve_options

        resolve_options(options)

    import pytensor

    with pytensor.config.change_flags(floatX=floatX):
        return _train(options)


def _train(options):
    from lstm_tutorial import data as data_module

    start_time = time.perf_counter()
    checkpoint = _open_checkpoint(options)
    if options["reload_model"] and checkpoint is None and \
            not Path(options["reload_model"]).is_file():
        raise FileNotFoundError(
            f"reload_model={options['reload_model']!r} not found; pass the path of a saved "
            "model or leave reload_model unset to start fresh"
        )
    data_seed, init_seed, shuffle_seed, dropout_seed = _spawn_seeds(options["seed"])
    shuffle_rng = np.random.default_rng(shuffle_seed)

    # Load the data.
    train, valid, test = load_splits(options)
    fingerprint = data_fingerprint(train, valid, test)
    if checkpoint is not None:
        check_resume_data(checkpoint, fingerprint)
    prepare = data_module.prepare_data

    # Build the model and compile its functions.
    functions = _build_functions(options, np.random.default_rng(init_seed),
                                 int(dropout_seed.generate_state(1)[0]),
                                 reload=checkpoint is None)
    kf_valid = get_minibatches_idx(len(valid[0]), options["valid_batch_size"])
    kf_test = get_minibatches_idx(len(test[0]), options["valid_batch_size"])
    kf_train_sorted = get_minibatches_idx(len(train[0]), options["valid_batch_size"])

    def evaluate():
        return tuple(pred_error(functions.f_pred, prepare, split, batches)
                     for split, batches in ((train, kf_train_sorted), (valid, kf_valid),
                                            (test, kf_test)))

    state = TrainingState()
    if checkpoint is not None:
        _restore_checkpoint(checkpoint, functions, shuffle_rng, state, len(train[0]),
                            options["batch_size"])

    def write_checkpoint():
        _write_checkpoint(options, functions, state, shuffle_rng, fingerprint)

    # Train until done, or until the first Ctrl-C or SIGTERM; a second one
    # raises TrainingAborted from anywhere in this block.
    with StopRequest() as stop:
        train_start = time.perf_counter()
        try:
            _train_loop(options, functions, train, prepare, evaluate, shuffle_rng, state, stop,
                        write_checkpoint)
        except TrainingAborted:
            raise
        except KeyboardInterrupt:
            # Only reached outside the main thread, where StopRequest cannot
            # catch the signal: the update may be half done, so the last
            # checkpoint stays as it is.
            state.interrupted, state.stop_signal = True, signal.SIGINT
        if state.interrupted:
            logger.warning("interrupted update=%d: evaluating and saving the best parameters",
                           state.n_updates)
        train_seconds = time.perf_counter() - train_start

        # Restore the best parameters, evaluate and save.
        if state.best_p is not None:
            zipp(state.best_p, functions.tparams)
        else:
            state.best_p = unzip(functions.tparams)
        train_err, valid_err, test_err = evaluate()
        epochs_run = max(state.epoch, 1)
        logger.info("done epochs=%d updates=%d seconds_per_epoch=%.2f train_err=%.4f "
                    "valid_err=%.4f test_err=%.4f seconds=%.1f", state.epoch, state.n_updates,
                    train_seconds / epochs_run, train_err, valid_err, test_err,
                    time.perf_counter() - start_time)
        if options["saveto"]:
            _save(options, functions, state, train_err=train_err, valid_err=valid_err,
                  test_err=test_err)
            logger.info("saved model=%s", options["saveto"])
            _finish_checkpoint(options, state)
    return TrainingResult(train_err, valid_err, test_err, state.interrupted, state.stop_signal)


def _open_checkpoint(options):
    """Load the checkpoint to resume from, or make sure none would be overwritten."""
    if not options["saveto"]:
        return None
    check_output_folder(options["saveto"])
    path = checkpoint_path(options["saveto"])
    if not options["resume"]:
        if path.exists():
            raise FileExistsError(
                f"checkpoint {str(path)!r} of an unfinished run exists; pass --resume "
                "(resume=True) to continue that run, or delete the file to start a new one"
            )
        return None
    if not path.exists():
        # A job script may always pass --resume: a run killed before its first
        # checkpoint, or one that already finished, then simply starts anew.
        logger.warning("resume: no checkpoint %s, so there is no unfinished run to continue; "
                       "starting a new run", path)
        return None
    _remove_stale_temporary_files(options["saveto"], path)
    checkpoint = load_checkpoint(path)
    check_resume_options(checkpoint, options)
    logger.info("resume checkpoint=%s epoch=%d update=%d validations=%d", path,
                checkpoint.state["epoch"], checkpoint.state["n_updates"],
                len(checkpoint.history_errs))
    return checkpoint


def _remove_stale_temporary_files(*targets):
    """Delete temporary files that a killed run left beside the model or checkpoint.

    atomic_write names them ``.<target name>.<random>.tmp``. Only one run may
    write to a ``saveto`` at a time, so when resuming none of them is in use.
    """
    for target in map(Path, targets):
        for stale in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
            logger.info("removed stale temporary file=%s", stale)
            stale.unlink(missing_ok=True)


def _finish_checkpoint(options, state):
    """Delete the checkpoint of a finished run; keep it when the run was interrupted."""
    path = checkpoint_path(options["saveto"])
    if state.interrupted:
        if path.exists():
            logger.info("checkpoint=%s kept; pass --resume to continue", path)
        return
    path.unlink(missing_ok=True)


def _write_checkpoint(options, functions, state, shuffle_rng, fingerprint):
    params = unzip(functions.tparams)
    _require_finite(params, options, state)
    counters = {"epoch": state.epoch, "n_updates": state.n_updates,
                "batch_position": state.batch_position, "bad_counter": state.bad_counter}
    save_checkpoint(
        checkpoint_path(options["saveto"]),
        params=params,
        best_p=state.best_p,
        optimizer_state=[(variable.name, variable.get_value())
                         for variable in functions.optimizer_state],
        history_errs=state.history_errs,
        history_updates=state.history_updates,
        epoch_order=state.epoch_order,
        state=dict(counters, options=options, data_fingerprint=fingerprint,
                   shuffle_rng=generator_state(shuffle_rng),
                   dropout_rng=generator_state(functions.dropout_rng.get_value())),
    )
    state.checkpoint_update = state.n_updates
    logger.info("saved checkpoint=%s update=%d", checkpoint_path(options["saveto"]),
                state.n_updates)


def _checked_arrays(checkpoint, what, stored, expected):
    """Return ``stored`` converted to the dtypes of ``expected``, in its order."""
    arrays = OrderedDict()
    for name, value in expected.items():
        if name not in stored:
            raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} has no {what} {name!r}; "
                                  "delete it to start the run over without --resume")
        if stored[name].shape != value.shape:
            raise CheckpointError(
                f"checkpoint {str(checkpoint.path)!r}: {what} {name!r} has shape "
                f"{stored[name].shape}, the model needs {value.shape}; delete it to start the "
                "run over without --resume"
            )
        arrays[name] = stored[name].astype(value.dtype)
    return arrays


def _restore_checkpoint(checkpoint, functions, shuffle_rng, state, n_train, batch_size):
    """Put the parameters, optimizer, generators and counters of ``checkpoint`` back."""
    current = unzip(functions.tparams)
    zipp(_checked_arrays(checkpoint, "parameter", checkpoint.params, current), functions.tparams)
    if checkpoint.best_p is not None:
        state.best_p = _checked_arrays(checkpoint, "best parameter", checkpoint.best_p, current)

    optimizer_names = [variable.name for variable in functions.optimizer_state]
    stored_names = [name for name, _ in checkpoint.optimizer_state]
    if stored_names != optimizer_names:
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} contains the optimizer "
                              f"variables {stored_names}, the optimizer has {optimizer_names}; "
                              "delete it to start the run over without --resume")
    stored = dict(checkpoint.optimizer_state)
    expected = OrderedDict((variable.name, variable.get_value(borrow=True))
                           for variable in functions.optimizer_state)
    values = _checked_arrays(checkpoint, "optimizer variable", stored, expected)
    for variable in functions.optimizer_state:
        variable.set_value(values[variable.name])

    restore_generator(shuffle_rng, checkpoint.state["shuffle_rng"])
    dropout_generator = functions.dropout_rng.get_value()
    restore_generator(dropout_generator, checkpoint.state["dropout_rng"])
    functions.dropout_rng.set_value(dropout_generator)

    order = checkpoint.epoch_order
    n_batches = -(-n_train // batch_size)
    if order is not None and not np.array_equal(np.sort(order), np.arange(n_train)):
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r}: its epoch order is not a "
                              f"permutation of the {n_train} training reviews; delete it to "
                              "start the run over without --resume")
    if not 0 <= checkpoint.state["batch_position"] <= n_batches:
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r}: batch_position "
                              f"{checkpoint.state['batch_position']} is outside 0..{n_batches}; "
                              "delete it to start the run over without --resume")
    state.epoch = checkpoint.state["epoch"]
    state.n_updates = checkpoint.state["n_updates"]
    state.batch_position = checkpoint.state["batch_position"]
    state.epoch_order = order
    state.bad_counter = checkpoint.state["bad_counter"]
    state.history_errs = [list(row) for row in checkpoint.history_errs]
    state.history_updates = list(checkpoint.history_updates)
    state.checkpoint_update = state.n_updates


def _spawn_seeds(seed):
    """Derive independent seeds for the data split, initialisation, shuffling and dropout."""
    return np.random.SeedSequence(seed).spawn(4)


def load_splits(options):
    """Load the train, valid and test sets exactly as ``train_lstm`` does.

    The valid split and the ``test_size`` subset depend only on ``seed``, so the
    options saved in a model file give back the sets it was evaluated on.
    Sets ``options["ydim"]``, ``options["dataset_file"]`` and
    ``options["dictionary"]``.
    """
    from lstm_tutorial.data import load_data
    from lstm_tutorial.datasets import resolve_dataset

    rng = np.random.default_rng(_spawn_seeds(options["seed"])[0])
    path = resolve_dataset(options["dataset"], options.get("data_dir"))
    options["dataset_file"] = str(Path(path).resolve())
    train, valid, test = load_data(path=path, n_words=options["n_words"],
                                   valid_portion=options["valid_portion"],
                                   maxlen=options["maxlen"], rng=rng)
    if not train[0]:
        raise ValueError(
            f"maxlen={options['maxlen']!r} leaves no training review (only reviews with fewer "
            "than maxlen tokens are kept); raise maxlen or pass 0 to keep every review"
        )
    if not valid[0]:
        raise ValueError(
            f"only {len(train[0])} training reviews are left, too few to hold out a validation "
            f"set with valid_portion={options['valid_portion']}; raise maxlen or valid_portion"
        )
    if options["test_size"] > 0:
        # A random subset, sorted by length again so evaluation batches stay small.
        subset = rng.permutation(len(test[0]))[: options["test_size"]]
        subset = sorted(subset, key=lambda index: (len(test[0][index]), index))
        test = ([test[0][n] for n in subset], [test[1][n] for n in subset])

    _set_labels(options, path, train, valid, test)
    _record_dictionary(options, path)
    logger.info("data dataset=%s train=%d valid=%d test=%d ydim=%d n_words=%d maxlen=%s",
                options["dataset"], len(train[0]), len(valid[0]), len(test[0]),
                options["ydim"], options["n_words"], options["maxlen"])
    return train, valid, test


def _set_labels(options, path, train, valid, test):
    """Set ``ydim`` and the label names, rejecting labels a classifier cannot learn."""
    labels = np.asarray(train[1] + valid[1] + test[1], dtype="int64")
    if labels.size and labels.min() < 0:
        raise DataError(f"dataset {options['dataset']!r} contains the negative label "
                        f"{int(labels.min())}; labels must be 0 .. ydim - 1")
    options["ydim"] = int(max(train[1] + valid[1])) + 1
    from lstm_tutorial.datasets import dataset_labels

    # Label names saved by preprocessing (index = id); the model gets one
    # column per name even when maxlen drops every example of a class.
    options["labels"] = dataset_labels(path)
    if options["labels"]:
        options["ydim"] = max(options["ydim"], len(options["labels"]))
    if test[1] and max(test[1]) >= options["ydim"]:
        raise DataError(
            f"dataset {options['dataset']!r}: the test set contains label {max(test[1])}, which "
            f"never occurs in training (labels 0 .. {options['ydim'] - 1}); every class needs "
            "training examples"
        )
    if options["ydim"] < 2:
        raise DataError(f"dataset {options['dataset']!r} has a single class; a classifier "
                        "needs at least two")


def _record_dictionary(options, path):
    """Record the dataset's dictionary and its digest, so prediction finds the same one."""
    from lstm_tutorial.datasets import dictionary_path

    dictionary = dictionary_path(path)
    options["dictionary"] = str(dictionary.resolve()) if dictionary else None
    # The digest lets prediction reject a dictionary from another dataset.
    options["dictionary_sha256"] = None
    if dictionary:
        from lstm_tutorial.vocabulary import dictionary_sha256, load_dictionary

        options["dictionary_sha256"] = dictionary_sha256(load_dictionary(dictionary))


class LazyFunction:
    """A compiled function that is built by ``build()`` on its first call."""

    def __init__(self, build):
        self._build = build
        self._function = None

    def __call__(self, *args):
        if self._function is None:
            start = time.perf_counter()
            self._function = self._build()
            logger.info("compile function=%s seconds=%.1f", self._function.name,
                        time.perf_counter() - start)
        return self._function(*args)


@dataclass
class CompiledModel:
    """Shared parameters and the compiled functions of one training run."""

    tparams: OrderedDict
    f_pred_prob: object
    f_grad_shared: object
    f_update: object
    dropout_rng: object
    compile_seconds: float
    # Shared variables of the optimizer's running averages (its ``state``).
    optimizer_state: list = field(default_factory=list)

    def f_pred(self, x, mask):
        """Return the most probable class of each example."""
        return self.f_pred_prob(x, mask).argmax(axis=1)


def _single_blas_thread():
    """Limit BLAS to one thread when threadpoolctl is installed, else change nothing.

    The eight 128 x 128 SVDs of the initial weights gain nothing from threads,
    and on two busy cores a two-thread OpenBLAS pool made them take 9 s
    instead of well under one.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _build_functions(options, init_rng, dropout_seed, reload=True):
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.random import shared_rng

    from lstm_tutorial.model import build_model, init_params, init_tparams
    from lstm_tutorial.modelio import load_params
    from lstm_tutorial.modes import compile_mode
    from lstm_tutorial.optimizers import OPTIMIZERS, RowGradient

    with _single_blas_thread():
        params = init_params(options, init_rng)
    if options["reload_model"] and reload:
        load_params(options["reload_model"], params)
        logger.info("reloaded model=%s", options["reload_model"])
    tparams = init_tparams(params)
    dropout_rng = shared_rng(seed=dropout_seed, name="dropout_rng")
    model = build_model(tparams, options, dropout_rng)

    compile_start = time.perf_counter()
    jax = options["mode"] == "JAX"
    if jax:
        from lstm_tutorial import jax_mode

        # Functions of (x, mask, ...) compile at their first call for each padded length.
        mode = jax_mode.compile_mode(options["maxlen"])
    else:
        mode = compile_mode(options["mode"])
    # Compiled at the first validation, so that the first update comes sooner.
    f_pred_prob = LazyFunction(lambda: pytensor.function(
        [model.x, model.mask], model.pred_prob, name="f_pred_prob", mode=mode))
    # The embedding's gradient is taken by rows (those of the batch's words),
    # so that the optimizers need not touch the whole (n_words, dim_proj) matrix.
    wrt = [model.embedding_rows if name == "Wemb" else p for name, p in tparams.items()]
    grads = [RowGradient(model.word_ids, g) if name == "Wemb" else g
             for name, g in zip(tparams, pytensor.grad(model.cost, wrt=wrt))]
    lr = pt.scalar(name="lr", dtype=pytensor.config.floatX)
    # The fused optimizers apply the step inside f_grad_shared: one compiled
    # function and one call per update instead of two. Their Numba Ops have no
    # JAX implementation, so JAX takes the two functions of graph arithmetic.
    optimizer = OPTIMIZERS[options["optimizer"]](
        lr, tparams, grads, model.x, model.mask, model.y, model.cost,
        updates=model.updates, mode=mode, fused=not jax)
    f_grad_shared, f_update = optimizer
    compile_seconds = time.perf_counter() - compile_start
    logger.info("compile mode=%s floatX=%s lstm_impl=%s seconds=%.1f", options["mode"],
                pytensor.config.floatX, options["lstm_impl"], compile_seconds)
    return CompiledModel(tparams, f_pred_prob, f_grad_shared, f_update, dropout_rng,
                         compile_seconds, list(optimizer.state))


def _epoch_batches(order, batch_size):
    """Cut an epoch's order of reviews into minibatches, the last one smaller."""
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _train_loop(options, functions, train, prepare, evaluate, shuffle_rng, state, stop,
                write_checkpoint):
    from lstm_tutorial.progress import Progress

    lrate = np.asarray(options["lrate"], dtype=functions.tparams["U"].dtype)
    first_update = True
    while state.epoch < options["max_epochs"] and not state.stopped_early:
        # Shuffle the training set, unless a resumed epoch already has its order.
        epoch_start = time.perf_counter()
        if state.epoch_order is None:
            state.epoch_order = shuffle_rng.permutation(len(train[0]))
            state.batch_position = 0
        batches = _epoch_batches(state.epoch_order, options["batch_size"])
        n_samples = 0
        disp_start, disp_updates = time.perf_counter(), 0
        with Progress(len(batches) - state.batch_position, f"epoch {state.epoch}", "updates",
                      logger, log_interval=30.0) as progress:
            for train_index in batches[state.batch_position:]:
                # Update.
                x, mask, y = prepare([train[0][t] for t in train_index],
                                     [train[1][t] for t in train_index])
                cost = float(functions.f_grad_shared(x, mask, y))
                functions.f_update(lrate)
                state.n_updates += 1
                state.batch_position += 1
                if first_update:
                    # NUMBA and JAX compile the graph on its first call.
                    logger.info("first_update seconds=%.1f", time.perf_counter() - epoch_start)
                    first_update = False
                n_samples += x.shape[1]
                disp_updates += 1
                progress.update()

                # Guard against divergence before anything is saved.
                if not math.isfinite(cost):
                    raise TrainingDivergedError(
                        f"cost is {cost} at update {state.n_updates} (epoch {state.epoch}); "
                        f"the saved model {options['saveto']!r} and its checkpoint were left "
                        "as they were. Lower lrate or try another optimizer"
                    )

                # Display.
                if state.n_updates % options["dispFreq"] == 0:
                    elapsed = time.perf_counter() - disp_start
                    logger.info("epoch=%d update=%d cost=%.4f ms/update=%.1f", state.epoch,
                                state.n_updates, cost, 1000.0 * elapsed / disp_updates)
                    disp_start, disp_updates = time.perf_counter(), 0

                # Validate and decide on early stopping.
                if state.n_updates % options["validFreq"] == 0:
                    _validate(options, functions, evaluate, state)
                    if state.stopped_early:
                        logger.info("early stop update=%d bad_counter=%d", state.n_updates,
                                    state.bad_counter)
                        break

                # Save a checkpoint and the best parameters so far. NOTE: the
                # original saved before validating; saving after it lets a
                # checkpoint cover the whole update, validation included.
                if options["saveto"] and state.n_updates % options["saveFreq"] == 0:
                    write_checkpoint()
                    _save(options, functions, state)
                    logger.info("saved model=%s update=%d", options["saveto"], state.n_updates)

                # Stop after this update on Ctrl-C or SIGTERM.
                if stop.requested:
                    break

        # Finish the epoch when its last minibatch is done.
        if state.batch_position == len(batches):
            state.epoch += 1
            state.epoch_order = None
            state.batch_position = 0
            logger.info("epoch=%d samples=%d seconds=%.2f", state.epoch - 1, n_samples,
                        time.perf_counter() - epoch_start)
        if stop.requested and not state.stopped_early:
            state.interrupted, state.stop_signal = True, stop.signum
            if options["saveto"] and state.checkpoint_update != state.n_updates:
                write_checkpoint()
            break


def _validate(options, functions, evaluate, state):
    train_err, valid_err, test_err = evaluate()
    state.history_errs.append([valid_err, test_err])
    state.history_updates.append(state.n_updates)
    best = state.best_p is None or valid_err <= min(row[0] for row in state.history_errs)
    if best:
        state.best_p = unzip(functions.tparams)
        state.bad_counter = 0
    state.bad_counter, state.stopped_early = should_stop_early(
        state.history_errs, state.bad_counter, options["patience"])
    logger.info("validation=%d update=%d train_err=%.4f valid_err=%.4f test_err=%.4f best=%s "
                "bad_counter=%d", len(state.history_errs), state.n_updates, train_err,
                valid_err, test_err, "yes" if best else "no", state.bad_counter)


def _require_finite(params, options, state):
    for name, value in params.items():
        if not np.isfinite(value).all():
            raise TrainingDivergedError(
                f"parameter {name!r} contains NaN or infinite values at update {state.n_updates}; "
                f"the saved model {options['saveto']!r} and its checkpoint were left as they "
                "were. Lower lrate or try another optimizer")


def _save(options, functions, state, **errors):
    from lstm_tutorial.modelio import save_model

    params = state.best_p if state.best_p is not None else unzip(functions.tparams)
    _require_finite(params, options, state)
    saved_options = {name: value for name, value in options.items()}
    save_model(options["saveto"], params, state.history_errs, saved_options,
               history_updates=np.asarray(state.history_updates, dtype="int64"),
               **errors)

