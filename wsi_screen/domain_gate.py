"""The out-of-domain gate in the report: ``qc.domain`` and the flags it makes unassessable.

A classifier whose bundle carries a domain reference judges each input against what the model saw
in training (:meth:`wsi_screen.classifiers.domain.DomainReference.judge`). When an input is out
of domain, a blast % or hairy-cell call would be confident nonsense: those flags become
``not_assessable`` with the reason, instead of guessing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from wsi_screen.aggregate import Flag
    from wsi_screen.config import AggregateConfig

OUT_OF_DOMAIN = "out_of_domain"
NO_REFERENCE = {
    "status": "not_assessed",
    "score": None,
    "threshold": None,
    "reasons": [
        "the model carries no domain reference: whether the input resembles its training data is unknown"
    ],
}


def domain_qc(judgement: dict[str, Any] | None) -> dict[str, Any]:
    """The report's ``qc.domain`` block: the judgement, or ``not_assessed`` without a reference."""
    if judgement is None:
        return dict(NO_REFERENCE)
    keep = ("status", "score", "threshold", "reasons", "n_cells", "signals")
    return {k: judgement[k] for k in keep if k in judgement}


def is_gated(name: str) -> bool:
    """Flags that an out-of-domain input makes unassessable: blast cut-offs and hairy cells."""
    return name.startswith("blasts_ge_") or name == "hairy_cells"


def gate_flags(flags: list[Flag], domain: dict[str, Any], cfg: AggregateConfig) -> list[Flag]:
    """``flags`` with every gated flag ``not_assessable`` when ``domain`` says out of domain."""
    if not cfg.domain_gate or domain.get("status") != OUT_OF_DOMAIN:
        return flags
    why = "; ".join(domain.get("reasons") or []) or "the input is unlike the model's training data"
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
