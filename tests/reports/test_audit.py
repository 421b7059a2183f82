from __future__ import annotations

import copy
import stat

import pytest

from wsi_screen.reports.audit import AuditError
from wsi_screen.reports.audit import append_event
from wsi_screen.reports.audit import check_trail
from wsi_screen.reports.audit import check_versions
from wsi_screen.reports.audit import freeze_version
from wsi_screen.reports.audit import last_signed
from wsi_screen.reports.audit import start_trail


def _trail():
    report = {"input": {"sha256": "a" * 64}, "model": {"sha256": "b" * 64}, "detector": {"name": "fg"},
              "cells_detected": 3, "generated_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    trail = start_trail(report)
    trail = append_event(trail, action="review_applied", who="AB", version=1, details={"changes": [1]})
    return append_event(trail, action="signed", who="AB", version=1, details={"files": {}})


def test_trail_is_a_hash_chain():
    trail = _trail()
    assert [e["action"] for e in trail] == ["screened", "review_applied", "signed"]
    assert trail[0]["at"] == "2026-01-01T00:00:00+00:00" and trail[0]["who"] is None
    assert check_trail(trail, where="r.json") == trail
    assert last_signed(trail)["version"] == 1
    assert trail[1]["prev"] == trail[0]["hash"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[1].update(who="CD"),
        lambda t: t[1]["details"].update(changes=[2]),
        lambda t: t.pop(1),
        lambda t: t.reverse(),
        lambda t: t.append({**t[-1], "seq": 4}),
    ],
)
def test_any_edit_of_the_trail_is_found(tamper):
    trail = copy.deepcopy(_trail())
    tamper(trail)
    with pytest.raises(AuditError, match=r"r\.json: audit trail altered at event \d"):
        check_trail(trail, where="r.json")


def test_signed_versions_are_frozen_and_checked(tmp_path):
    (tmp_path / "report.json").write_text('{"a": 1}')
    files = freeze_version(tmp_path, 1, {"report.json": tmp_path / "report.json"})
    frozen = tmp_path / "versions" / "v1" / "report.json"
    assert not frozen.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    trail = append_event([], action="signed", who="AB", version=1, details={"files": files})
    check_versions(tmp_path, trail)
    with pytest.raises(AuditError, match="exists already"):
        freeze_version(tmp_path, 1, {"report.json": tmp_path / "report.json"})
    frozen.chmod(0o644)
    frozen.write_text('{"a": 2}')
    with pytest.raises(AuditError, match="changed after it was signed"):
        check_versions(tmp_path, trail)
    frozen.unlink()
    with pytest.raises(AuditError, match="missing this file"):
        check_versions(tmp_path, trail)
