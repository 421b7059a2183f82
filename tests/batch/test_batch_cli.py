"""``wsi-screen batch`` end to end on small synthetic fields and corrupt files (local engine)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from _batch_helpers import BAD
from _batch_helpers import GOOD
from _batch_helpers import SIDECARS
from _batch_helpers import read_summary
from _batch_helpers import temp_files
from click.testing import Result


@pytest.fixture(scope="module")
def first_run(
    mixed_folder: Path, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Result]:
    from click.testing import CliRunner

    from wsi_screen.cli import main

    out = tmp_path_factory.mktemp("batch") / "out"
    argv = ["--log-level", "warning", "batch", str(mixed_folder), "-o", str(out)]
    res = CliRunner().invoke(
        main, [*argv, "--model", str(tiny_bundle), "--device", "cpu", "--batch-size", "4"]
    )
    return out, res


@pytest.fixture
def batch_copy(first_run: tuple[Path, Result], tmp_path: Path) -> Path:
    """A copy of the first run's output folder, for tests that run or review into it."""
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    return out


def test_bad_inputs_are_recorded_and_the_batch_goes_on(first_run: tuple[Path, Result]) -> None:
    out, res = first_run
    assert res.exit_code == 1, res.output
    rows = {r["input"]: r for r in read_summary(out)}
    assert sorted(rows) == sorted([*GOOD, *BAD, *SIDECARS])  # the hidden file is not listed
    for name in GOOD:
        r = rows[name]
        assert r["status"] == "ok", r
        assert int(r["cells_detected"]) > 0
        assert r["error_stage"] == ""
        assert (out / r["output"]).is_file()
    for name, stage in BAD.items():
        r = rows[name]
        assert r["status"] == "failed"
        assert r["error_stage"] == stage
        assert name in r["error_message"]  # the message names the file
    assert "empty" in rows["g_empty.png"]["error_message"]
    assert (rows["h_notes.txt"]["status"], rows["h_notes.txt"]["output"]) == ("skipped", "")
    assert "sidecar" in rows["h_notes.txt"]["error_message"]
    assert "SKIPPED h_notes.txt" in res.output
    assert "truncated" in rows["d_truncated.png"]["error_message"]
    for name in BAD:
        assert f"{name}:" in res.output
    assert "3 screened" in res.output
    assert "4 failed" in res.output and "1 not an input (skipped)" in res.output


def test_outputs_of_a_batch(first_run: tuple[Path, Result]) -> None:
    out, _ = first_run
    for name in ("summary.csv", "summary.parquet", "run_metadata.json", "batch.log", "ledger.jsonl"):
        assert (out / name).is_file(), name
    frame = pl.read_parquet(out / "summary.parquet")
    assert frame.height == len(GOOD) + len(BAD) + len(SIDECARS)
    assert frame.schema["cells_detected"] == pl.Int64
    assert frame.schema["blast_percent"] == pl.Float64
    assert frame["input"].to_list() == sorted([*GOOD, *BAD, *SIDECARS])
    meta = json.loads((out / "run_metadata.json").read_text())
    assert meta["status"] == "finished"
    assert meta["counts"] == {"inputs": 8, "screened": 3, "skipped_done": 0, "failed": 4, "not_run": 0,
                              "not_inputs": 1}  # fmt: skip
    assert len(meta["model"]["sha256"]) == 64
    assert meta["software"]["torch"]
    assert meta["engine"]["devices"] == ["cpu"]
    assert "f_text.tif" in (out / "batch.log").read_text()
    assert len((out / "ledger.jsonl").read_text().splitlines()) == 7  # the sidecar is not an input
    if Path(__file__).parents[2].joinpath("wsi_screen", "reports", "index.py").exists():
        assert (out / "index.html").is_file()
    assert temp_files(out) == []


def test_rerun_skips_done_inputs_and_retries_failed(
    first_run: tuple[Path, Result], mixed_folder: Path, run_batch_cli: Callable[..., Result], batch_copy: Path
) -> None:
    out = batch_copy
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/report.json")}
    res = run_batch_cli(str(mixed_folder), "-o", str(out), "--batch-size", "9")  # runtime-only change
    assert res.exit_code == 1
    assert "0 screened, 3 done earlier (skipped), 4 failed" in res.output
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/report.json")} == before
    assert read_summary(out) == read_summary(first_run[0])


def test_changed_config_reprocesses(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path, batch_copy: Path
) -> None:
    out = batch_copy
    cfg = tmp_path / "screen.toml"
    cfg.write_text("[aggregate]\nmin_cells = 3\n")
    res = run_batch_cli(str(mixed_folder), "-o", str(out), "--config", str(cfg), "--pattern", "*_field.*")
    assert res.exit_code == 0, res.output
    assert "3 screened, 0 done earlier" in res.output
    rows = read_summary(out)
    assert [r["input"] for r in rows] == list(GOOD)
    assert all("too_few_cells" not in r["flags_raised"] for r in rows)


def test_pattern_is_repeatable_and_every_pattern_applies(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    res = run_batch_cli(str(mixed_folder), "-o", str(out), "--pattern", "a_*", "--pattern", "*.tif")
    assert res.exit_code == 1, res.output  # f_text.tif matches the second pattern, and fails
    assert [(r["input"], r["status"]) for r in read_summary(out)] == [
        ("a_field.png", "ok"),
        ("c_field.tif", "ok"),
        ("f_text.tif", "failed"),
    ]
    meta = json.loads((out / "run_metadata.json").read_text())
    assert meta["options"]["patterns"] == ["a_*", "*.tif"]


def test_deprecated_out_spelling_still_works(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path
) -> None:
    res = run_batch_cli(str(mixed_folder), "--out", str(tmp_path / "old"), "--pattern", "a_*")
    assert res.exit_code == 0, res.output
    assert "--out is deprecated" in res.stderr
    assert [r["input"] for r in read_summary(tmp_path / "old")] == ["a_field.png"]


def test_fail_fast_stops_at_the_first_failure(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(mixed_folder / "g_empty.png", folder / "a_empty.png")
    shutil.copy(mixed_folder / GOOD[0], folder / GOOD[0])
    res = run_batch_cli(str(folder), "-o", str(tmp_path / "out"), "--fail-fast")
    assert res.exit_code == 1
    rows = read_summary(tmp_path / "out")
    assert [(r["input"], r["status"]) for r in rows] == [("a_empty.png", "failed"), (GOOD[0], "not_run")]


def test_usage_errors_exit_2(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path
) -> None:
    res = run_batch_cli(str(mixed_folder), "-o", str(tmp_path / "o1"), "--pattern", "*.svs")
    assert res.exit_code == 2
    assert "no input found" in res.output
    res = run_batch_cli(str(mixed_folder), "-o", str(tmp_path / "o2"), "--ray-address", "auto")
    assert res.exit_code == 2
    assert "--engine ray" in res.output
    res = run_batch_cli(
        str(mixed_folder), "-o", str(tmp_path / "o4"), "--detector", "nope", "--engine", "ray"
    )
    assert res.exit_code == 2
    assert "unknown detector 'nope'" in res.output
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("[aggregate]\nmin_cells = 0\n")
    res = run_batch_cli(str(mixed_folder), "-o", str(tmp_path / "o3"), "--config", str(bad_cfg))
    assert res.exit_code == 2
    assert "aggregate.min_cells" in res.output


def test_folder_rewritten_under_other_settings_is_not_done_for_the_old_ones(
    first_run: tuple[Path, Result],
    mixed_folder: Path,
    run_batch_cli: Callable[..., Result],
    tmp_path: Path,
    batch_copy: Path,
) -> None:
    out = batch_copy
    cfg = tmp_path / "screen.toml"
    cfg.write_text("[aggregate]\nmin_cells = 3\n")
    only_good = ("--pattern", "*_field.*")
    res = run_batch_cli(str(mixed_folder), "-o", str(out), "--config", str(cfg), *only_good)
    assert "3 screened, 0 done earlier" in res.output
    # back to the first settings: their ledger lines are ok, but the folders hold the other results
    res = run_batch_cli(str(mixed_folder), "-o", str(out), *only_good)
    assert res.exit_code == 0, res.output
    assert "3 screened, 0 done earlier" in res.output
    assert read_summary(out) == [r for r in read_summary(first_run[0]) if r["input"] in GOOD]


def test_unstamped_report_of_other_settings_is_redone(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], batch_copy: Path
) -> None:
    out = batch_copy
    path = out / "a_field" / "report.json"
    report = json.loads(path.read_text())
    assert len(report["batch"]["run_key"]) == 64
    # as a redo under other settings, killed between report.json and its stamp, leaves it
    del report["batch"]
    report["config"]["aggregate"]["min_cells"] = 123
    path.write_text(json.dumps(report))
    res = run_batch_cli(str(mixed_folder), "-o", str(out), "--pattern", "*_field.*")
    assert "1 screened, 2 done earlier" in res.output
    redone = json.loads(path.read_text())
    assert "batch" in redone and redone["config"]["aggregate"]["min_cells"] == 500


def test_each_screened_report_json_is_written_once_with_its_run_key(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wsi_screen.reports.json_report as json_report

    real, written = json_report.atomic_write_text, []

    def counting(path: Path, text: str) -> None:
        written.append(Path(path))
        real(path, text)

    monkeypatch.setattr(json_report, "atomic_write_text", counting)  # every report.json write
    out = tmp_path / "out"
    res = run_batch_cli(str(mixed_folder), "-o", str(out), "--pattern", "*_field.*")
    assert res.exit_code == 0, res.output
    reports = [p for p in written if p.name == "report.json"]
    assert sorted(p.parent.name for p in reports) == ["a_field", "b_field", "c_field"]
    for path in reports:
        assert json.loads(path.read_text())["batch"]["run_key"] == first_run_key(out, path.parent.name)


def test_report_from_before_run_keys_resumes_without_screening_again(
    first_run: tuple[Path, Result], mixed_folder: Path, run_batch_cli: Callable[..., Result], batch_copy: Path
) -> None:
    out = batch_copy
    path = out / "a_field" / "report.json"
    report = json.loads(path.read_text())
    del report["batch"]  # an older wsi-screen wrote no run key
    path.write_text(json.dumps(report))
    res = run_batch_cli(str(mixed_folder), "-o", str(out), "--pattern", "*_field.*")
    assert "0 screened, 3 done earlier" in res.output
    assert json.loads(path.read_text())["batch"]["run_key"] == first_run_key(out, "a_field")


def first_run_key(out: Path, stem: str) -> str:
    entries = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    return next(e["key"] for e in reversed(entries) if e.get("stem") == stem)


def test_screening_again_over_a_review_stops_unless_rescreen_archives_it(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path, batch_copy: Path
) -> None:
    out = batch_copy
    path = out / "a_field" / "report.json"
    report = json.loads(path.read_text())
    report["review"] = {"reviewer": "dr x", "reviewed_at": "2026-12-02T10:00:00+00:00", "corrections": []}
    path.write_text(json.dumps(report))
    reviewed = path.read_bytes()
    cfg = tmp_path / "c.toml"
    cfg.write_text("[aggregate]\nmin_cells = 100\n")  # changed settings: every input is screened again
    args = [str(mixed_folder), "-o", str(out), "--pattern", "a_field.*", "--config", str(cfg)]
    res = run_batch_cli(*args)
    assert res.exit_code == 2, res.output
    assert "a_field/report.json holds a review by dr x" in res.output and "--rescreen" in res.output
    assert path.read_bytes() == reviewed  # no screening erased it
    res = run_batch_cli(*args, "--rescreen")
    assert "1 screened" in res.output
    (kept,) = (out / "a_field" / "superseded").iterdir()
    archived = json.loads((kept / "report.json").read_text())
    assert archived["review"]["reviewer"] == "dr x" and archived["audit"][-1]["action"] == "superseded"
    assert (kept / "cells.parquet").is_file()  # the ids its corrections name
    now = json.loads(path.read_text())
    assert (
        "review" not in now
        and now["audit"][0]["details"]["supersedes"]["folder"] == f"superseded/{kept.name}"
    )


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[aggregate]\nblast_classes = ["bla"]\n', "'bla'"),
        ('[detector]\nname = "yolo"\n[detector.options]\nimgsz = 0\n', "detector.options.imgsz"),
        ("[detector.options]\nmin_area_um2 = -1\n", "detector.options.min_area_um2"),
    ],
)
def test_bad_settings_are_refused_before_any_input_is_hashed(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path, toml: str, needle: str
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    out = tmp_path / "out"
    res = run_batch_cli(str(mixed_folder), "-o", str(out), "--config", str(cfg))
    assert res.exit_code == 2 and needle in res.output and str(cfg) in res.output
    assert not (out / "run_metadata.json").exists() and not (out / "ledger.jsonl").exists()


def test_review_apply_keeps_the_batch_failures_in_the_index(
    first_run: tuple[Path, Result], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from wsi_screen.cli import main

    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    stale = out / "old_input"  # a folder the batch did not list stays out of its index
    shutil.copytree(out / "a_field", stale)
    before = (out / "index.html").read_text()
    assert all(name in before for name in BAD)
    folder = out / "a_field"
    report = json.loads((folder / "report.json").read_text())
    corr = tmp_path / "c.json"
    doc = {"format": "wsi-screen-corrections", "input_sha256": report["input"]["sha256"], "corrections": []}
    corr.write_text(json.dumps(doc))
    from wsi_screen.batch.outdir import batch_lock

    with batch_lock(out):  # a batch is writing this folder: the review waits for it
        res = CliRunner().invoke(main, ["review", "apply", str(folder), str(corr), "--reviewer", "QA"])
    assert res.exit_code == 2 and "another wsi-screen batch" in res.output
    assert "review" not in json.loads((folder / "report.json").read_text())
    res = CliRunner().invoke(main, ["review", "apply", str(folder), str(corr), "--reviewer", "QA"])
    assert res.exit_code == 0, res.output
    after = (out / "index.html").read_text()
    assert all(name in after for name in BAD)  # the failed inputs are still listed
    assert all(f'href="{Path(name).stem}/report.html"' in after for name in GOOD)
    assert "old_input/" not in after
    assert ">yes<" in after  # the reviewed report is re-read


def test_added_clashing_input_does_not_move_an_existing_folder(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    shutil.copy(mixed_folder / "c_field.tif", folder / "a.tif")
    assert run_batch_cli(str(folder), "-o", str(out)).exit_code == 0
    assert [(r["input"], r["output"]) for r in read_summary(out)] == [("a.tif", "a/report.json")]
    shutil.copy(mixed_folder / "a_field.png", folder / "a.png")  # sorts before a.tif, same stem
    res = run_batch_cli(str(folder), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "1 screened, 1 done earlier" in res.output
    rows = [(r["input"], r["output"]) for r in read_summary(out)]
    assert rows == [("a.png", "a-2/report.json"), ("a.tif", "a/report.json")]
    assert json.loads((out / "a" / "report.json").read_text())["input"]["path"].endswith("a.tif")


def test_ctrl_c_while_hashing_still_writes_the_summary(
    first_run: tuple[Path, Result],
    mixed_folder: Path,
    run_batch_cli: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wsi_screen.batch.plan as plan

    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    real, hashed = plan.sha256_file, []

    def ctrl_c_on_second_input(path: Path) -> str:
        hashed.append(path)
        if len(hashed) == 2:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(plan, "sha256_file", ctrl_c_on_second_input)
    res = run_batch_cli(str(mixed_folder), "-o", str(out), "--pattern", "*_field.*")
    assert res.exit_code == 1  # as after Ctrl-C while screening
    rows = read_summary(out)
    assert [(r["input"], r["status"]) for r in rows] == [
        (GOOD[0], "ok"),
        (GOOD[1], "not_run"),
        (GOOD[2], "not_run"),
    ]
    assert "interrupted" in rows[1]["error_message"]
    meta = json.loads((out / "run_metadata.json").read_text())
    assert meta["status"] == "interrupted"
    assert meta["counts"] == {"inputs": 3, "screened": 0, "skipped_done": 1, "failed": 0, "not_run": 2,
                              "not_inputs": 0}  # fmt: skip
    assert 'href="a_field/report.html"' in (out / "index.html").read_text()


def _review_a_field(out: Path, tmp_path: Path, folder: str = "a_field") -> dict:
    """Apply one correction that changes the cell count of OUT/<folder>/; return the new report."""
    from click.testing import CliRunner

    from wsi_screen.cli import main

    report = json.loads((out / folder / "report.json").read_text())
    predicted = pl.read_parquet(out / folder / "cells.parquet")["predicted_class"][0]
    new_class = "LYT" if predicted in ("ART", "NIF") else "ART"  # into or out of the differential
    item = {"cell_id": 0, "class": new_class, "predicted": predicted}
    from wsi_screen.reports.corrections import screening_of

    doc = {
        "format": "wsi-screen-corrections",
        "input_sha256": report["input"]["sha256"],
        "screening": screening_of(report),
        "corrections": [item],
    }
    corr = tmp_path / f"{folder}.json"
    corr.write_text(json.dumps(doc))
    res = CliRunner().invoke(main, ["review", "apply", str(out / folder), str(corr)])
    assert res.exit_code == 0, res.output
    return json.loads((out / folder / "report.json").read_text())


def _other_lines(csv: bytes) -> list[str]:
    """The lines of summary.csv but a_field.png's, byte for byte."""
    return [line for line in csv.decode().splitlines() if not line.startswith("a_field.png,")]


def test_review_apply_updates_the_inputs_row_of_the_summary(tmp_path: Path, batch_copy: Path) -> None:
    out = batch_copy
    shutil.copytree(out / "a_field", out / "old_input")  # not in the summary: nothing to update
    files = ("summary.csv", "summary.parquet")
    before = {name: (out / name).read_bytes() for name in files}
    _review_a_field(out, tmp_path, "old_input")
    assert {name: (out / name).read_bytes() for name in files} == before
    rows_before = read_summary(out, timings=True)
    assert {r["reviewed"] for r in rows_before if r["status"] == "ok"} == {"false"}
    report = _review_a_field(out, tmp_path)
    rows = read_summary(out, timings=True)
    row = next(r for r in rows if r["input"] == "a_field.png")
    old = next(r for r in rows_before if r["input"] == "a_field.png")
    raised = ";".join(f["name"] for f in report["flags"] if f["status"] == "raised")
    assert int(row["cells_counted"]) == report["cells_counted"] != int(old["cells_counted"])
    assert (row["reviewed"], row["flags_raised"]) == ("true", raised)
    blast = report["blast"]["percent"]
    assert row["blast_percent"] == ("" if blast is None else str(float(blast)))
    unchanged = [k for k in row if k not in ("cells_counted", "blast_percent", "blast_ci95_low", "blast_ci95_high",
                                             "flags_raised", "reviewed")]  # fmt: skip
    assert {k: row[k] for k in unchanged} == {k: old[k] for k in unchanged}
    assert _other_lines((out / "summary.csv").read_bytes()) == _other_lines(before["summary.csv"])
    frame = pl.read_parquet(out / "summary.parquet")
    old_frame = pl.read_parquet(before["summary.parquet"])
    assert frame.schema == old_frame.schema
    assert frame.filter(pl.col("input") != "a_field.png").equals(
        old_frame.filter(pl.col("input") != "a_field.png")
    )
    new_row = frame.filter(pl.col("input") == "a_field.png").to_dicts()[0]
    old_row = old_frame.filter(pl.col("input") == "a_field.png").to_dicts()[0]
    assert {k: new_row[k] for k in unchanged} == {k: old_row[k] for k in unchanged}
    assert (new_row["cells_counted"], new_row["reviewed"]) == (report["cells_counted"], True)
    assert new_row["blast_percent"] == report["blast"]["percent"]
    assert temp_files(out) == []


def test_resumed_batch_keeps_the_reviewed_figures(
    mixed_folder: Path, run_batch_cli: Callable[..., Result], tmp_path: Path, batch_copy: Path
) -> None:
    out = batch_copy
    _review_a_field(out, tmp_path)
    reviewed = read_summary(out)
    res = run_batch_cli(str(mixed_folder), "-o", str(out))
    assert "0 screened, 3 done earlier" in res.output
    assert read_summary(out) == reviewed  # the batch's own summary writer agrees with review apply


def test_review_apply_adds_the_reviewed_column_to_an_older_summary(tmp_path: Path, batch_copy: Path) -> None:
    out = batch_copy
    older = pl.read_parquet(out / "summary.parquet").drop("reviewed")
    older.write_parquet(out / "summary.parquet")
    older.write_csv(out / "summary.csv")
    _review_a_field(out, tmp_path)
    frame = pl.read_parquet(out / "summary.parquet")
    assert frame.columns == [*older.columns, "reviewed"]
    assert frame["reviewed"].to_list() == [x == "a_field.png" or None for x in frame["input"]]
    rows = {r["input"]: r["reviewed"] for r in read_summary(out)}
    assert rows == {x: ("true" if x == "a_field.png" else "") for x in frame["input"]}


def test_unreadable_summary_file_is_a_warning_and_the_other_is_updated(
    first_run: tuple[Path, Result], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from wsi_screen.cli import main

    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    (out / "summary.parquet").write_bytes(b"not parquet\n")
    folder = out / "a_field"
    report = json.loads((folder / "report.json").read_text())
    doc = {"format": "wsi-screen-corrections", "input_sha256": report["input"]["sha256"], "corrections": []}
    corr = tmp_path / "c.json"
    corr.write_text(json.dumps(doc))
    res = CliRunner().invoke(main, ["review", "apply", str(folder), str(corr)])
    assert res.exit_code == 0, res.output
    warning = next(line for line in res.output.splitlines() if line.startswith("warning:"))
    assert "summary.parquet: cannot update the batch summary" in warning
    assert "Traceback" not in res.output
    assert (out / "summary.parquet").read_bytes() == b"not parquet\n"
    assert next(r for r in read_summary(out) if r["input"] == "a_field.png")["reviewed"] == "true"
