"""Noise across scales: from molecules to cell phenotypes and tissues (:mod:`.propagation`), and
the least number of cells for a deterministic description (:mod:`.system_size`)."""

from __future__ import annotations

from .propagation import (
    Phenotype,
    PropagationReport,
    TissueReport,
    ensemble_samples,
    fsp_marginal,
    propagate,
    tissue_average,
    tissue_variance,
)

__all__ = [
    "Phenotype",
    "PropagationReport",
    "SystemSizeReport",
    "TissueReport",
    "cells_cle",
    "ensemble_samples",
    "fsp_marginal",
    "least_cells",
    "propagate",
    "tissue_average",
    "tissue_variance",
]


def __getattr__(name: str) -> object:
    # The system-size analysis imports the simulation layer: load it on first use.
    if name in ("SystemSizeReport", "cells_cle", "least_cells"):
        from . import system_size

        return getattr(system_size, name)
    raise AttributeError(f"module 'scalebridge.noise' has no attribute '{name}'")
