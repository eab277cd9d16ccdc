"""Timescale analysis and model reduction.

* :mod:`~scalebridge.reduce.timescales` -- eigenvalue gaps, the ratio eps and the fast variables
  along a trajectory;
* :mod:`~scalebridge.reduce.manifold` -- the critical manifold y = h(x) (numerical continuation,
  closed form by sympy) and its stability;
* :mod:`~scalebridge.reduce.qssa` -- the reduction itself: reduced networks, error report,
  Michaelis-Menten laws, the built-in receptor uptake example;
* :mod:`~scalebridge.reduce.regimes` -- which description (CME/SSA, CLE, ODE) fits each species
  and reaction, the partition the hybrid simulator uses.
"""

from __future__ import annotations

from .manifold import CriticalManifold, StabilityReport
from .qssa import (
    MichaelisMenten,
    Reduction,
    ReductionErrorReport,
    michaelis_menten_form,
    receptor_uptake,
    reduce,
)
from .regimes import (
    ReactionAdvice,
    RegimeReport,
    RegimeThresholds,
    SpeciesAdvice,
    advise_regimes,
)
from .timescales import ReductionRefused, TimescaleReport, analyze_timescales

__all__ = [
    "CriticalManifold",
    "MichaelisMenten",
    "ReactionAdvice",
    "Reduction",
    "ReductionErrorReport",
    "ReductionRefused",
    "RegimeReport",
    "RegimeThresholds",
    "SpeciesAdvice",
    "StabilityReport",
    "TimescaleReport",
    "advise_regimes",
    "analyze_timescales",
    "michaelis_menten_form",
    "receptor_uptake",
    "reduce",
]
