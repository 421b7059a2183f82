"""A per-input time limit that holds on every thread and never cuts a library read in half.

:func:`within` runs a function under a time budget. Past the budget the function ends with
:class:`InputTimeoutError`, by two routes:

- Checkpoints: :func:`check_deadline` (called before every region a source reads) raises it, so a
  slide's tile loop ends at its next tile. The work between two checkpoints is bounded by the size
  caps of :mod:`wsi_screen.limits` (one strip or tile, one field, one detector tile).
- A watchdog thread, for code that reaches no checkpoint (a slow detector plug-in): it raises the
  error once in the running thread at its next Python instruction (``PyThreadState_SetAsyncExc``),
  on the main thread and on read-ahead workers alike.

A library call that hands its work to threads of its own is :func:`shielded`: the watchdog never
interrupts it and the checkpoint after it raises. tiffslide reads through zarr, which decodes on
zarr's event-loop thread while the caller waits; an interrupted wait abandoned the read there (it
went on decoding into the next input) and made zarr's exit handler print "Cannot close a running
event loop". Shielded reads end, then the input stops.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class InputTimeoutError(BaseException):
    """An input ran past the per-input time limit.

    A ``BaseException`` (like ``KeyboardInterrupt``), so the broad ``except Exception`` of
    readers, stages and libraries cannot turn it into another error or swallow it; only
    :meth:`wsi_screen.pipeline.Screener` catches it, for the input it concerns.
    """

    stage = "timeout"


@dataclass
class _Budget:
    """The time budget of one :func:`within` call, on one thread."""

    what: str
    seconds: float
    ends: float  # time.monotonic() at expiry
    thread: int
    shield: int = 0  # shielded library calls under way
    fired: bool = False  # an InputTimeoutError was raised (or sent) for this budget
    done: bool = False  # the call returned: never interrupt its thread again

    def error(self) -> InputTimeoutError:
        msg = f"{self.what}: took longer than the per-input time limit ({self.seconds:g} s); stopped"
        return InputTimeoutError(msg)


_lock = threading.Condition()
_budgets: dict[int, _Budget] = {}  # thread id -> the budget running there
_local = threading.local()
_watchdog: list[threading.Thread] = []


def _send(thread: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in ``thread`` at its next Python instruction; None withdraws one not yet raised."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), ctypes.py_object(exc) if exc else None)


def _watch() -> None:
    """The watchdog: interrupt, once, each expired budget whose thread is not in a shielded call."""
    with _lock:
        while True:
            now = time.monotonic()
            waiting = [b for b in _budgets.values() if not (b.fired or b.done)]
            for b in waiting:
                if b.ends <= now and b.shield == 0:
                    b.fired = True
                    _send(b.thread, InputTimeoutError)
            # until the next budget expires; every 50 ms while one waits for its shielded call
            ahead = [b.ends - now if b.ends > now else 0.05 for b in waiting if not b.fired]
            _lock.wait(min(ahead, default=None))


def _start_watchdog() -> None:
    """Start the watchdog thread (once per process; again in a forked child). Call holding the lock."""
    if not (_watchdog and _watchdog[0].is_alive()):
        thread = threading.Thread(target=_watch, name="wsi-screen-deadline", daemon=True)
        thread.start()
        _watchdog[:] = [thread]


def _after_fork() -> None:
    global _lock
    _lock = threading.Condition()
    _budgets.clear()
    _watchdog.clear()
    _local.__dict__.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _leave(budget: _Budget) -> None:
    """End ``budget``: no interruption after this, and none left pending (idempotent)."""
    with _lock:
        budget.done = True
        if _budgets.get(budget.thread) is budget:
            del _budgets[budget.thread]
        if budget.fired:
            _send(budget.thread, None)
    if getattr(_local, "budget", None) is budget:
        _local.budget = None


def within(seconds: float, what: str, fn: Callable[[], T]) -> T:
    """``fn()``, ended with :class:`InputTimeoutError` after ``seconds`` (0: no limit).

    The error names ``what`` and the limit. Budgets do not nest: inside another one, ``fn`` runs
    under the outer budget.

    Raises:
        InputTimeoutError: ``fn`` ran past ``seconds``.
    """
    if seconds <= 0 or getattr(_local, "budget", None) is not None:
        return fn()
    thread = threading.get_ident()
    budget = _Budget(what, seconds, time.monotonic() + seconds, thread)
    with _lock:
        _budgets[thread] = budget
        _start_watchdog()
        _lock.notify_all()
    _local.budget = budget
    try:
        try:
            return fn()
        finally:
            _leave(budget)
    except InputTimeoutError:
        # The watchdog interrupts once; if that landed in ``_leave`` above, this runs it through.
        _leave(budget)
        raise budget.error() from None


def _expired() -> _Budget | None:
    """This thread's budget if it has run out (and is still running), else None."""
    budget: _Budget | None = getattr(_local, "budget", None)
    if budget is None or budget.done or time.monotonic() < budget.ends:
        return None
    return budget


def _raise(budget: _Budget) -> None:
    """Raise the budget's error here, withdrawing the watchdog's if it is still on its way."""
    with _lock:
        if budget.fired:
            _send(budget.thread, None)
        budget.fired = True
    raise budget.error()


def check_deadline() -> None:
    """A checkpoint: raise :class:`InputTimeoutError` if this thread's budget has run out.

    Cheap (a thread-local look-up and a clock read); a no-op outside :func:`within`.
    """
    budget = _expired()
    if budget is not None:
        _raise(budget)


@contextmanager
def shielded() -> Iterator[None]:
    """Run a library call that the watchdog must not interrupt; a checkpoint before and after.

    For calls whose work runs on threads of their own (tiffslide's reads through zarr), which an
    interruption would leave running. The call itself must be bounded (the size caps see to it).
    """
    budget: _Budget | None = getattr(_local, "budget", None)
    if budget is None or budget.done:
        yield
        return
    with _lock:
        if time.monotonic() >= budget.ends:
            _send(budget.thread, None)
            budget.fired = True
            raise budget.error()
        budget.shield += 1
    try:
        yield
    finally:
        with _lock:
            budget.shield -= 1
    check_deadline()
