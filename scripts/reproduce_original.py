"""Reproduce the original script's own run and print the final errors.

The tutorial's ``lstm.py``, run as a script, called
``train_lstm(max_epochs=100, test_size=500)`` with every other option at its
default. This does the same through the package, and passes any extra flags of
``python -m lstm_tutorial.train`` through, for example::

    python scripts/reproduce_original.py --dataset ../shared/data/aclImdb-labeled.tar.gz

Expect hours on a 2-core CPU: early stopping usually ends the run well before
100 epochs.
"""

import json
import sys

from lstm_tutorial.cli import configure_logging
from lstm_tutorial.train import build_parser
from lstm_tutorial.training import train_lstm


def main(argv=None):
    parser = build_parser()
    parser.set_defaults(max_epochs=100, test_size=500)
    args = vars(parser.parse_args(argv))
    configure_logging(args.pop("verbose"))
    train_err, valid_err, test_err = train_lstm(**args)
    print(json.dumps({"train_err": train_err, "valid_err": valid_err, "test_err": test_err}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
