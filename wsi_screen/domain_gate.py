"""The out-of-domain gate in the report: ``qc.domain`` and the flags it makes unassessable.

A classifier whose bundle carries a domain reference judges each input against what the model saw
in training (:meth:`wsi_screen.classifiers.domain.DomainReference.judge`). When an input is out
of domain, a blast % or hairy-cell call would be confident nonsense: those flags become
``not_assessable`` with the reason, instead of guessing.

A verdict is ``borderline`` when its score lies within ``aggregate.domain_margin`` of the
threshold (foreign blood fields scored 1.048, 0.993 and 1.057 against 1.0 as the detector and
``--mpp`` changed) or when an in-domain verdict was made on fewer cells than the threshold was
fitted on (too few to clear the input): the verdict the score leans to is kept as ``verdict``, and the gated flags are not decided
(``indeterminate``, with the reason) rather than decided either way.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from wsi_screen.aggregate import Flag
    from wsi_screen.config import AggregateConfig

OUT_OF_DOMAIN = "out_of_domain"
IN_DOMAIN = "in_domain"
BORDERLINE = "borderline"
NO_REFERENCE = {
    "status": "not_assessed",
    "score": None,
    "threshold": None,
    "reasons": [
        "the model carries no domain reference: whether the input resembles its training data is unknown"
    ],
}


def domain_qc(judgement: dict[str, Any] | None, margin: float = 0.0) -> dict[str, Any]:
    """The report's ``qc.domain`` block: the judgement, or ``not_assessed`` without a reference.

    A verdict within ``margin`` of its threshold, or an in-domain verdict made on fewer cells than
    the threshold was fitted on (``fitted_on_cells``), becomes ``borderline`` (its leaning kept as
    ``verdict``, the reason first in ``reasons``); an input scored out of domain beyond the margin
    stays out of domain on however few cells (its flags are not assessable either way). A block that is already ``borderline`` (a reviewed report's) is
    kept as it is.
    """
    if judgement is None:
        return dict(NO_REFERENCE)
    keep = (
        "status",
        "verdict",
        "score",
        "threshold",
        "margin",
        "reasons",
        "n_cells",
        "fitted_on_cells",
        "signals",
    )
    block = {k: judgement[k] for k in keep if k in judgement}
    if block.get("status") not in (IN_DOMAIN, OUT_OF_DOMAIN):
        return block
    block["margin"] = margin
    score, threshold = block.get("score"), block.get("threshold")
    n, fitted = block.get("n_cells"), block.get("fitted_on_cells")
    reasons = list(block.get("reasons") or [])
    why = []
    if (
        isinstance(score, int | float)
        and isinstance(threshold, int | float)
        and abs(score - threshold) < margin
    ):
        why.append(
            f"score {score:.3f} within {margin:g} of the threshold {threshold:g}: the verdict "
            f"({block['status'].replace('_', ' ')}) could flip with the detector or the pixel size"
        )
    # too few cells to clear an input; one scored out of domain beyond the margin stays out of domain
    few = isinstance(n, int) and isinstance(fitted, int) and n < fitted
    few = few and not (block["status"] == OUT_OF_DOMAIN and isinstance(score, int | float) and not why)
    if few and not any(r.startswith(f"only {n} cell(s)") for r in reasons):
        why.append(f"only {n} cell(s); thresholds were fitted on groups of {fitted} or more")
    if why or few:
        block["verdict"], block["status"] = block["status"], BORDERLINE
        block["reasons"] = why + reasons
    return block


def domain_text(domain: dict[str, Any] | None) -> str:
    """The domain state in a few words, with its score: ``in domain (score 0.62 / 1.00)``."""
    if not isinstance(domain, dict) or not domain:
        return "not assessed"
    status = str(domain.get("status") or "not_assessed").replace("_", " ")
    score, threshold = domain.get("score"), domain.get("threshold")
    if not isinstance(score, int | float) or not isinstance(threshold, int | float):
        return status
    margin = domain.get("margin")
    band = f" ± {margin:g}" if isinstance(margin, int | float) and margin else ""
    lean = f", leaning {str(domain['verdict']).replace('_', ' ')}" if domain.get("verdict") else ""
    return f"{status} (score {score:.2f} / {threshold:.2f}{band}{lean})"


def is_gated(name: str) -> bool:
    """Flags that an out-of-domain input makes unassessable: blast cut-offs and hairy cells."""
    return name.startswith("blasts_ge_") or name == "hairy_cells"


def gate_flags(flags: list[Flag], domain: dict[str, Any], cfg: AggregateConfig) -> list[Flag]:
    """``flags`` with every gated flag ``not_assessable`` out of domain, ``indeterminate`` when borderline.

    A borderline verdict decides no gated flag either way (a flag not assessable for another reason
    stays so). aggregate.js ``gateFlags`` does the same on the page.
    """
    status = domain.get("status")
    if not cfg.domain_gate or status not in (OUT_OF_DOMAIN, BORDERLINE):
        return flags
    why = "; ".join(domain.get("reasons") or []) or "the input is unlike the model's training data"
    if status == BORDERLINE:
        return [
            replace(
                f,
                status="indeterminate",
                more_cells_to_decide=None,
                message=f"domain check borderline, not decided: {why} ({f.message})",
            )
            if is_gated(f.name) and f.status != "not_assessable"
            else f
            for f in flags
        ]
    return [
        replace(
            f,
            status="not_assessable",
            more_cells_to_decide=None,
            message=f"out of the model's domain: {why} ({f.message})",
        )
        if is_gated(f.name)
        else f
        for f in flags
    ]
