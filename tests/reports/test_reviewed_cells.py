from __future__ import annotations

import numpy as np
import pytest
from _fake import fake_calls

from wsi_screen.aggregate import summarize
from wsi_screen.config import AggregateConfig
from wsi_screen.reports.cells_table import cells_frame
from wsi_screen.reports.reviewed import AddedCell
from wsi_screen.reports.reviewed import CellEdits
from wsi_screen.reports.reviewed import apply_edits
from wsi_screen.reports.reviewed import final_classes
from wsi_screen.reports.reviewed import model_confidence
from wsi_screen.reports.reviewed import review_inputs

MODEL8 = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO")


@pytest.fixture
def frame():
    calls, _ = fake_calls(30, 1000, 800, seed=3, classes=MODEL8)
    return cells_frame(calls)


def test_reclassify_remove_and_add_cells(frame):
    preds = frame["predicted_class"].to_list()
    edits = CellEdits(
        classes={0: "EBO", 1: "EBO", 2: "PLM", 3: preds[3]},
        removed={4: "duplicate", 5: "not_a_cell"},
        added=(AddedCell(100.0, 120.0, "EBO", "missed by the detector"),),
        comments={0: "nucleated red cell"},
    )
    new, changes = apply_edits(frame, edits)
    assert new.height == 31 and new["cell_id"].to_list()[-1] == 30
    final = final_classes(new)
    assert final[:3] == ["EBO", "EBO", "PLM"] and final[3] == preds[3]
    assert final[4] is None and final[5] is None and final[30] == "EBO"
    assert new["reviewed_class"].to_list()[3] is None  # back to the model's class: no correction
    assert new["origin"].to_list()[-1] == "reviewer" and new["predicted_class"].to_list()[-1] is None
    kinds = {c["cell_id"]: c["kind"] for c in changes}
    assert kinds == {0: "reclassified", 1: "reclassified", 2: "reclassified", 4: "removed_duplicate",
                     5: "removed_not_a_cell", 30: "added"}  # fmt: skip
    assert next(c for c in changes if c["cell_id"] == 0)["comment"] == "nucleated red cell"
    again, changes2 = apply_edits(new, CellEdits(classes={4: "LYT"}))  # reclassifying restores it
    assert final_classes(again)[4] == "LYT" and changes2[0]["kind"] == "restored"
    assert again.height == 31


def test_reviewed_figures_cover_classes_the_model_lacks(frame):
    edits = CellEdits(classes={0: "EBO", 1: "EBO", 2: "EBO", 3: "PLM"}, removed={4: "duplicate"})
    new, _ = apply_edits(frame, edits)
    labels, probs, names = review_inputs(new, list(MODEL8), None)
    assert names == (*MODEL8, "EBO", "PLM")  # Matek order of the classes in use
    assert len(labels) == probs.shape[0] == 29
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    s = summarize(labels, probs, names, AggregateConfig())
    assert s["differential"]["EBO"]["count"] == 3 and s["differential"]["PLM"]["count"] == 1
    assert s["me_ratio"]["status"] == "assessed" and s["me_ratio"]["erythroid"] == 3
    assert s["cells_detected"] == 29
    assert len(model_confidence(new, list(MODEL8))) == 30  # the model's detections as screened
