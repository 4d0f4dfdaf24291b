"""Timing blocks shared by the benchmarks: interleaved blocks of calls, compared by their medians."""
import statistics
import time


def seconds_per_step(step, block_seconds: float, calls_per_block: int) -> float:
  del block_seconds  # the block's length is set through calls_per_block (calls_for)
  start = time.perf_counter()
  for _ in range(calls_per_block):
    step()
  return (time.perf_counter() - start) / calls_per_block


def calls_for(step, block_seconds: float) -> int:
  """Calls of `step` that fill about `block_seconds`, after one warm-up call."""
  step()  # warm-up
  one = seconds_per_step(step, block_seconds, 1)
  return max(1, int(block_seconds / max(one, 1e-6)))


def median_seconds(step, calls: int, blocks: int = 5) -> float:
  """Median over `blocks` blocks of `calls` calls of the seconds per call, after two warm-up calls (the first
  compiles; the second settles allocations). For layer benchmarks timing one form after another."""
  step()
  step()
  times = []
  for _ in range(blocks):
    start = time.perf_counter()
    for _ in range(calls):
      step()
    times.append((time.perf_counter() - start) / calls)
  return statistics.median(times)


def interleaved_medians(steps: dict, blocks: int, calls: int, warmups: int = 2) -> dict:
  """{name: median seconds per call} of each named step, timed in alternating blocks of `calls` calls (so that
  load on a shared machine falls on all alike) after `warmups` untimed calls each (the first compiles)."""
  for step in steps.values():
    for _ in range(warmups):
      step()
  times = {name: [] for name in steps}
  for _ in range(blocks):
    for name, step in steps.items():
      start = time.perf_counter()
      for _ in range(calls):
        step()
      times[name].append((time.perf_counter() - start) / calls)
  return {name: statistics.median(t) for name, t in times.items()}
