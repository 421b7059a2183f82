"""Atomic writes: complete files only, with the permissions a plain open() gives."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsi_screen.io import atomic_write_bytes
from wsi_screen.io import atomic_write_text
from wsi_screen.io import atomic_write_with


@pytest.fixture
def umask_027() -> Iterator[int]:
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_atomic_writes_get_the_mode_open_would_give(tmp_path: Path, umask_027: int) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert _mode(plain) == 0o640
    atomic_write_text(tmp_path / "a.txt", "text")
    atomic_write_bytes(tmp_path / "b.bin", b"bytes")
    atomic_write_with(tmp_path / "c.txt", lambda p: p.write_text("with"))
    for name in ("a.txt", "b.bin", "c.txt"):
        assert _mode(tmp_path / name) == _mode(plain), name
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "d.txt", "shared")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "d.txt") == 0o644


def test_writer_that_replaces_the_temp_file_still_gets_the_mode(tmp_path: Path, umask_027: int) -> None:
    def recreate(p: Path) -> None:
        p.unlink()
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"private writer")
        os.close(fd)

    atomic_write_with(tmp_path / "r.bin", recreate)
    assert _mode(tmp_path / "r.bin") == 0o640
    assert (tmp_path / "r.bin").read_bytes() == b"private writer"


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError

    with pytest.raises(RuntimeError):
        atomic_write_with(target, fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
