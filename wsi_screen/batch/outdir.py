"""The batch output folder: one batch at a time (a lock), no links at OUT's own files, no stale temp files."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wsi_screen.errors import OutputError
from wsi_screen.errors import WsiScreenError
from wsi_screen.io import open_nofollow
from wsi_screen.io import refuse_links
from wsi_screen.outnames import RESERVED

log = logging.getLogger(__name__)

LOCK_NAME = ".batch.lock"


@contextmanager
def batch_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` so two batches never write the same folder.

    The lock is an ``flock`` on OUT/.batch.lock, released by the kernel when the process ends
    for any reason, so a killed batch never leaves a stale lock behind.

    Raises:
        WsiScreenError: another batch is writing to ``out``, or one of OUT's own files is a
            symbolic link (:func:`check_out_files`).
    """
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    try:
        fd = open_nofollow(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    except OutputError as e:
        raise WsiScreenError(str(e)) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            msg = f"{out}: another wsi-screen batch or run is writing to this folder; wait for it or use another -o"
            raise WsiScreenError(msg) from e
        try:
            check_out_files(out)
        except OutputError as e:
            raise WsiScreenError(str(e)) from e
        yield
    finally:
        os.close(fd)


def check_out_files(out: Path) -> None:
    """Refuse a symbolic link at any of the files wsi-screen writes into OUT itself.

    ``run``, ``batch`` and ``review apply`` check before they write anything, so a planted
    ``OUT/index.html -> /elsewhere`` stops the command with a one-line error, not a traceback
    after the reports were written.

    Raises:
        OutputError: one of OUT's own files (:data:`wsi_screen.outnames.RESERVED`) is a link.
    """
    refuse_links(out / name for name in sorted(RESERVED))
