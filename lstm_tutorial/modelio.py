"""Save and load models as plain ``.npz`` files with the options as JSON.

A model file contains one array per parameter (``Wemb``, ``lstm_W``, ``lstm_U``,
``lstm_b``, ``U``, ``b``), ``history_errs`` (one row ``[valid_err, test_err]``
per validation), after training ``train_err``, ``valid_err`` and
``test_err``, and ``options_json``: the resolved training options as a JSON
string. Everything loads with ``numpy.load(path)``, without ``allow_pickle``.
"""

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from lstm_tutorial.fileio import DataError, atomic_write

OPTIONS_KEY = "options_json"
# Every .npz file is a zip archive, whose first local header starts so.
ZIP_MAGIC = b"PK\x03\x04"


def save_model(path, params, history_errs, options, **extra):
    """Write a model file atomically.

    Parameters
    ----------
    path : str or Path
    params : dict of str to ndarray
    history_errs : list of [valid_err, test_err]
    options : dict
        JSON-serialisable training options.
    **extra : arrays
        More arrays to store, for example ``train_err``.
    """
    arrays = dict(params)
    arrays["history_errs"] = np.asarray(history_errs, dtype="float64").reshape(-1, 2)
    arrays[OPTIONS_KEY] = np.array(json.dumps(options, sort_keys=True))
    arrays.update({name: np.asarray(value) for name, value in extra.items()})
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def open_model(path, *, kind="model file",
               hint="pass a model written by lstm_tutorial or the original tutorial"):
    """Load every array of a model file into a dict, without pickle.

    ``kind`` names the file in messages and ``hint`` is the advice that
    follows an error. Checkpoints pass their own.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    DataError
        When the file is not an ``.npz`` archive or one of its arrays needs
        pickle to load.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} {str(path)!r} not found; check the path")
    try:
        with open(path, "rb") as handle:
            if handle.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
                raise DataError(f"{kind} {str(path)!r} is not an .npz file (it does not start "
                                f"like a zip archive); {hint}")
            handle.seek(0)
            # np.load gets an open file, so the file is closed even when it fails.
            with np.load(handle, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
    except DataError:
        raise
    except PermissionError as error:
        raise DataError(f"{kind} {str(path)!r} cannot be read ({error}); check its "
                        "permissions") from error
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise DataError(
                f"{kind} {str(path)!r} contains arrays that need pickle to load, which can "
                "run code; this project never writes such files. Use a model saved by "
                "lstm_tutorial or re-save the arrays without object dtypes"
            ) from error
        raise DataError(f"{kind} {str(path)!r} is not a valid .npz file ({error}); "
                        f"{hint}") from error
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, TypeError,
            NotImplementedError, RuntimeError, MemoryError, OverflowError) as error:
        raise DataError(f"{kind} {str(path)!r} is not a valid .npz file ({error}); "
                        f"{hint}") from error
    for name, value in arrays.items():
        # NpzFile returns the raw bytes of a member that is not an .npy array.
        if not isinstance(value, np.ndarray):
            raise DataError(f"{kind} {str(path)!r}: its entry {name!r} is not a NumPy array; "
                            f"{hint}")
    return arrays


def model_options(arrays):
    """Return the options stored in a model, or None for the original's layout."""
    if OPTIONS_KEY not in arrays:
        return None
    try:
        return json.loads(str(arrays[OPTIONS_KEY]))
    except (ValueError, TypeError) as error:
        raise DataError(f"the model's {OPTIONS_KEY} entry is not valid JSON: {error}") from error


def load_params(path, params):
    """Replace each array of ``params`` by the array of the same name in ``path``.

    Every name in ``params`` must be in the file, with the same shape.

    Raises
    ------
    DataError
        Naming the missing parameter, or the parameter and both shapes.
    """
    arrays = open_model(path)
    loaded = {}
    for name, value in params.items():
        if name not in arrays:
            raise DataError(
                f"model file {str(path)!r} has no parameter {name!r} "
                f"(it holds {', '.join(sorted(arrays))}); pass a model saved by this project"
            )
        stored = arrays[name]
        if stored.dtype.kind not in "biuf":
            raise DataError(
                f"parameter {name!r} in {str(path)!r} has dtype {stored.dtype}, not a number "
                "type; pass a model saved by this project"
            )
        if stored.shape != value.shape:
            raise DataError(
                f"parameter {name!r} in {str(path)!r} has shape {stored.shape}, but the "
                f"options give {value.shape}; train with the options of that model "
                "(dim_proj, n_words, and the dataset's number of classes) or drop reload_model"
            )
        loaded[name] = stored.astype(value.dtype)
    params.update(loaded)
    return params
