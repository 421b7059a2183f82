from __future__ import annotations

import json

import pytest

from wsi_screen.errors import InputError
from wsi_screen.reports.identifiers import read_manifest
from wsi_screen.reports.identifiers import read_sidecar
from wsi_screen.reports.identifiers import resolve_identifiers
from wsi_screen.reports.identifiers import sidecar_path


def test_no_identifier_is_guessed_from_the_file_name(tmp_path):
    src = tmp_path / "PAT-0042_sample-7.svs"
    src.write_bytes(b"x")
    assert resolve_identifiers(src) is None


def test_options_win_over_manifest_and_sidecar(tmp_path):
    src = tmp_path / "a.svs"
    src.write_bytes(b"x")
    sidecar_path(src).write_text(json.dumps({"sample_id": "S-side", "patient_id": "P-side"}))
    (tmp_path / "ids.csv").write_text("input,sample_id,patient_id\na.svs,S-man,P-man\n")
    manifest = read_manifest(tmp_path / "ids.csv")
    ids = resolve_identifiers(src, sample_id=" S-opt ", manifest=manifest)
    assert (ids.sample_id, ids.patient_id, ids.source) == ("S-opt", None, "option")
    ids = resolve_identifiers(src, manifest=manifest)
    assert (ids.sample_id, ids.patient_id, ids.source, ids.file) == ("S-man", "P-man", "manifest", "ids.csv")
    ids = resolve_identifiers(src)
    assert ids.to_dict() == {
        "sample_id": "S-side",
        "patient_id": "P-side",
        "source": "sidecar",
        "file": "a.svs.ids.json",
    }


def test_manifest_rows_match_by_path_or_sha256(tmp_path):
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "sub" / "a.png", tmp_path / "b.png"
    (tmp_path / "ids.csv").write_text("input,sha256,sample_id\nsub/a.png,,S1\n," + "ab" * 32 + ",S2\n")
    m = read_manifest(tmp_path / "ids.csv")
    assert m.lookup(a).sample_id == "S1"
    assert m.lookup(b) is None
    assert m.lookup(b, "AB" * 32).sample_id == "S2"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("input,sample_id,colour\na,1,red\n", r"unknown column\(s\) colour"),
        ("sample_id\nS1\n", r"needs an 'input' or a 'sha256' column"),
        ("input,sample_id\na,S1\na,S2\n", r"row 3: input 'a' is listed twice"),
        ("input,sample_id\na,S\x07\n", r"row 2: sample_id holds control"),
        ("input,sample_id\na," + "x" * 65 + "\n", r"row 2: sample_id is 65 characters long"),
    ],
)
def test_bad_manifests_name_file_and_row(tmp_path, text, match):
    path = tmp_path / "ids.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as e:
        read_manifest(path)
    assert str(path) in str(e.value)


def test_bad_sidecars_name_the_file(tmp_path):
    src = tmp_path / "a.png"
    side = sidecar_path(src)
    for text, match in (("[1]", "expected a JSON object"), ('{"name": "x"}', r"unknown key\(s\) name"),
                        ('{"sample_id": 7}', "sample_id must be a string"), ("{", "not valid JSON")):  # fmt: skip
        side.write_text(text)
        with pytest.raises(InputError, match=match) as e:
            read_sidecar(src)
        assert str(side) in str(e.value)
    side.write_text('{"sample_id": "  "}')
    assert read_sidecar(src) is None
    with pytest.raises(InputError, match="--patient-id"):
        resolve_identifiers(src, patient_id="a\nb")
