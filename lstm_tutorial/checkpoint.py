"""Checkpoints that let an interrupted training run continue where it stopped.

A checkpoint is a plain ``.npz`` file next to the model, named
``<saveto>.ckpt.npz`` (``lstm_model.npz.ckpt.npz`` for the default model), and
loads without pickle. It holds:

- ``param/<name>``: the current parameters (``Wemb``, ``lstm_W``, ...);
- ``best_p/<name>``: the best parameters so far, when a validation has run;
- ``optimizer/<index>``: the optimizer's running averages, in the order of
  the optimizer's ``state`` list (their names are in the JSON below);
- ``history_errs`` and ``history_updates``;
- ``epoch_order``: the shuffled order of the training reviews in the current
  epoch; the epoch's minibatches are consecutive slices of it;
- ``state_json``: a JSON string with the format version, the counters
  (``epoch``, ``n_updates``, ``batch_position``: minibatches of the epoch
  already done, ``bad_counter``), the states of the shuffling and dropout
  random generators (``numpy.random.Generator.bit_generator.state``), the
  training options and a fingerprint of the loaded data.

The training loop writes one every ``saveFreq`` updates and when a signal
stops it, always between two updates, and deletes it when the run finishes.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_tutorial.fileio import DataError, atomic_write

logger = logging.getLogger(__name__)

CHECKPOINT_SUFFIX = ".ckpt.npz"
FORMAT_VERSION = 1
STATE_KEY = "state_json"

# Options that may change between an interrupted run and its resumption: they
# change what is displayed or saved, or how long the run lasts, but not the
# results of the updates already done. Every other option must match.
RESUMABLE_CHANGES = frozenset({
    "resume", "reload_model", "dispFreq", "saveFreq", "max_epochs", "saveto",
    # The data is compared by its fingerprint, so the same reviews may be
    # reached through another name or folder.
    "dataset", "dataset_file", "data_dir", "dictionary",
})


class CheckpointError(DataError):
    """A checkpoint that cannot be read, or that does not fit the current run."""


def checkpoint_path(saveto):
    """Return the checkpoint path of the model path ``saveto``."""
    saveto = Path(saveto)
    return saveto.with_name(saveto.name + CHECKPOINT_SUFFIX)


def generator_state(generator):
    """Return the JSON-ready state of a ``numpy.random.Generator``."""
    return generator.bit_generator.state


def restore_generator(generator, state):
    """Set ``generator`` to a state returned by :func:`generator_state`.

    Raises
    ------
    ValueError
        When the state belongs to another kind of bit generator.
    """
    if state.get("bit_generator") != type(generator.bit_generator).__name__:
        raise ValueError(
            f"random generator state of {state.get('bit_generator')!r} cannot restore a "
            f"{type(generator.bit_generator).__name__} generator"
        )
    generator.bit_generator.state = state
    return generator


# Bit generators whose state a checkpoint may restore.
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def _check_generator_state(state):
    """Raise unless ``state`` can be set on a bit generator of the kind it names."""
    name = state.get("bit_generator")
    if name not in BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {name!r}")
    getattr(np.random, name)().state = state


def data_fingerprint(*splits):
    """Return a SHA-256 of the reviews and labels of ``splits``, in order.

    Two runs get the same fingerprint only when they train, validate and test
    on the same reviews, in the same order, with the same ids.
    """
    digest = hashlib.sha256()
    for seqs, labels in splits:
        digest.update(np.asarray([len(seq) for seq in seqs], dtype="int64").tobytes())
        for seq in seqs:
            digest.update(np.asarray(seq, dtype="int64").tobytes())
        digest.update(np.asarray(labels, dtype="int64").tobytes())
    return digest.hexdigest()


@dataclass
class Checkpoint:
    """The contents of a checkpoint file, as loaded by :func:`load_checkpoint`."""

    path: Path
    params: dict
    best_p: dict
    optimizer_state: list
    history_errs: list
    history_updates: list
    epoch_order: np.ndarray
    state: dict

    @property
    def options(self):
        return self.state["options"]


def save_checkpoint(path, *, params, best_p, optimizer_state, history_errs, history_updates,
                    epoch_order, state):
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : str or Path
    params, best_p : dict of str to ndarray
        Current and best parameters; ``best_p`` may be None.
    optimizer_state : list of (str, ndarray)
        Name and value of each optimizer variable, in the optimizer's order.
    history_errs : list of [valid_err, test_err]
    history_updates : list of int
    epoch_order : ndarray of int or None
        Order of the training reviews in the current epoch; None between epochs.
    state : dict
        JSON-serialisable counters, generator states, options and fingerprint.
    """
    arrays = {f"param/{name}": np.asarray(value) for name, value in params.items()}
    if best_p is not None:
        arrays.update({f"best_p/{name}": np.asarray(value) for name, value in best_p.items()})
    for index, (_, value) in enumerate(optimizer_state):
        arrays[f"optimizer/{index}"] = np.asarray(value)
    arrays["history_errs"] = np.asarray(history_errs, dtype="float64").reshape(-1, 2)
    arrays["history_updates"] = np.asarray(history_updates, dtype="int64")
    arrays["epoch_order"] = np.asarray(epoch_order if epoch_order is not None else [],
                                       dtype="int64")
    state = dict(state, format=FORMAT_VERSION, has_epoch_order=epoch_order is not None,
                 optimizer_names=[name for name, _ in optimizer_state])
    arrays[STATE_KEY] = np.array(json.dumps(state, sort_keys=True))
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def _invalid(path, problem):
    return CheckpointError(
        f"checkpoint {str(path)!r} is invalid: {problem}; delete it to start the run over "
        "without --resume"
    )


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`, without pickle.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        When the file is not a complete checkpoint of this format.
    """
    from lstm_tutorial.modelio import open_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} not found, so there is no interrupted run to resume; "
            "run without --resume to start a new one"
        )
    try:
        arrays = open_model(path, kind="checkpoint",
                            hint="delete it to start the run over without --resume")
    except DataError as error:
        raise CheckpointError(str(error)) from error
    try:
        state = json.loads(str(arrays[STATE_KEY]))
    except KeyError:
        raise _invalid(path, f"it has no {STATE_KEY} entry") from None
    except (ValueError, TypeError) as error:
        raise _invalid(path, f"its {STATE_KEY} entry is not valid JSON ({error})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise _invalid(path, f"its format is {found!r}, expected {FORMAT_VERSION}")
    required = {"epoch": int, "n_updates": int, "batch_position": int, "bad_counter": int,
                "shuffle_rng": dict, "dropout_rng": dict, "options": dict,
                "data_fingerprint": str, "optimizer_names": list, "has_epoch_order": bool}
    for key, kind in required.items():
        if not isinstance(state.get(key), kind) or (kind is int and isinstance(state[key], bool)):
            raise _invalid(path, f"its state has no valid {key!r} ({kind.__name__})")
    for key in ("history_errs", "history_updates", "epoch_order"):
        if key not in arrays:
            raise _invalid(path, f"it has no {key!r} array")
    for key, value in arrays.items():
        if key != STATE_KEY and value.dtype.kind not in "biuf":
            raise _invalid(path, f"its array {key!r} has dtype {value.dtype}, not a number type")
    for key in ("shuffle_rng", "dropout_rng"):
        try:
            _check_generator_state(state[key])
        except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as error:
            raise _invalid(path, f"its {key} is not a random generator state ({error})") from error

    params = {name.split("/", 1)[1]: value for name, value in arrays.items()
              if name.startswith("param/")}
    best_p = {name.split("/", 1)[1]: value for name, value in arrays.items()
              if name.startswith("best_p/")}
    optimizer_state = []
    for index, name in enumerate(state["optimizer_names"]):
        key = f"optimizer/{index}"
        if key not in arrays:
            raise _invalid(path, f"it has no optimizer array {key!r} ({name})")
        optimizer_state.append((str(name), arrays[key]))
    history_errs = arrays["history_errs"]
    history_updates = arrays["history_updates"]
    if history_errs.ndim != 2 or history_errs.shape[1:] != (2,) or \
            history_updates.shape != (len(history_errs),):
        raise _invalid(path, f"history_errs {history_errs.shape} and history_updates "
                             f"{history_updates.shape} do not fit together")
    epoch_order = arrays["epoch_order"] if state["has_epoch_order"] else None
    return Checkpoint(path=path, params=params, best_p=best_p or None,
                      optimizer_state=optimizer_state,
                      history_errs=history_errs.astype("float64").tolist(),
                      history_updates=[int(update) for update in history_updates],
                      epoch_order=epoch_order, state=state)


def _json_equal(left, right):
    # Options went through JSON in the checkpoint; compare them the same way.
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


def check_resume_options(checkpoint, options):
    """Raise ``ValueError`` naming every option that differs from the checkpoint's."""
    saved = checkpoint.options
    differences = []
    for name in sorted(set(saved) | set(options)):
        if name in RESUMABLE_CHANGES or name in ("ydim",):
            continue
        if name not in saved or name not in options:
            continue
        if not _json_equal(saved[name], options[name]):
            differences.append(f"{name}={options[name]!r} (checkpoint: {saved[name]!r})")
    if differences:
        raise ValueError(
            f"cannot resume from {str(checkpoint.path)!r} with other options than its run: "
            f"{', '.join(differences)}; pass the checkpoint's values, or delete the checkpoint "
            "to start a new run"
        )


def check_resume_data(checkpoint, fingerprint):
    """Raise ``ValueError`` when the loaded data is not the checkpoint's."""
    if checkpoint.state["data_fingerprint"] != fingerprint:
        raise ValueError(
            f"cannot resume from {str(checkpoint.path)!r}: the dataset "
            f"{checkpoint.options.get('dataset')!r} now gives other training, validation or "
            "test reviews than when the checkpoint was written; resume with the same dataset "
            "file, or delete the checkpoint to start a new run"
        )
