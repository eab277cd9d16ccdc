"""Couplings between scales.

* :mod:`~scalebridge.couple.pipeline` -- the hierarchical (bottom-up) pipeline: a molecular
  network reduced by QSSA to a cell uptake law, a tissue sink with the effective diffusivity of
  the cell problem, the tissue PDE and its morphogen gradient, with the timescales that say
  whether the hierarchy holds (:class:`HierarchicalPipeline`).
"""

from .pipeline import (
    SEPARATION,
    DiffusivityStage,
    GradientStage,
    HierarchicalPipeline,
    MolecularStage,
    SinkStage,
    Timescales,
    TimescaleWarning,
    TissueStage,
    UptakeLaw,
)

__all__ = [
    "SEPARATION",
    "DiffusivityStage",
    "GradientStage",
    "HierarchicalPipeline",
    "MolecularStage",
    "SinkStage",
    "TimescaleWarning",
    "Timescales",
    "TissueStage",
    "UptakeLaw",
]
