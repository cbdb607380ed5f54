"""Command-line flags generated from a function's keyword arguments.

The flags of ``python -m lstm_tutorial.train`` come from the signature and the
numpydoc ``Parameters`` section of :func:`lstm_tutorial.train_lstm`, so help
text and defaults cannot drift from the function. Each keyword is accepted
in the tutorial's spelling (``--dim_proj``, ``--validFreq``) and in kebab case
(``--dim-proj``).
"""

import argparse
import inspect
import logging
import os
import re
import sys
import warnings

TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def parse_parameter_docs(function):
    """Return ``{name: (type_name, description)}`` from a numpydoc docstring."""
    doc = inspect.getdoc(function) or ""
    match = re.search(r"^Parameters\n-+\n(.*?)(?:\n\n[A-Z][a-z]+\n-+\n|\Z)", doc, re.S | re.M)
    if not match:
        return {}
    docs = {}
    name = None
    for line in match.group(1).splitlines():
        header = re.match(r"^(\w+) : (\w+)", line)
        if header:
            name = header.group(1)
            docs[name] = [header.group(2), []]
        elif name and line.strip():
            docs[name][1].append(line.strip())
    return {key: (type_name, " ".join(lines)) for key, (type_name, lines) in docs.items()}


def _optional(convert):
    def parse(text):
        if text.lower() in ("none", ""):
            return None
        return convert(text)
    parse.__name__ = convert.__name__
    return parse


def add_function_arguments(parser, function, choices=None):
    """Add one flag per keyword-only argument of ``function`` to ``parser``.

    Raises ``TypeError`` when a keyword has no documented type, so that an
    undocumented option fails the tests instead of reaching users.
    """
    choices = choices or {}
    docs = parse_parameter_docs(function)
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if name not in docs:
            raise TypeError(f"{function.__name__}: keyword {name!r} is not documented")
        type_name, description = docs[name]
        default = parameter.default
        flags = [f"--{name}"]
        if "_" in name:
            flags.append(f"--{name.replace('_', '-')}")
        help_text = f"{description} (default: {default})"
        if type_name == "bool":
            parser.add_argument(*flags, dest=name, default=default,
                                action=argparse.BooleanOptionalAction, help=help_text)
            continue
        convert = TYPES[type_name]
        if default is None or name == "maxlen":
            convert = _optional(convert)
        parser.add_argument(*flags, dest=name, type=convert, default=default,
                            choices=choices.get(name), metavar=type_name.upper()
                            if name not in choices else None, help=help_text)
    return parser


def exit_status_of(main):
    """Run a command's ``main`` and return its exit status.

    When standard output is a pipe that closes early (``... | head``), the
    rest of the output is dropped without a traceback and the status is
    128 + SIGPIPE, as for a program the shell's pipe stopped.
    """
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would flush stdout again at exit and fail once more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    return status


def configure_logging(verbose=False):
    """Send this package's log records and Python warnings to standard error."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    # PyTensor logs its configuration at INFO on import; keep its warnings only.
    logging.getLogger("pytensor").setLevel(logging.WARNING)
    # jax logs at INFO that it found no TPU on every start.
    logging.getLogger("jax").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
