"""The batch ledger: an append-only record of finished inputs, so an interrupted batch can resume.

One JSON line per finished input is appended to ``OUT/ledger.jsonl`` with a single ``write`` on an
``O_APPEND`` descriptor followed by ``fsync``. A batch killed at any moment (SIGKILL included)
leaves at most one torn last line, which :meth:`Ledger.load` ignores. An input counts as done
when its ledger line has status ``ok`` *and* the same run key, where the run key hashes the
input's content, the model weights and the result-affecting configuration. A changed input,
model or config therefore re-processes; the batch never trusts a file name alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen.errors import WsiScreenError
from wsi_screen.io import open_nofollow
from wsi_screen.textfiles import parse_json
from wsi_screen.textfiles import read_bytes

log = logging.getLogger(__name__)

LEDGER_NAME = "ledger.jsonl"
LEDGER_VERSION = 1
MAX_LEDGER_BYTES = 512 << 20
"""Largest ledger read (over a million entries of a few hundred bytes)."""
MAX_LINE_BYTES = 16 << 10
"""Longest ledger line parsed; a longer one is skipped like a torn one (an entry needs under 1 KiB)."""

# Settings that change where or how fast a batch runs but not its results; changing them
# must not force a lab to re-screen a whole folder (e.g. resuming on another GPU node).
RUNTIME_ONLY_KEYS = (
    ("classify", "device"),
    ("classify", "batch_size"),
    ("classify", "threads"),
    ("pipeline", "workers"),
    ("pipeline", "read_ahead"),
    ("pipeline", "write_behind"),
    ("pipeline", "worker_nice"),
    # the limits decide whether an input is screened at all, never what its report says
    ("limits", "max_slide_pixels"),
    ("limits", "min_tile_px"),
    ("limits", "max_tiles"),
    ("limits", "max_decode_samples"),
    ("limits", "max_field_pixels"),
    ("limits", "input_timeout_s"),
    ("limits", "max_unreadable_tile_fraction"),
)


def canonical_hash(data: Any) -> str:
    """SHA-256 of the canonical JSON form of ``data`` (sorted keys, no whitespace).

    Example:
        >>> canonical_hash({"b": 1, "a": 2}) == canonical_hash({"a": 2, "b": 1})
        True
    """
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def settings_hash(config: dict[str, Any], **extra: Any) -> str:
    """Hash the result-affecting settings: the resolved config minus runtime-only keys, plus ``extra``.

    Args:
        config: ``ScreenConfig.to_dict()``.
        **extra: other options that change results (``mpp``, ``detector_weights``, ...).

    Returns:
        A hex digest; equal digests mean equal results for equal inputs and model.
    """
    return canonical_hash({"config": result_config(config), **extra})


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    """A plain copy of ``config`` without the runtime-only keys (those that never change results)."""
    cfg: dict[str, Any] = json.loads(json.dumps(config, default=str))
    for section, key in RUNTIME_ONLY_KEYS:
        if isinstance(cfg.get(section), dict):
            cfg[section].pop(key, None)
            if not cfg[section]:  # a section of runtime keys only: as if absent (older ledgers)
                del cfg[section]
    return cfg


def run_key(input_sha256: str, model_sha256: str, settings_sha256: str) -> str:
    """The ledger key of one input: content hash + model hash + settings hash."""
    return canonical_hash([LEDGER_VERSION, input_sha256, model_sha256, settings_sha256])


@dataclass(frozen=True)
class LedgerEntry:
    """One finished input as recorded in the ledger."""

    input: str  # the input's name relative to its folder (the summary's ``input`` column)
    stem: str  # OUT/<stem>/ holds its outputs
    key: str
    input_sha256: str
    status: str  # "ok" or "failed"
    finished_at: str


class Ledger:
    """Read and append ``OUT/ledger.jsonl``.

    Args:
        path: the ledger file (created on the first append).

    Example:
        >>> ledger = Ledger(out / LEDGER_NAME)  # doctest: +SKIP
        >>> ledger.load()  # doctest: +SKIP
        >>> ledger.done("a.png", "a", key)  # doctest: +SKIP
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._latest: dict[tuple[str, str, str], LedgerEntry] = {}

    def load(self) -> int:
        """Read the ledger; later lines win. Returns the number of entries read.

        Raises:
            WsiScreenError: the ledger exists but cannot be read.
        """
        self._latest.clear()
        n = 0
        for i, data in enumerate(ledger_lines(self.path), 1):
            entry = _entry(data)
            if entry is None:
                if data is not None:  # a JSON object, but not an entry
                    log.warning("%s: ignoring unreadable line %d", self.path, i)
                continue
            self._latest[(entry.input, entry.stem, entry.key)] = entry
            n += 1
        return n

    def done(self, input_name: str, stem: str, key: str) -> LedgerEntry | None:
        """The latest ``ok`` entry of ``input_name`` screened into ``stem`` under ``key``, or None.

        The stem is part of the lookup because two folders of one batch may hold files of the
        same name (and even the same content); each has its own output folder.
        """
        entry = self._latest.get((input_name, stem, key))
        return entry if entry is not None and entry.status == "ok" else None

    def append(self, *, input_name: str, stem: str, key: str, input_sha256: str, status: str) -> LedgerEntry:
        """Append one entry durably (single write + fsync).

        Raises:
            WsiScreenError: the ledger cannot be written (disk full, permissions).
        """
        entry = LedgerEntry(
            input=input_name,
            stem=stem,
            key=key,
            input_sha256=input_sha256,
            status=status,
            finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        line = json.dumps(asdict(entry), ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = open_nofollow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                if not created and not _ends_with_newline(self.path):
                    line = "\n" + line  # finish a line torn by an earlier kill
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)
        except OSError as e:
            msg = f"{self.path}: cannot append to the batch ledger: {e.strerror}"
            raise WsiScreenError(msg) from e
        self._latest[(entry.input, entry.stem, entry.key)] = entry
        return entry


def ledger_lines(path: Path, *, warn: bool = True) -> list[dict[str, Any] | None]:
    """The JSON objects of the ledger's lines, None for an empty line or one that is not (torn, planted).

    The file is read bounded (:data:`MAX_LEDGER_BYTES`, a regular file only) and each line parsed
    with a nesting limit, so no line can end a resume in a traceback. A missing ledger has no lines.

    Raises:
        WsiScreenError: the ledger exists but cannot be read, or is larger than the cap.
    """
    if not path.exists():
        return []
    try:
        raw = read_bytes(path, error=WsiScreenError, max_bytes=MAX_LEDGER_BYTES)
    except WsiScreenError as e:
        msg = f"{e} (the batch ledger)"
        raise WsiScreenError(msg) from e
    out: list[dict[str, Any] | None] = []
    for i, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            out.append(None)
            continue
        data = None
        if len(line) <= MAX_LINE_BYTES:
            try:
                data = parse_json(
                    line.decode("utf-8", errors="replace"), f"{path} line {i}", error=WsiScreenError
                )
            except WsiScreenError:
                data = None
        if not isinstance(data, dict):
            if warn:
                log.warning("%s: ignoring unreadable line %d", path, i)
            data = None
        out.append(data)
    return out


def _entry(data: dict[str, Any] | None) -> LedgerEntry | None:
    """The entry of one ledger line, or None when it lacks a field or a field is not a string."""
    if data is None:
        return None
    values = {k: data.get(k) for k in LedgerEntry.__dataclass_fields__}
    if not all(isinstance(v, str) for v in values.values()):
        return None
    return LedgerEntry(**values)  # type: ignore[arg-type]


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _fsync_dir(folder: Path) -> None:
    """Make a new directory entry durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
