"""The counting rules a report page applies live, and the classes a reviewer may assign.

One definition: the page's script (templates/aggregate.js) mirrors :func:`wsi_screen.aggregate.summarize`
and takes every class group, cut-off and threshold from :func:`page_rules`, i.e. from the
configuration echoed in the report; it holds no rule of its own.

Reviewers may assign any class of the review scheme (``report.review_classes``: the 21 Matek
classes unless configured), whatever the model covers. The reviewed figures are computed over the
model's classes plus the scheme classes the reviewer used (:func:`figure_classes`); figures that
depend on a class the model cannot call are lower bounds, which ``summarize(model_classes=...)``
states.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from wsi_screen.aggregate import MAX_CELLS_TO_DECIDE
from wsi_screen.classes import MATEK_CLASSES
from wsi_screen.config import AggregateConfig


def page_rules(cfg: AggregateConfig) -> dict[str, Any]:
    """The aggregation rules as plain data for the page, plus the texts its messages quote.

    ``text`` holds values as Python prints them in flag messages (``2.0``, not ``2``), so the
    page's messages read exactly as report.json's.
    """
    rules: dict[str, Any] = dataclasses.asdict(cfg)
    for key, value in list(rules.items()):
        if isinstance(value, tuple):
            rules[key] = list(value)
    hc = cfg.hairy_cell
    rules["matek_classes"] = list(MATEK_CLASSES)
    rules["max_cells_to_decide"] = MAX_CELLS_TO_DECIDE
    rules["text"] = {"hairy_min_confidence": str(hc.min_confidence), "hairy_min_percent": str(hc.min_percent),
                     "max_artefact_percent": f"{cfg.max_artefact_percent:g}"}  # fmt: skip
    return rules


def review_classes(model_classes: Iterable[str], scheme: Iterable[str] | None) -> list[str]:
    """Classes a reviewer may assign: the model's, then the scheme's others (Matek 21 by default)."""
    model = list(model_classes)
    extra = [c for c in (scheme if scheme is not None else MATEK_CLASSES) if c not in model]
    return list(dict.fromkeys([*model, *extra]))


def figure_classes(
    model_classes: Iterable[str], scheme: Iterable[str] | None, labels: Iterable[str]
) -> tuple[str, ...]:
    """Classes the figures cover: the model's, then the review classes in use (in scheme order)."""
    model = list(model_classes)
    used = set(labels)
    return tuple([*model, *(c for c in review_classes(model, scheme) if c not in model and c in used)])


def configured_review_classes(report: dict[str, Any]) -> list[str] | None:
    """The review scheme a report's echoed configuration names (None: the Matek 21 default)."""
    value = ((report.get("config") or {}).get("report") or {}).get("review_classes")
    return list(value) if value else None
