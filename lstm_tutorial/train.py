"""Command line: ``python -m lstm_tutorial.train [--flag value ...]``.

Every keyword of :func:`lstm_tutorial.train_lstm` is a flag, with its help
text and default taken from the function. Exit status: 0 after a complete
run, 1 on an error, 130 when Ctrl-C ended training early (the model is still
evaluated and saved).
"""

import argparse
import json
import logging
import sys

from lstm_tutorial.cli import add_function_arguments, configure_logging
from lstm_tutorial.fileio import DataError

logger = logging.getLogger("lstm_tutorial.train")

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def build_parser():
    from lstm_tutorial.optimizers import OPTIMIZERS
    from lstm_tutorial.training import FLOAT_TYPES, LSTM_IMPLS, MODES, train_lstm

    parser = argparse.ArgumentParser(
        prog="python -m lstm_tutorial.train",
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


def main(argv=None):
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    configure_logging(args.pop("verbose"))

    from lstm_tutorial.training import TrainingDivergedError, train_lstm

    try:
        result = train_lstm(**args)
    except TrainingDivergedError as error:
        logger.error("error: training diverged: %s", error)
        return EXIT_ERROR
    except (ValueError, OSError, DataError) as error:
        logger.error("error: %s", error)
        return EXIT_ERROR
    train_err, valid_err, test_err = result
    print(json.dumps({"train_err": train_err, "valid_err": valid_err, "test_err": test_err}))
    return EXIT_INTERRUPTED if getattr(result, "interrupted", False) else 0


if __name__ == "__main__":
    sys.exit(main())
