"""Parameters from data: structural identifiability (this part) -- PEtab problems, estimation,
Fisher information and profiles are added by their own modules.

Structural identifiability (:mod:`scalebridge.infer.structural`,
:mod:`scalebridge.infer.datasets`)::

    from scalebridge.infer import structural_identifiability
    res = structural_identifiability("model.txt")       # ODE text, SBML, Antimony or a model
    res.parameters            # {"k1": "globally", "k2": "non-identifiable", ...}
    res.combinations          # identifiable combinations, e.g. koff/kon
"""

from __future__ import annotations

from .datasets import (
    DatasetsResult,
    MeasurementSuggestion,
    identifiability_across_datasets,
    suggest_measurements,
)
from .structural import (
    LABELS,
    Combination,
    IdentifiabilityResult,
    structural_identifiability,
    with_outputs,
)

__all__ = [
    "LABELS",
    "Combination",
    "DatasetsResult",
    "IdentifiabilityResult",
    "MeasurementSuggestion",
    "identifiability_across_datasets",
    "structural_identifiability",
    "suggest_measurements",
    "with_outputs",
]
