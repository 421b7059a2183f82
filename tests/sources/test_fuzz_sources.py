"""Fuzzing the sources: mutated images fail with a one-line error, never a traceback.

A short hypothesis budget runs in CI; ``benchmarks/fuzz_sources.py`` runs thousands of cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from _fuzz_sources import exercise  # noqa: E402
from _fuzz_sources import mutate  # noqa: E402
from _fuzz_sources import seeds  # noqa: E402
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

edits = st.lists(
    st.tuples(
        st.sampled_from(["truncate", "flip", "insert", "overwrite", "size"]),
        st.integers(0, (1 << 16) - 1),
        st.binary(min_size=1, max_size=16),
    ),
    min_size=1,
    max_size=4,
)


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return seeds(tmp_path_factory.mktemp("fuzz_seeds"))


def test_the_seeds_themselves_read(seed_files: dict[str, bytes], tmp_path: Path) -> None:
    for name, data in seed_files.items():
        path = tmp_path / f"seed{name if name.startswith('.') else '_' + name}"
        path.write_bytes(data)
        assert exercise(path) == "ok", name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["png", ".jpg", ".bmp", "16bit.png", "plain.tif", "pyramid.tiff"]), ed=edits)
def test_mutated_inputs_fail_cleanly(
    seed_files: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory, kind: str, ed: list
) -> None:
    key = ".png" if kind == "png" else kind
    suffix = "." + key.rsplit(".", 1)[-1]
    path = tmp_path_factory.mktemp("fuzz") / f"case{suffix}"
    path.write_bytes(mutate(seed_files[key], ed))
    assert exercise(path) in {"ok", "read"}
