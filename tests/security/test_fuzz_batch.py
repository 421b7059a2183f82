"""Fuzz the whole product as a user hands it files: a batch folder, a model folder, a detector folder.

A batch folder of mutated images of every kind, mutated ``<input>.ids.json`` sidecars (deeply
nested, oversized, of the wrong types, binary garbage, a FIFO) and special files is screened by the
real ``wsi-screen batch`` in a subprocess: it must end (exit 0 or 1), print no traceback and give
every entry of the folder a summary row, a failed one with a stage and a one-line message, within
a memory cap. Separately, every mutated model folder (``model.json`` and ``model.safetensors``) and
detector folder (``detector.json`` and ``weights.safetensors``) handed to ``batch`` or ``run`` must
stop the command with exit 2 and one error line, no traceback, no code run.

The default run holds 42 entries and one folder mutation per command; ``-m slow`` runs the
300-entry batch (issue 31), every folder mutation through the other command too, and random byte
edits of each folder file (exit 0 or 2, never a traceback).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from _fuzz_sources import fuzz_batch_folder
from _fuzz_sources import mutate
from _fuzz_sources import random_edits
from click.testing import CliRunner

from wsi_screen.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIELD = ROOT / "examples" / "data" / "synthetic_field.jpg"
YOLO = ROOT / "wsi_screen" / "models" / "yolo-wbc"
DEFAULT_SIDECARS = (
    "deep_list", "deep_object", "huge_sparse", "just_over_cap", "list", "id_number", "id_escape",
    "garbage", "not_utf8", "truncated",
)  # fmt: skip
"""The bad sidecars of the default run (the slow run has every one of ``bad_sidecars``)."""


def _clean_png() -> bytes:
    """A 320 px crop of the example field: cells to find, screened in a fraction of a second."""
    image = cv2.imread(str(FIELD))
    assert image is not None
    ok, buf = cv2.imencode(".png", image[:320, :320])
    assert ok
    return bytes(buf.tobytes())


# --- the batch folder -------------------------------------------------------------------------


MEMORY_CAP = 8 << 30
"""Address space the batch may use: an input that would take the machine's memory (and get the
batch OOM-killed, summary unwritten) fails the test with a MemoryError instead."""
PEAK_RSS = 3 << 30
"""Most resident memory the batch of small files may reach (it needs about 1 GiB)."""


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _run_measured(cmd: list[str], log: Path, *, timeout: float) -> tuple[int, str, int]:
    """Run ``cmd`` with :data:`MEMORY_CAP`; its exit code, output and peak resident memory (bytes)."""
    with log.open("w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, preexec_fn=_cap_memory)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the session's
        finally:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, log.read_text(encoding="utf-8", errors="replace"), usage.ru_maxrss * 1024


def _fuzz_batch(tmp_path: Path, bundle: Path, n: int, seed: int, sidecars: Any) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    want = fuzz_batch_folder(src, _clean_png(), n, seed=seed, sidecars=sidecars)
    assert len(want) == len(list(src.iterdir())) == n
    cmd = [sys.executable, "-c", "from wsi_screen.cli import main; main()", "--log-level", "warning"]
    cmd += ["batch", str(src), "-o", str(out), "--model", str(bundle), "--device", "cpu"]
    cmd += ["--input-timeout", "30"]  # a slide declaring 1e10 px of missing tiles may take that long
    returncode, output, peak = _run_measured(cmd, tmp_path / "batch.log", timeout=60 + 3 * n)
    assert returncode in (0, 1), output[-3000:]
    assert peak < PEAK_RSS, f"the batch used {peak / 2**30:.1f} GiB: " + output[-3000:]
    for needle in ("Traceback", "RecursionError", "MemoryError", "Cannot close a running event loop"):
        assert needle not in output, output[-3000:]
    with (out / "summary.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["input"]: r for r in csv.DictReader(f)}
    missing = sorted(set(want) - set(rows))
    assert not missing, f"no summary row for {missing}"
    for name, expected in want.items():
        row = rows[name]
        status, _, named = expected.partition(":")
        assert status in ("any", row["status"]), (name, expected, row)
        if row["status"] == "failed":
            message = row["error_message"]
            assert row["error_stage"], (name, row)
            assert message and "\n" not in message and named in message, (name, row)
        elif row["status"] == "skipped":
            assert row["error_message"] and not row["output"], (name, row)
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_fuzz_batch(tmp_path: Path, tiny_bundle: Path) -> None:
    _fuzz_batch(tmp_path, tiny_bundle, 42, seed=31, sidecars=DEFAULT_SIDECARS)


@pytest.mark.slow
def test_fuzz_batch_300(tmp_path: Path, tiny_bundle: Path) -> None:
    _fuzz_batch(tmp_path, tiny_bundle, 300, seed=3100, sidecars=None)


# --- model and detector folders ---------------------------------------------------------------

Edit = Callable[[Path], None]


def _json_edit(file: str, **changes: Any) -> Edit:
    """Set keys of the folder's JSON ``file`` (a value of ``...`` removes the key)."""

    def edit(folder: Path) -> None:
        doc = json.loads((folder / file).read_text(encoding="utf-8"))
        for key, value in changes.items():
            if value is ...:
                doc.pop(key, None)
            else:
                doc[key] = value
        (folder / file).write_text(json.dumps(doc), encoding="utf-8")

    return edit


def _raw(file: str, data: bytes | int | str) -> Edit:
    """Replace ``file`` by bytes, a sparse file of ``data`` bytes, a ``fifo``, a ``folder`` or nothing (``absent``)."""

    def edit(folder: Path) -> None:
        path = folder / file
        path.unlink(missing_ok=True)
        if data == "fifo":
            os.mkfifo(path)
        elif data == "folder":
            path.mkdir()
        elif isinstance(data, int):
            with path.open("wb") as f:
                f.truncate(data)
        elif isinstance(data, bytes):
            path.write_bytes(data)

    return edit


def _both(first: Edit, second: Edit) -> Edit:
    def edit(folder: Path) -> None:
        first(folder)
        second(folder)

    return edit


def _safetensors(header: bytes, data: bytes = b"\0" * 16, length: int | None = None) -> bytes:
    """A safetensors file with a hand-written header (``length``: the header size it declares)."""
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def _tensors(file: str, change: Callable[[dict[str, Any], dict[str, str]], None]) -> Edit:
    """Rewrite the folder's safetensors ``file`` after ``change(tensors, metadata)``."""

    def edit(folder: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(folder / file), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        change(state, meta)
        save_file(state, str(folder / file), metadata=meta)

    return edit


def _drop_one(state: dict[str, Any], _: dict[str, str]) -> None:
    del state[sorted(state)[-1]]


def _add_one(state: dict[str, Any], _: dict[str, str]) -> None:
    import torch

    state["extra.weight"] = torch.zeros(4)


def _reshape_one(state: dict[str, Any], _: dict[str, str]) -> None:
    key = max(state, key=lambda k: state[k].numel())
    state[key] = state[key].reshape(-1)


def _header_key(key: str, value: Callable[[Any], Any]) -> Callable[[dict[str, Any], dict[str, str]], None]:
    def change(_: dict[str, Any], meta: dict[str, str]) -> None:
        meta[key] = value(meta.get(key))

    return change


def _arch(change: Callable[[dict[str, Any]], None]) -> Callable[[Any], str]:
    def value(text: Any) -> str:
        arch = json.loads(text)
        change(arch)
        return json.dumps(arch)

    return value


DEEP = b"[" * 30_000 + b"]" * 30_000
PAYLOAD = "PAYLOAD"
EVAL = f"__import__('pathlib').Path('{PAYLOAD}').write_text('code ran')"
MODEL_MUTATIONS: dict[str, Edit] = {
    "architecture hf-hub": _json_edit("model.json", architecture="hf-hub:evil/model"),
    "architecture local-dir": _json_edit("model.json", architecture="local-dir:/tmp"),
    "architecture pretrained tag": _json_edit("model.json", architecture="resnet18.a1_in1k"),
    "architecture path": _json_edit("model.json", architecture="../../evil"),
    "architecture URL": _json_edit("model.json", architecture="http://127.0.0.1:9/m"),
    "architecture number": _json_edit("model.json", architecture=5),
    "architecture unknown": _json_edit("model.json", architecture="no_such_network"),
    "architecture missing": _json_edit("model.json", architecture=...),
    "architecture another network": _json_edit("model.json", architecture="resnet18"),
    "architecture vit, weights resnet": _json_edit("model.json", architecture="vit_tiny_patch16_224"),
    "kwargs embed_dim and depth": _json_edit(
        "model.json", architecture="vit_tiny_patch16_224", model_kwargs={"embed_dim": 8192, "depth": 24}
    ),
    "kwargs pretrained": _json_edit("model.json", model_kwargs={"pretrained": True}),
    "kwargs pretrained_cfg_overlay": _json_edit(
        "model.json", model_kwargs={"pretrained_cfg_overlay": {"file": "/etc/passwd"}}
    ),
    "kwargs checkpoint_path": _json_edit("model.json", model_kwargs={"checkpoint_path": "/etc/passwd"}),
    "kwargs 100,000 keys": _json_edit("model.json", model_kwargs={f"k{i}": i for i in range(100_000)}),
    "kwargs infinite rate": _json_edit("model.json", model_kwargs={"drop_rate": 1e308 * 10}),
    "kwargs rate a string": _json_edit("model.json", model_kwargs={"drop_rate": "0.1"}),
    "kwargs a list": _json_edit("model.json", model_kwargs=[1, 2]),
    "class_names one more than the weights": _json_edit("model.json", class_names=[f"C{i}" for i in range(9)]),
    "class_names 100,000": _json_edit("model.json", class_names=[f"C{i}" for i in range(100_000)]),
    "class_names a number": _json_edit("model.json", class_names=8),
    "class_names nested": _json_edit("model.json", class_names=[["ART"]] * 8),
    "input_size huge": _json_edit("model.json", input_size=100_000),
    "input_size negative": _json_edit("model.json", input_size=-1),
    "input_size not a number": _json_edit("model.json", input_size="abc"),
    "input_size a float": _json_edit("model.json", input_size=1e308),
    "patch_size_px zero": _json_edit("model.json", patch_size_px=0),
    "mean too short": _json_edit("model.json", mean=[0.5]),
    "std zero": _json_edit("model.json", std=[0, 0, 0]),
    "mpp negative": _json_edit("model.json", mpp=-1),
    "mpp huge": _json_edit("model.json", mpp=1e308),
    "interpolation unknown": _json_edit("model.json", interpolation="evil"),
    "domain file outside": _json_edit("model.json", domain={"file": "../../etc/passwd"}),
    "domain not an object": _json_edit("model.json", domain=[1]),
    "model.json deep": _raw("model.json", DEEP),
    "model.json 17 MiB": _raw("model.json", 17 << 20),
    "model.json not UTF-8": _raw("model.json", b'{"name": "\xff\xfe"}'),
    "model.json garbage": _raw("model.json", bytes(range(256)) * 8),
    "model.json a list": _raw("model.json", b"[]"),
    "model.json empty": _raw("model.json", b""),
    "model.json a FIFO": _raw("model.json", "fifo"),
    "model.json a folder": _raw("model.json", "folder"),
    "weights garbage": _raw("model.safetensors", b"\x07" * 800),
    "weights empty": _raw("model.safetensors", b""),
    "weights a FIFO": _raw("model.safetensors", "fifo"),
    "weights a folder": _raw("model.safetensors", "folder"),
    "weights 64 MiB of zeros": _raw("model.safetensors", 64 << 20),
    "header length 2**60": _raw("model.safetensors", _safetensors(b"{}", length=1 << 60)),
    "header deep": _raw("model.safetensors", _safetensors(DEEP)),
    "header not UTF-8": _raw("model.safetensors", _safetensors(b'{"\xff": 1}')),
    "header a list": _raw("model.safetensors", _safetensors(b"[1, 2]")),
    "header offsets past the end": _raw(
        "model.safetensors", _safetensors(b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16000]}}')
    ),
    "header shape 2**80": _raw(
        "model.safetensors",
        _safetensors(b'{"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776], "data_offsets": [0, 16]}}'),
    ),
    "header dtype unknown": _raw(
        "model.safetensors", _safetensors(b'{"w": {"dtype": "X99", "shape": [4], "data_offsets": [0, 16]}}')
    ),
    "header negative offset": _raw(
        "model.safetensors", _safetensors(b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}}')
    ),
    "tensor missing": _tensors("model.safetensors", _drop_one),
    "tensor extra": _tensors("model.safetensors", _add_one),
    "tensor of another shape": _tensors("model.safetensors", _reshape_one),
}  # fmt: skip

DETECTOR_MUTATIONS: dict[str, Edit] = {
    "architecture a -world model": _json_edit("detector.json", architecture="yolov8s-worldv2"),
    "architecture yoloe": _json_edit("detector.json", architecture="yoloe-11s"),
    "architecture rtdetr": _json_edit("detector.json", architecture="rtdetr-l"),
    "architecture a YAML path": _json_edit("detector.json", architecture="../evil-world.yaml"),
    "architecture a URL": _json_edit("detector.json", architecture="http://127.0.0.1:9/m"),
    "architecture a number": _json_edit("detector.json", architecture=5),
    "architecture a list": _json_edit("detector.json", architecture=["yolo11n"]),
    "architecture another scale": _json_edit("detector.json", architecture="yolo11s"),
    "name a URL": _json_edit("detector.json", name="http://127.0.0.1:9/evil"),
    "name a gRPC URL": _json_edit("detector.json", name="grpc://127.0.0.1:9/evil"),
    "name a path": _json_edit("detector.json", name="models/evil-world"),
    "name an escape": _json_edit("detector.json", name="\x1b[2J"),
    "name 1000 characters": _json_edit("detector.json", name="x" * 1000),
    "name empty": _json_edit("detector.json", name=""),
    "name a number": _json_edit("detector.json", name=5),
    "mpp a string": _json_edit("detector.json", mpp="abc"),
    "mpp huge": _json_edit("detector.json", mpp=1e308),
    "cell_classes negative": _json_edit("detector.json", cell_classes=[-1]),
    "cell_classes a string": _json_edit("detector.json", cell_classes="all"),
    "conf 5": _json_edit("detector.json", conf=5),
    "detector.json deep": _raw("detector.json", DEEP),
    "detector.json 17 levels": _raw("detector.json", b'{"a": ' * 17 + b"1" + b"}" * 17),
    "detector.json 2 MiB": _raw("detector.json", 2 << 20),
    "detector.json not UTF-8": _raw("detector.json", b'{"name": "\xff\xfe"}'),
    "detector.json garbage": _raw("detector.json", bytes(range(256)) * 8),
    "detector.json a list": _raw("detector.json", b"[]"),
    "weights garbage": _raw("weights.safetensors", b"\x07" * 800),
    "weights empty": _raw("weights.safetensors", b""),
    "weights truncated": _raw("weights.safetensors", (YOLO / "weights.safetensors").read_bytes()[:3000]),
    "weights a FIFO": _raw("weights.safetensors", "fifo"),
    "weights 3 GiB of zeros": _raw("weights.safetensors", 3 << 30),
    "weights header deep": _raw("weights.safetensors", _safetensors(DEEP)),
    "weights only a pickle": _both(_raw("weights.safetensors", "absent"), _raw("weights.pt", b"\x80\x04K\x01.")),
    "header format": _tensors("weights.safetensors", _header_key("format", lambda _: "other")),
    "header task": _tensors("weights.safetensors", _header_key("task", lambda _: "segment")),
    "header architecture deep": _tensors("weights.safetensors", _header_key("architecture", lambda _: "[" * 5000)),
    "header architecture 2 MiB": _tensors("weights.safetensors", _header_key("architecture", lambda _: " " * (2 << 20))),
    "header activation eval": _tensors(
        "weights.safetensors", _header_key("architecture", _arch(lambda a: a.update(activation=EVAL)))
    ),
    "header yaml_file of a world model, no architecture in detector.json": _both(
        _json_edit("detector.json", architecture=...),
        _tensors("weights.safetensors", _header_key("architecture", _arch(lambda a: a.update(yaml_file="yolov8s-worldv2.yaml")))),
    ),
    "header yaml_file of another scale": _tensors(
        "weights.safetensors", _header_key("architecture", _arch(lambda a: a.update(yaml_file="yolo11s.yaml")))
    ),
    "header module __import__": _tensors(
        "weights.safetensors",
        _header_key("architecture", _arch(lambda a: a["backbone"].__setitem__(0, [-1, 1, "__import__", ["os"]]))),
    ),
    "header layer widths changed": _tensors(
        "weights.safetensors", _header_key("architecture", _arch(lambda a: a["backbone"][0][3].__setitem__(0, 128)))
    ),
    "header names for 2 classes": _tensors("weights.safetensors", _header_key("names", lambda _: '{"0": "a", "1": "b"}')),
    "tensor missing": _tensors("weights.safetensors", _drop_one),
    "tensor extra": _tensors("weights.safetensors", _add_one),
    "tensor of another shape": _tensors("weights.safetensors", _reshape_one),
}  # fmt: skip


def _argv(command: str, tmp_path: Path, model: Path, detector: Path | None) -> list[str]:
    """``run`` on the clean field, or ``batch`` on a folder holding it, with this model and detector."""
    inputs = tmp_path / "inputs"
    if not inputs.is_dir():
        inputs.mkdir()
        (inputs / "field.png").write_bytes(_clean_png())
    where = [str(inputs / "field.png")] if command == "run" else [str(inputs)]
    argv = ["--log-level", "warning", command, *where, "-o", str(tmp_path / f"out_{command}")]
    argv += ["--model", str(model), "--device", "cpu"]
    if detector is not None:
        argv += ["--detector", "yolo", "--detector-weights", str(detector)]
    return argv


def _refused(command: str, tmp_path: Path, model: Path, detector: Path | None, folder: Path) -> None:
    res = CliRunner().invoke(main, _argv(command, tmp_path, model, detector))
    assert isinstance(res.exception, SystemExit), (repr(res.exception), res.output[-2000:])
    assert res.exit_code == 2, res.output[-2000:]
    assert "Traceback" not in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and str(folder) in errors[0], res.output[-2000:]
    assert not (tmp_path / PAYLOAD).exists()
    assert not list((tmp_path / f"out_{command}").glob("*/report.json"))


def _command(case: str) -> str:
    """The command a case goes through in the default run (the slow run tries both)."""
    return ("run", "batch")[zlib.crc32(case.encode()) % 2]


def _model_case(case: str, command: str, tmp_path: Path, tiny_bundle: Path) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, folder)
    MODEL_MUTATIONS[case](folder)
    _refused(command, tmp_path, folder, None, folder)


def _detector_case(case: str, command: str, tmp_path: Path, tiny_bundle: Path) -> None:
    folder = tmp_path / "detector"
    shutil.copytree(YOLO, folder)
    DETECTOR_MUTATIONS[case](folder)
    _refused(command, tmp_path, tiny_bundle, folder, folder)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in ``tmp_path``, so a payload written to a relative path would land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", sorted(MODEL_MUTATIONS))
def test_mutated_model_folder(case: str, in_tmp: Path, tiny_bundle: Path) -> None:
    _model_case(case, _command(case), in_tmp, tiny_bundle)


@pytest.mark.parametrize("case", sorted(DETECTOR_MUTATIONS))
def test_mutated_detector_folder(case: str, in_tmp: Path, tiny_bundle: Path) -> None:
    _detector_case(case, _command(case), in_tmp, tiny_bundle)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(MODEL_MUTATIONS))
def test_mutated_model_folder_other_command(case: str, in_tmp: Path, tiny_bundle: Path) -> None:
    _model_case(case, {"run": "batch", "batch": "run"}[_command(case)], in_tmp, tiny_bundle)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(DETECTOR_MUTATIONS))
def test_mutated_detector_folder_other_command(case: str, in_tmp: Path, tiny_bundle: Path) -> None:
    _detector_case(case, {"run": "batch", "batch": "run"}[_command(case)], in_tmp, tiny_bundle)


def _edit_randomly(file: str, seed: int) -> Edit:
    """1-3 random byte edits of ``file``; of a safetensors file, of its header only (length fixed up)."""

    def edit(folder: Path) -> None:
        rng = np.random.default_rng(seed)
        data = (folder / file).read_bytes()
        if file.endswith(".safetensors"):
            (n,) = struct.unpack("<Q", data[:8])
            header = mutate(data[8 : 8 + n], random_edits(rng))
            data = struct.pack("<Q", len(header)) + header + data[8 + n :]
        else:
            data = mutate(data, random_edits(rng))
        (folder / file).write_bytes(data)

    return edit


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("file", ["model.json", "model.safetensors", "detector.json", "weights.safetensors"])
def test_randomly_edited_folder(file: str, seed: int, in_tmp: Path, tiny_bundle: Path) -> None:
    """A random edit may leave the folder usable (exit 0) or not (exit 2, one line): never a traceback."""
    model, detector = in_tmp / "bundle", in_tmp / "detector"
    shutil.copytree(tiny_bundle, model)
    shutil.copytree(YOLO, detector)
    folder = model if file.startswith("model") else detector
    _edit_randomly(file, 1000 * seed + zlib.crc32(file.encode()) % 1000)(folder)
    command = ("run", "batch")[seed % 2]
    res = CliRunner().invoke(main, _argv(command, in_tmp, model, detector))
    assert res.exit_code in (0, 2), (res.exit_code, repr(res.exception), res.output[-2000:])
    assert "Traceback" not in res.output
    assert not (in_tmp / PAYLOAD).exists()
    if res.exit_code == 2:
        errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1 and str(folder) in errors[0], res.output[-2000:]
