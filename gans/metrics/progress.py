"""Progress over the samples of an evaluation: a tqdm bar on a terminal, log lines otherwise.

Evaluation runs for minutes on large sample counts. A tqdm bar redrawn with
carriage returns is unreadable in a log file or a batch job's output, so off a
terminal the same progress is logged as a line at every quarter.
"""
import logging
import sys
import time

import tqdm

LOG_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


class Progress:
  """with Progress(total, "what") as progress: ... progress.update(n) ..."""

  def __init__(self, total: int, description: str, interactive: bool | None = None):
    self.total = total  # the count the bar runs to (samples, images)
    self.description = description  # what is being counted, e.g. "generating samples"
    self.done = 0
    self._start = time.monotonic()
    self._next_fraction = 0
    interactive = sys.stderr.isatty() if interactive is None else interactive
    self._bar = tqdm.tqdm(total=total, desc=description, unit="img", leave=False) if interactive else None

  def update(self, count: int) -> None:
    self.done += count
    if self._bar is not None:
      self._bar.update(count)
      return
    passed = self._next_fraction
    while passed < len(LOG_FRACTIONS) and self.done >= LOG_FRACTIONS[passed] * self.total:
      passed += 1
    if passed > self._next_fraction:  # one line per update, however many quarters it crossed
      logging.info("%s: %d/%d (%.0f%%) in %.1f s", self.description, self.done, self.total,
                   100.0 * self.done / max(self.total, 1), time.monotonic() - self._start)
      self._next_fraction = passed

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()
