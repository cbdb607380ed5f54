"""Run ``python -m lstm_tutorial.train`` with test-only hooks that make faults hit on cue.

Usage::

    python tests/fault_runner.py [--slow-update SECONDS] [--started FILE]
        [--pause-checkpoint N --paused FILE [--pause-seconds S]] -- TRAIN FLAGS...

``--slow-update`` sleeps after every update, so that a signal sent by a test
lands in the middle of training. ``--started`` is a file created after the
first update. ``--pause-checkpoint N`` stops inside the N-th checkpoint write
of this process, after half of its first block of bytes reached the temporary
file: it creates ``--paused`` and sleeps ``--pause-seconds`` (default: a
day), so that a test can kill the process while the temporary file exists.
The hooks wrap library functions from the outside; the package has no test
switches.
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path


class _PausingHandle:
    """File proxy that pauses inside the first large write."""

    def __init__(self, handle, paused, pause_seconds):
        self._handle = handle
        self._paused = paused
        self._pause_seconds = pause_seconds
        self._done = False

    def write(self, data):
        if self._done or len(data) < 64:
            return self._handle.write(data)
        self._done = True
        half = len(data) // 2
        written = self._handle.write(data[:half])
        self._handle.flush()
        Path(self._paused).touch()
        time.sleep(self._pause_seconds)
        return written + self._handle.write(data[half:])

    def __getattr__(self, name):
        return getattr(self._handle, name)


def install_hooks(args):
    from lstm_tutorial import checkpoint, training

    if args.slow_update or args.started:
        build = training._build_functions

        def slow_build(*build_args, **build_kwargs):
            functions = build(*build_args, **build_kwargs)
            f_update = functions.f_update

            def slow_update(lrate):
                f_update(lrate)
                if args.started:
                    Path(args.started).touch()
                time.sleep(args.slow_update)

            functions.f_update = slow_update
            return functions

        training._build_functions = slow_build

    if args.pause_checkpoint:
        atomic_write = checkpoint.atomic_write
        count = {"writes": 0}

        @contextlib.contextmanager
        def pausing_write(path, mode="wb"):
            count["writes"] += 1
            with atomic_write(path, mode) as handle:
                if count["writes"] == args.pause_checkpoint:
                    yield _PausingHandle(handle, args.paused, args.pause_seconds)
                else:
                    yield handle

        checkpoint.atomic_write = pausing_write


def main():
    if "--" not in sys.argv:
        sys.exit("usage: fault_runner.py [hooks] -- TRAIN FLAGS")
    split = sys.argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-update", type=float, default=0.0)
    parser.add_argument("--started")
    parser.add_argument("--pause-checkpoint", type=int, default=0)
    parser.add_argument("--paused")
    parser.add_argument("--pause-seconds", type=float, default=86400.0)
    args = parser.parse_args(sys.argv[1:split])
    install_hooks(args)

    from lstm_tutorial.train import main as train_main

    sys.exit(train_main(sys.argv[split + 1:]))


if __name__ == "__main__":
    main()
