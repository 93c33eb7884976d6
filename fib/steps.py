"""What a reconciler pass yields: the kernel calls it needs, for its driver to make.

`Reconciler.apply_steps()` is a generator. It does its bookkeeping between
yields and yields each kernel call, so the driver decides where calls run:
`run` makes them here and now (tests, `Reconciler.apply`); `fib.service`
makes them on a worker thread while the event loop serves BGP sessions.

A pass yields three kinds of step:

- `Call(fn, args)`: make the call; the pass is sent its result, or thrown its
  `KernelError`.
- `Begin(fn, args)`: start the call and send the pass a ticket at once, so it
  can plan the next chunk of routes while the kernel inserts this one (the
  kernel's work is most of a write's time, and a socket call releases the
  GIL, so the two overlap on two cores).
- `Finish(ticket)`: the result of a begun call, or its `KernelError`.

Calls take effect in the order they were yielded, begun or not: a driver
runs them on one thread, one after another. A pass that ends (or fails)
with a begun call never finished has abandoned it: the driver lets it run,
and its outcome is ignored (a failed pass resyncs with a dump).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from fib.kernel import KernelError

__all__ = ["Begin", "Call", "Done", "Finish", "Step", "run"]


@dataclass(frozen=True, slots=True)
class Call:
    """Make `fn(*args)` and wait for it."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Begin:
    """Start `fn(*args)`; the pass gets a ticket to `Finish` later."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Finish:
    """Wait for a begun call: its result, or its KernelError thrown into the pass."""

    ticket: Any


Step = Call | Begin | Finish


@dataclass(frozen=True, slots=True)
class Done:
    """`run`'s ticket: a call made at once, with its outcome."""

    result: Any
    error: KernelError | None


def run(steps: Generator[Step, Any, None]) -> None:
    """Drive a pass on this thread: each call is made when it is yielded."""
    try:
        step = next(steps)
        while True:
            step = _advance(steps, step)
    except StopIteration:
        pass


def _advance(steps: Generator[Step, Any, None], step: Step) -> Step:
    """Carry out one step; the pass's next one."""
    if isinstance(step, Finish):
        done: Done = step.ticket
        return steps.send(done.result) if done.error is None else steps.throw(done.error)
    try:
        result = step.fn(*step.args)
    except KernelError as exc:
        if isinstance(step, Begin):
            return steps.send(Done(None, exc))  # thrown into the pass at its Finish
        return steps.throw(exc)
    return steps.send(Done(result, None) if isinstance(step, Begin) else result)
