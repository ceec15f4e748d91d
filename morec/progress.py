"""Progress for people: a tqdm bar on a terminal, plain lines (a few per pass, no carriage returns) when the
output is a file or a pipe, so a log file reads cleanly."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator

PLAIN_STEPS = 4  # lines per pass when the output is not a terminal: at 25%, 50%, 75% and 100%


class PlainProgress:
    """tqdm's interface as far as morec uses it (iterate, set_postfix), written as whole lines."""

    def __init__(self, iterable: Iterable, total: int, initial: int, desc: str, file):
        self.iterable, self.total, self.done, self.desc, self.file = iterable, total, initial, desc, file
        self.postfix, self.t0 = "", time.perf_counter()
        self.next_line = self._next_mark(initial)

    def _next_mark(self, done: int) -> int:
        step = max(1, -(-self.total // PLAIN_STEPS))
        return min(self.total, (done // step + 1) * step)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.done += 1
            if self.total and self.done >= self.next_line:
                seconds = time.perf_counter() - self.t0
                print(f"{self.desc}: {100 * self.done // self.total}% ({self.done}/{self.total}, {seconds:.1f} s"
                      + (f", {self.postfix}" if self.postfix else "") + ")", file=self.file, flush=True)
                self.next_line = self._next_mark(self.done)


def progress(iterable: Iterable, total: int, desc: str, enabled: bool = True, initial: int = 0, file=None):
    """A progress bar over ``iterable``: tqdm on a terminal, :class:`PlainProgress` otherwise, nothing when
    not ``enabled``."""
    from tqdm import tqdm

    file = file or sys.stderr
    if enabled and not (hasattr(file, "isatty") and file.isatty()):
        return PlainProgress(iterable, total, initial, desc, file)
    return tqdm(iterable, total=total, initial=initial, desc=desc, leave=False, disable=not enabled, file=file)
