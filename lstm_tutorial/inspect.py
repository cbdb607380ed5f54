"""Show what a saved model contains, and plot its learning curves.

Usage::

    python -m lstm_tutorial.inspect lstm_model.npz [--json] [--plot curves.png]

It prints the training options, the final train, valid and test errors, the
validations (``history_errs`` with the update of each) and every parameter's
shape and dtype. It reads models written by this project and by the original
tutorial, whose files hold the parameters, ``history_errs`` and the errors but
no options. Exit status: 0 on success, 1 when the file is missing or is not a
model, 2 on a usage error (argparse).

This module shares its name with the standard library's ``inspect``. The
package uses absolute imports only, so ``import inspect`` elsewhere still gets
the standard library; do not run this file as a script by its path.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from lstm_tutorial.cli import exit_status_of
from lstm_tutorial.fileio import DataError, atomic_write
from lstm_tutorial.model import PARAM_NAMES
from lstm_tutorial.modelio import OPTIONS_KEY, model_options, open_model

logger = logging.getLogger(__name__)

EXIT_ERROR = 1
ERROR_NAMES = ("train_err", "valid_err", "test_err")
PLOT_FORMATS = (".png", ".svg", ".pdf")
PLOT_INSTALL_HINT = ("plotting needs matplotlib, an optional extra; install it with "
                     "pip install 'lstm-tutorial[plot]' (or pip install matplotlib)")


def _history_updates(arrays, options, n_validations, valid_freq):
    """Return the update number of each validation and where it came from."""
    if "history_updates" in arrays:
        updates = np.asarray(arrays["history_updates"]).reshape(-1)
        if len(updates) == n_validations:
            return [int(update) for update in updates], "recorded"
        logger.warning("history_updates has %d entries for %d validations; ignoring it",
                       len(updates), n_validations)
    valid_freq = valid_freq or (options or {}).get("validFreq")
    if valid_freq:
        # A validation runs whenever the update count is a multiple of validFreq.
        return [int(valid_freq) * (index + 1) for index in range(n_validations)], "validFreq"
    return [None] * n_validations, "unknown"


def summarize_model(path, valid_freq=None):
    """Describe a model file as a JSON-ready dict.

    Parameters
    ----------
    path : str or Path
    valid_freq : int, optional
        ``validFreq`` of the training run, to number the updates of an
        original-layout file that records neither updates nor options.

    Returns
    -------
    dict
        ``file``, ``layout`` (``lstm_tutorial`` or ``original``), ``options``
        (None for the original layout), ``errors`` (``train_err``,
        ``valid_err``, ``test_err``; None when the file was saved during
        training), ``n_validations``, ``best_validation`` (the last validation
        with the lowest valid error, which training keeps as the best, or None),
        ``updates_source`` (``recorded``, ``validFreq`` or ``unknown``),
        ``history`` (one dict per validation: ``validation`` from 1,
        ``update``, ``valid_err``, ``test_err``) and ``params`` (name to
        ``shape`` and ``dtype``) with ``n_params`` in total.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    DataError
        When the file is not an ``.npz`` model.
    """
    arrays = open_model(path)
    if "state_json" in arrays:
        raise DataError(
            f"{str(path)!r} is a training checkpoint, not a model; continue the run with "
            "'python -m lstm_tutorial.train --resume' and the same --saveto, then inspect "
            "the model it saves"
        )
    missing = [name for name in PARAM_NAMES if name not in arrays]
    if missing or "history_errs" not in arrays:
        absent = missing + ([] if "history_errs" in arrays else ["history_errs"])
        raise DataError(
            f"{str(path)!r} is not an LSTM model: {', '.join(absent)} missing (it contains "
            f"{', '.join(sorted(arrays)) or 'no arrays'})"
        )
    options = model_options(arrays)

    history_errs = np.asarray(arrays["history_errs"], dtype="float64")
    if history_errs.size == 0:
        history_errs = history_errs.reshape(0, 2)
    if history_errs.ndim != 2 or history_errs.shape[1] != 2:
        raise DataError(f"{str(path)!r}: history_errs has shape {history_errs.shape}; "
                        "expected one [valid_err, test_err] row per validation")
    n_validations = len(history_errs)
    updates, updates_source = _history_updates(arrays, options, n_validations, valid_freq)
    history = [{"validation": index + 1, "update": update,
                "valid_err": float(valid_err), "test_err": float(test_err)}
               for index, (update, (valid_err, test_err))
               in enumerate(zip(updates, history_errs))]

    best = None
    if n_validations:
        valid_errs = history_errs[:, 0]
        best_index = int(np.flatnonzero(valid_errs == valid_errs.min())[-1])
        best = history[best_index]

    errors = None
    if all(name in arrays for name in ERROR_NAMES):
        errors = {name: float(arrays[name]) for name in ERROR_NAMES}
    params = {name: {"shape": list(value.shape), "dtype": str(value.dtype)}
              for name, value in arrays.items()
              if name in PARAM_NAMES}
    return {
        "file": str(path),
        "layout": "lstm_tutorial" if OPTIONS_KEY in arrays else "original",
        "options": options,
        "errors": errors,
        "n_validations": n_validations,
        "best_validation": best,
        "updates_source": updates_source,
        "history": history,
        "params": params,
        "n_params": int(sum(np.prod(arrays[name].shape) for name in params)),
    }


def format_summary(summary):
    """Return the summary as the text the command prints."""
    lines = [f"model: {summary['file']}"]
    if summary["layout"] == "original":
        lines.append("layout: the original tutorial's (no options stored)")
    else:
        lines.append("options:")
        width = max(map(len, summary["options"]), default=0)
        lines.extend(f"  {name:<{width}}  {value}"
                     for name, value in sorted(summary["options"].items()))

    errors = summary["errors"]
    if errors:
        lines.append("final errors (1 - accuracy): " + "  ".join(
            f"{name}={errors[name]:.4f}" for name in ERROR_NAMES))
    else:
        lines.append("final errors: not stored (the file was saved during training)")

    best = summary["best_validation"]
    lines.append(f"validations: {summary['n_validations']}")
    if best:
        lines.append(f"best validation: {best['validation']} (update {_update_text(best)}) "
                     f"valid_err={best['valid_err']:.4f} test_err={best['test_err']:.4f}")
    if summary["history"]:
        if summary["updates_source"] == "unknown":
            lines.append("updates: unknown (the file records neither updates nor validFreq; "
                         "pass --validFreq to number them)")
        elif summary["updates_source"] == "validFreq":
            lines.append("updates: derived as validation x validFreq")
        lines.append("history_errs:")
        lines.append(f"  {'validation':>10}  {'update':>8}  {'valid_err':>9}  {'test_err':>8}")
        for row in summary["history"]:
            marker = "  best" if best and row["validation"] == best["validation"] else ""
            lines.append(f"  {row['validation']:>10}  {_update_text(row):>8}  "
                         f"{row['valid_err']:>9.4f}  {row['test_err']:>8.4f}{marker}")

    lines.append(f"parameters: {summary['n_params']} values")
    for name, info in summary["params"].items():
        shape = " x ".join(map(str, info["shape"])) or "scalar"
        lines.append(f"  {name:<7} {shape:<14} {info['dtype']}")
    return "\n".join(lines)


def _update_text(row):
    return "unknown" if row["update"] is None else str(row["update"])


def plot_history(summary, output):
    """Draw valid and test error against updates into an image file.

    The best validation is marked. Without update numbers the x axis is the
    validation number.

    Parameters
    ----------
    summary : dict
        As returned by :func:`summarize_model`.
    output : str or Path
        ``.png``, ``.svg`` or ``.pdf`` file to write.

    Raises
    ------
    ImportError
        When matplotlib is not installed; the message explains how to install it.
    ValueError
        For another file type, or a model with no validation to plot.
    """
    output = Path(output)
    if output.suffix.lower() not in PLOT_FORMATS:
        raise ValueError(f"plot file {str(output)!r} must end in {', '.join(PLOT_FORMATS)}")
    if not summary["history"]:
        raise ValueError(f"model {summary['file']!r} has no validations (empty history_errs), "
                         "so there is no learning curve to plot")
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(PLOT_INSTALL_HINT) from error

    history = summary["history"]
    by_update = summary["updates_source"] != "unknown"
    x_values = [row["update"] if by_update else row["validation"] for row in history]
    best = summary["best_validation"]
    best_x = best["update"] if by_update else best["validation"]

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(x_values, [row["valid_err"] for row in history], marker="o", markersize=3,
              label="valid error")
    axes.plot(x_values, [row["test_err"] for row in history], marker="s", markersize=3,
              label="test error")
    axes.scatter([best_x], [best["valid_err"]], s=120, facecolors="none", edgecolors="black",
                 linewidths=1.5, zorder=3,
                 label=f"best validation ({best['validation']}): valid {best['valid_err']:.4f}"
                       f", test {best['test_err']:.4f}")
    axes.axvline(best_x, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("update (minibatches trained)" if by_update
                    else "validation number (updates unknown)")
    axes.set_ylabel("error rate (1 - accuracy)")
    axes.set_title(f"Learning curves of {Path(summary['file']).name}")
    axes.grid(True, alpha=0.3)
    axes.legend()
    output.parent.mkdir(parents=True, exist_ok=True)
    # Written through a temporary file, so a failed save keeps an older plot.
    with atomic_write(output) as handle:
        figure.savefig(handle, format=output.suffix.lower().lstrip("."))
    return output


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m lstm_tutorial.inspect",
        description="Show a saved model's options, errors, validations and parameters, "
                    "and optionally plot its learning curves.",
    )
    parser.add_argument("model", help="model file (.npz) written by lstm_tutorial or by the "
                                      "original tutorial")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--plot", metavar="FILE",
                        help="write the valid and test error curves to FILE (.png, .svg or "
                             ".pdf); needs matplotlib")
    parser.add_argument("--validFreq", "--valid-freq", dest="valid_freq", type=int,
                        help="updates between validations, to number the updates of a model "
                             "that does not record them (original-layout files)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    if args.valid_freq is not None and args.valid_freq < 1:
        print(f"error: --validFreq={args.valid_freq} is invalid; it must be at least 1 update",
              file=sys.stderr)
        return EXIT_ERROR
    try:
        summary = summarize_model(args.model, valid_freq=args.valid_freq)
        if args.plot:
            plot_history(summary, args.plot)
    except (OSError, ValueError, ImportError) as error:
        # DataError is a ValueError; one line naming the file and the problem.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    if args.plot:
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(exit_status_of(main))
