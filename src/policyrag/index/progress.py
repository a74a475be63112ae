"""Progress of long jobs on stderr: a live bar on a terminal, a plain line now and then in a log.

A bar redraws itself with carriage returns, which in a log file or a CI console pile up into
one unreadable line; so when stderr is not a terminal, the same counts, rate and time left are
written as whole lines, at most one every POLICYRAG_PROGRESS_SECONDS (30 by default), and a
last one at the end if any was written.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol

from policyrag.config import progress_seconds

LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit}s ({percentage:.0f}%), {rate_fmt}, {remaining} left"
# When the total is not known (reports still being read from a collection): counts and rate.
OPEN_FORMAT = "{desc}: {n_fmt} so far, {rate_fmt}"


class Bar(Protocol):
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


# What a long job is given to show its progress: (total or None, what, unit) -> a Bar.
Bars = Callable[[int | None, str, str], Bar]


def meter(n: int, total: int | None, elapsed: float, what: str, unit: str) -> str:
    """One line of counts, rate and time left, as tqdm words them."""
    from tqdm import tqdm

    return tqdm.format_meter(n, total, elapsed, prefix=what, unit=unit,
                             bar_format=LINE_FORMAT if total else OPEN_FORMAT)


class LogLines:
    """tqdm's numbers, as a line now and then."""

    def __init__(self, total: int | None, what: str, unit: str, every: float) -> None:
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
        line = meter(self.n, self.total, now - self.start, self.what, self.unit)
        print(line, file=sys.stderr, flush=True)
        self.said = self.n


class Quiet:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class Told:
    """The same counts, rate and time left, handed as a line and a fraction done (None when
    the total is unknown) to `say`: how the web UI shows an upload's progress."""

    def __init__(self, total: int | None, what: str, unit: str,
                 say: Callable[[str, float | None], None]) -> None:
        self.total, self.what, self.unit, self.say = total, what, unit, say
        self.n = 0
        self.start = time.monotonic()

    def update(self, n: int) -> None:
        self.n += n
        line = meter(self.n, self.total, time.monotonic() - self.start, self.what, self.unit)
        self.say(line, self.n / self.total if self.total else None)

    def close(self) -> None:
        pass


def bar(total: int | None, what: str, unit: str = "chunk") -> Bar:
    """Something with update(n) and close() that shows how far a job of `total` has got."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=what, unit=unit, leave=False)
    return LogLines(total, what, unit, progress_seconds())


def quiet(total: int | None, what: str, unit: str = "chunk") -> Bar:
    return Quiet()


def bars_for(progress: bool | Bars | None) -> Bars:
    """A writer's `progress` argument as Bars: True for stderr, False for none, or the
    caller's own."""
    if callable(progress):
        return progress
    return bar if progress else quiet
