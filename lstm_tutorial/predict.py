"""Command line: classify texts with a saved model.

Usage::

    python -m lstm_tutorial.predict --model lstm_model.npz "A wonderful film." ...
    python -m lstm_tutorial.predict --model lstm_model.npz --file reviews.txt --json
    cat reviews.txt | python -m lstm_tutorial.predict --model lstm_model.npz

Texts come from the arguments, else from ``--file`` (one text per line), else
from standard input (one text per line). For each text it prints the predicted
label and the probability of every class; ``--json`` prints one JSON object per
line instead. Exit status: 0 on success, 1 when the model, the dictionary or
the input cannot be used, 2 on a usage error (argparse).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from lstm_tutorial.cli import configure_logging, exit_status_of
from lstm_tutorial.fileio import DataError

logger = logging.getLogger("lstm_tutorial.predict")

EXIT_ERROR = 1
PREVIEW_CHARS = 60


def build_parser():
    from lstm_tutorial.prediction import MODES

    parser = argparse.ArgumentParser(
        prog="python -m lstm_tutorial.predict",
        description="Classify texts with a saved LSTM model. Texts are tokenized and mapped "
                    "to word ids exactly as the model's training data was.",
    )
    parser.add_argument("texts", nargs="*", help="texts to classify; when none are given, "
                                                 "read --file or standard input")
    parser.add_argument("--model", default="lstm_model.npz",
                        help="model file (.npz) (default: lstm_model.npz)")
    parser.add_argument("--dict", dest="dictionary",
                        help="dictionary <name>.dict.pkl of the training data (default: the one "
                             "the model recorded; required for original-layout models)")
    parser.add_argument("--file", help="read texts from this file, one per line ('-' for "
                                       "standard input)")
    parser.add_argument("--encoding", default="utf-8",
                        help="encoding of --file or standard input (default: utf-8)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per text (JSON lines)")
    parser.add_argument("--mode", choices=MODES,
                        help="PyTensor compile mode (default: VM, ready in about a second)")
    parser.add_argument("--use_dropout", "--use-dropout", dest="use_dropout", default=None,
                        action=argparse.BooleanOptionalAction,
                        help="whether the model was trained with dropout (default: from the "
                             "model's options; True for models without options)")
    parser.add_argument("--verbose", action="store_true", help="log progress and debug messages")
    return parser


def read_texts(args):
    """Return the texts to classify: arguments, else the lines of --file or stdin."""
    if args.texts:
        if args.file:
            raise ValueError("pass texts as arguments or with --file, not both")
        return list(args.texts)
    if args.file and args.file != "-":
        path = Path(args.file)
        if not path.is_file():
            raise FileNotFoundError(f"text file {args.file!r} not found; check the path")
        name, data = args.file, path.read_bytes()
    else:
        if sys.stdin.isatty():
            logger.warning("reading texts from standard input, one per line; end with Ctrl-D")
        name, data = "standard input", sys.stdin.buffer.read()
    try:
        content = data.decode(args.encoding)
    except UnicodeDecodeError as error:
        raise DataError(f"{name} is not valid {args.encoding} (byte offset {error.start}); "
                        "pass its encoding with --encoding, for example --encoding latin-1"
                        ) from error
    except LookupError as error:
        raise ValueError(f"--encoding {args.encoding!r} is not a known codec; use a name "
                         "such as utf-8 or latin-1") from error
    # A UTF-8 byte-order mark is not part of the first text.
    return content.removeprefix("\ufeff").splitlines()


def format_result(result):
    """Return one line of text for one classified text."""
    text = result["text"].replace("\n", " ")
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 3] + "..."
    probabilities = " ".join(f"{label}={p:.4f}" for label, p in result["probabilities"].items())
    line = f"{result['label']}\t{probabilities}\t{text}"
    for note in result["notes"]:
        line += f"\t(note: {note})"
    return line


def main(argv=None):
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    if not args.verbose:
        logging.getLogger("lstm_tutorial").setLevel(logging.WARNING)

    from lstm_tutorial.jax_mode import JaxUnavailableError
    from lstm_tutorial.prediction import load_model

    try:
        texts = read_texts(args)
        model = load_model(args.model, args.dictionary, mode=args.mode,
                           use_dropout=args.use_dropout)
        results = model.classify(texts)
    except JaxUnavailableError as error:
        # The message names the mode and the install command.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except ImportError as error:
        print(f"error: {error}; mode {args.mode} needs an optional package, for JAX "
              "pip install 'jax' (or the project's [jax] extra)", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as error:
        # DataError is a ValueError; print one line naming the file and the problem.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    for result in results:
        print(json.dumps(result) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(exit_status_of(main))
