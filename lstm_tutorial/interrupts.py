"""Stop training cleanly on Ctrl-C (SIGINT) or SIGTERM.

The first signal only sets a flag: the training loop finishes the current
update, writes a checkpoint, evaluates and saves the model, and returns. A
second signal raises :class:`TrainingAborted` at once. Every file is written
atomically, so aborting in the middle of a save leaves the previous file.
"""

import logging
import signal
import threading

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingAborted(KeyboardInterrupt):
    """A second stop signal arrived while training was already stopping."""

    def __init__(self, signum):
        super().__init__(f"aborted by {signal.Signals(signum).name}")
        self.signum = signum


class StopRequest:
    """Context manager that turns SIGINT and SIGTERM into a stop request.

    ``signum`` is None until a signal arrives, then that signal's number.
    Python delivers signals to the main thread only, so in another thread the
    handlers are not installed and Ctrl-C raises ``KeyboardInterrupt`` as usual.
    """

    def __init__(self):
        self.signum = None
        self._previous = {}

    @property
    def requested(self):
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise TrainingAborted(signum)
        self.signum = signum
        logger.warning("signal=%s: stopping after the current update; send it again to exit "
                       "at once", signal.Signals(signum).name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
