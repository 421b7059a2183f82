"""Overlapping pipeline stages on threads, in order: read ahead of the model, write behind it.

Decoding (OpenCV, tiffslide), the foreground masks (NumPy, OpenCV), the model (torch) and the
report writers (JPEG encoding, Arrow) spend their time in C code that releases the GIL, so
threads overlap them without copying decoded images between processes; a process pool would
pickle every decoded field (15 MB) across. Both helpers keep the order of their inputs and hold at
most ``depth`` results beyond the one being consumed, so memory is bounded by ``depth``, not by
the number of inputs. An error is raised where its result would have been yielded; on an error or
when the consumer stops early, work not yet started is cancelled, work under way is waited for,
and every result that will never be yielded is handed to ``discard`` (to close its files).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

__all__ = ["lower_priority", "read_ahead", "write_behind"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def read_ahead(
    fn: Callable[[T], R],
    args: Iterable[T],
    *,
    workers: int,
    depth: int,
    discard: Callable[[R], None] | None = None,
    stop: threading.Event | None = None,
    nice: int = 0,
) -> Generator[R, None, None]:
    """Yield ``fn(a)`` for each ``a`` of ``args`` in order, computing up to ``depth`` ahead.

    Args:
        fn: the stage (it should record its own failures on its result, as the pipeline's do).
        args: the inputs, consumed lazily.
        workers: threads running ``fn``; 0 runs it inline, one input at a time, in the caller's thread.
        depth: results computed ahead of the one being consumed (at least ``workers``).
        discard: called on each result that is computed but never yielded.
        stop: set when the consumer stops early, before waiting for work under way (``fn`` may
            watch it to end sooner).
        nice: lower the worker threads' CPU priority by this much (:func:`lower_priority`).

    Example:
        >>> list(read_ahead(lambda x: x * x, range(5), workers=2, depth=2))
        [0, 1, 4, 9, 16]
    """
    if workers <= 0:
        for a in args:
            yield fn(a)
        return
    it = iter(args)
    pool = ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix="wsi-screen-read",
        initializer=lower_priority,
        initargs=(nice,),
    )
    futures: deque[Future[R]] = deque(pool.submit(fn, a) for a in islice(it, max(depth, workers)))
    try:
        while futures:
            result = futures.popleft().result()
            futures.extend(pool.submit(fn, a) for a in islice(it, 1))
            yield result
    finally:
        if stop is not None and futures:
            stop.set()
        _drain(pool, futures, discard)


def write_behind(
    fn: Callable[[T], R], items: Iterable[T], *, depth: int, nice: int = 0
) -> Generator[tuple[T, R], None, None]:
    """Yield ``(item, fn(item))`` in order while ``fn`` runs on one thread behind the producer.

    ``fn`` (a report writer) runs on a single thread, so it may use libraries that are not
    thread-safe among themselves (matplotlib); up to ``depth`` items wait or are being written
    while the producer (``items``) goes on. ``depth`` 0 writes inline. When the consumer stops
    early, items already handed to the writer are still written to the end (writes are atomic;
    none is left half done). ``nice`` lowers the writer thread's CPU priority (:func:`lower_priority`).

    Example:
        >>> list(write_behind(str, [1, 2], depth=2))
        [(1, '1'), (2, '2')]
    """
    if depth <= 0:
        for item in items:
            yield item, fn(item)
        return
    pool = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="wsi-screen-write", initializer=lower_priority, initargs=(nice,)
    )
    waiting: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in items:
            waiting.append((item, pool.submit(fn, item)))
            while len(waiting) > depth:
                done, future = waiting.popleft()
                yield done, future.result()
        while waiting:
            done, future = waiting.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True)
        close = getattr(items, "close", None)
        if close is not None:  # a generator producer: let it release what it holds now
            close()


def lower_priority(nice: int) -> None:
    """Raise the calling thread's ``nice`` value by ``nice`` (Linux: per thread; elsewhere nothing).

    A stage thread at lower priority runs when the model's threads leave a core free, instead of
    taking turns with them: the model's parallel sections wait for their slowest thread, so a
    thread sharing its core slows all of them. Any user may lower a thread's priority.
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)  # a TID: this thread only
    except OSError as e:  # a sandbox without setpriority: run at the normal priority
        log.debug("cannot lower the priority of %s: %s", threading.current_thread().name, e)


def _drain(pool: ThreadPoolExecutor, futures: deque[Future[R]], discard: Callable[[R], None] | None) -> None:
    """Cancel what has not started, wait for what has, and discard every unconsumed result."""
    for f in futures:
        f.cancel()
    pool.shutdown(wait=True)
    if discard is None:
        return
    for f in futures:
        if not f.cancelled() and f.exception() is None:
            discard(f.result())
