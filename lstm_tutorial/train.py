"""Command line: ``python -m lstm_tutorial.train [--flag value ...]``.

Every keyword of :func:`lstm_tutorial.train_lstm` is a flag, with its help
text and default taken from the function. Exit status: 0 after a complete
run, 1 on an error, 2 for an invalid flag (argparse), and 128 plus the signal
number when Ctrl-C (130) or SIGTERM (143) ended training early. After the
first such signal the model is still evaluated and saved and a checkpoint is
kept for ``--resume``; a second one exits at once with the same status.
"""

import argparse
import json
import logging
import signal
import sys

from lstm_tutorial.cli import add_function_arguments, configure_logging
from lstm_tutorial.fileio import DataError

logger = logging.getLogger("lstm_tutorial.train")

EXIT_ERROR = 1
# Shells report a process ended by signal N as 128 + N.
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


def build_parser():
    from lstm_tutorial.optimizers import OPTIMIZERS
    from lstm_tutorial.training import FLOAT_TYPES, LSTM_IMPLS, MODES, train_lstm

    parser = argparse.ArgumentParser(
        prog="python -m lstm_tutorial.train",
        # A short usage line: an error should not be buried under every flag.
        usage="%(prog)s [--dataset PATH] [--max_epochs N] [options] (see --help)",
        description="Train the tutorial's LSTM sentiment classifier and save it as an .npz "
                    "model. Flags keep the tutorial's spelling (--dim_proj, --validFreq); "
                    "kebab case (--dim-proj) works too.",
    )
    add_function_arguments(parser, train_lstm, choices={
        "optimizer": sorted(OPTIMIZERS), "mode": list(MODES), "floatX": list(FLOAT_TYPES),
        "encoder": ["lstm"], "lstm_impl": list(LSTM_IMPLS),
    })
    parser.add_argument("--verbose", action="store_true", help="log debug messages too")
    return parser


def _find_abort(error):
    """Return the KeyboardInterrupt behind ``error``, or None.

    A signal handler that raises while Numba-compiled code runs reaches the
    caller as a SystemError whose cause is the handler's exception.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def main(argv=None):
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    configure_logging(args.pop("verbose"))

    from lstm_tutorial.jax_mode import JaxUnavailableError
    from lstm_tutorial.training import TrainingDivergedError, train_lstm

    try:
        result = train_lstm(**args)
    except TrainingDivergedError as error:
        logger.error("error: training diverged: %s", error)
        return EXIT_ERROR
    except JaxUnavailableError as error:
        logger.error("error: %s", error)
        return EXIT_ERROR
    except (ValueError, OSError, DataError) as error:
        # Some errors (tarfile's) span several lines; keep the message on one.
        logger.error("error: %s", " ".join(str(error).split()))
        return EXIT_ERROR
    except (KeyboardInterrupt, SystemError) as error:
        abort = _find_abort(error)
        if abort is None:
            raise
        signum = getattr(abort, "signum", signal.SIGINT)
        logger.error("error: stopped at once by %s; every file on disk is complete, because "
                     "an interrupted write leaves the previous version", signal.Signals(signum).name)
        return 128 + signum
    train_err, valid_err, test_err = result
    print(json.dumps({"train_err": train_err, "valid_err": valid_err, "test_err": test_err}))
    if getattr(result, "interrupted", False):
        return 128 + (getattr(result, "stop_signal", None) or signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
