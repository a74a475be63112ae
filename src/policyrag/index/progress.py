"""Progress of long jobs on stderr: a live bar on a terminal, a plain line now and then in a log.

A bar redraws itself with carriage returns, which in a log file or a CI console pile up into
one unreadable line; so when stderr is not a terminal, the same counts, rate and time left are
written as whole lines, at most one every POLICYRAG_PROGRESS_SECONDS (30 by default), and a
last one at the end if any was written.
"""

from __future__ import annotations

import sys
import time

from policyrag.config import progress_seconds

LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit}s ({percentage:.0f}%), {rate_fmt}, {remaining} left"


class LogLines:
    """tqdm's numbers, as a line now and then."""

    def __init__(self, total: int, what: str, unit: str, every: float) -> None:
        self.total, self.what, self.unit, self.every = total, what, unit, every
        self.n = 0
        self.start = self.last = time.monotonic()
        self.said = -1

    def update(self, n: int) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._say(now)

    def close(self) -> None:
        if self.said >= 0 and self.said != self.n:
            self._say(time.monotonic())

    def _say(self, now: float) -> None:
        from tqdm import tqdm

        line = tqdm.format_meter(self.n, self.total, now - self.start, prefix=self.what,
                                 unit=self.unit, bar_format=LINE_FORMAT)
        print(line, file=sys.stderr, flush=True)
        self.said = self.n


def bar(total: int, what: str, unit: str = "chunk"):
    """Something with update(n) and close() that shows how far a job of `total` has got."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=what, unit=unit, leave=False)
    return LogLines(total, what, unit, progress_seconds())
