"""Progress display for long loops: a bar on a terminal, log lines elsewhere."""

import logging
import sys
import time


class Progress:
    """Count work done and show rate and ETA.

    On a terminal this draws a tqdm bar on standard error. Otherwise (a log
    file, a notebook cell without widgets, CI) it logs one line at most every
    ``log_interval`` seconds to ``logger``.
    """

    def __init__(self, total, description, unit, logger, *, log_interval=10.0, enabled=True):
        self.total = total
        self.description = description
        self.unit = unit
        self.logger = logger
        self.log_interval = log_interval
        self.done = 0
        self.start = time.perf_counter()
        self.last_log = self.start
        self.bar = None
        if enabled and sys.stderr.isatty() and logger.isEnabledFor(logging.INFO):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=description, unit=unit, leave=False,
                            dynamic_ncols=True)

    def update(self, count=1):
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.perf_counter()
        if now - self.last_log >= self.log_interval and self.done < self.total:
            self.last_log = now
            elapsed = now - self.start
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            self.logger.info("%s progress=%d/%d rate=%.1f %s/s eta=%.0f s",
                             self.description, self.done, self.total, rate, self.unit, eta)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
