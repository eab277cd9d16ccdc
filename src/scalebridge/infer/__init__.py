"""Parameters from data: structural identifiability, PEtab problems, forward sensitivities and
the gradient of the PEtab objective (estimation, Fisher information and profiles are added by
their own modules).

Structural identifiability (:mod:`scalebridge.infer.structural`,
:mod:`scalebridge.infer.datasets`)::

    from scalebridge.infer import structural_identifiability
    res = structural_identifiability("model.txt")       # ODE text, SBML, Antimony or a model
    res.parameters            # {"k1": "globally", "k2": "non-identifiable", ...}
    res.combinations          # identifiable combinations, e.g. koff/kon

PEtab v1 problems (:mod:`scalebridge.infer.petab_problem`)::

    from scalebridge.infer import load_petab
    res = load_petab("problem.yaml").evaluate()   # nominal parameters; or evaluate(x)
    res.llh, res.chi2, res.simulations
"""

from __future__ import annotations

from .datasets import (
    DatasetsResult,
    MeasurementSuggestion,
    identifiability_across_datasets,
    suggest_measurements,
)
from .petab_gradient import PetabGradient, petab_gradient
from .petab_problem import PetabProblem, PetabResult, load_petab, petab_llh
from .sensitivity import SensitivityModel, SensitivityResult, forward_sensitivities
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
    "PetabGradient",
    "PetabProblem",
    "PetabResult",
    "SensitivityModel",
    "SensitivityResult",
    "forward_sensitivities",
    "identifiability_across_datasets",
    "load_petab",
    "petab_gradient",
    "petab_llh",
    "structural_identifiability",
    "suggest_measurements",
    "with_outputs",
]
