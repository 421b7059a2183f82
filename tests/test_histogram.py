"""channel_percentiles gives np.percentile's values from histograms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wsi_screen.histogram import channel_percentiles


@settings(max_examples=200, deadline=None)
@given(
    img=arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 4))),
    q=st.floats(0.0, 100.0),
)
def test_matches_numpy_percentile(img: np.ndarray, q: float) -> None:
    ref = np.percentile(img.reshape(-1, img.shape[2]), q, axis=0)
    assert np.array_equal(channel_percentiles(img, q), ref)


def test_a_field_thumbnail_and_a_strided_view() -> None:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(200, 30, (860, 1024, 3)), 0, 255).astype(np.uint8)
    view = img[::2, 1::3]
    for a in (img, view):
        for q in (0.0, 0.5, 50.0, 99.5, 100.0):
            assert np.array_equal(channel_percentiles(a, q), np.percentile(a.reshape(-1, 3), q, axis=0))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        channel_percentiles(np.zeros((4, 4, 3), np.float32), 50)
    with pytest.raises(ValueError, match="non-empty"):
        channel_percentiles(np.zeros((0, 4, 3), np.uint8), 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        channel_percentiles(np.zeros((4, 4, 3), np.uint8), 101)
