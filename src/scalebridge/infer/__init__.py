"""Parameters from data: structural identifiability, PEtab problems, forward sensitivities and
the gradient of the PEtab objective, multi-start estimation, Fisher information, profile
likelihoods and the analysis of datasets from several scales.

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

Estimation and practical identifiability (:mod:`.estimate`, :mod:`.fim`, :mod:`.profile`,
:mod:`.practical`)::

    fr = fit(pb, starts=20, seed=0, x0=pb.x_nominal)     # multi-start, parallel
    fisher_information(pb, fr.x_best).unseen             # directions the data cannot see
    profile_likelihood(pb, fr.x_best).table()            # profile CIs and quality flags
    practical_identifiability(pb).format()               # per dataset and combined
"""

from __future__ import annotations

from .datasets import (
    DatasetsResult,
    MeasurementSuggestion,
    identifiability_across_datasets,
    suggest_measurements,
)
from .estimate import FitResult, fit
from .fim import FimResult, fisher_information
from .petab_analysis import PetabReport, run_petab_analysis
from .petab_gradient import MeasurementSensitivities, PetabGradient, petab_gradient
from .petab_problem import PetabProblem, PetabResult, load_petab, petab_llh
from .practical import PracticalReport, practical_identifiability
from .profile import ProfileResult, profile_likelihood
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
    "FimResult",
    "FitResult",
    "IdentifiabilityResult",
    "MeasurementSensitivities",
    "MeasurementSuggestion",
    "PetabGradient",
    "PetabProblem",
    "PetabReport",
    "PetabResult",
    "PracticalReport",
    "ProfileResult",
    "SensitivityModel",
    "SensitivityResult",
    "fisher_information",
    "fit",
    "forward_sensitivities",
    "identifiability_across_datasets",
    "load_petab",
    "petab_gradient",
    "petab_llh",
    "practical_identifiability",
    "profile_likelihood",
    "run_petab_analysis",
    "structural_identifiability",
    "suggest_measurements",
    "with_outputs",
]
