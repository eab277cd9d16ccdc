"""Sensitivity-based gradients of the PEtab objective against central finite differences.

The finite differences use a step of 1e-4 on the parameter scales and simulations at
rtol 1e-12 / atol 1e-14 (the integrator's error, not the step, limits their accuracy); the
sensitivity gradient runs at rtol 1e-10.  Criterion per component:
``|g - fd| <= 1e-3 |fd| + 1e-3 max_k |fd_k|`` (relative 1e-3 with an absolute floor of 1e-3
times the largest gradient component).  Zheng_PNAS2012 needs preequilibration, which the
gradient refuses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scalebridge.errors import UnsupportedFeatureError
from scalebridge.infer.petab_gradient import PetabGradient, petab_gradient
from scalebridge.infer.petab_problem import load_petab

ROOT = Path(__file__).resolve().parents[1] / "data" / "petab-benchmark"


def _yaml(model: str) -> Path:
    return ROOT / model / f"{model}.yaml"


@pytest.mark.parametrize(
    "model", ["Boehm_JProteomeRes2014", "Elowitz_Nature2000", "Fujita_SciSignal2010"]
)
def test_gradient_matches_central_differences(model: str):
    pb = load_petab(_yaml(model), rtol=1e-10, atol=1e-12)
    x = pb.x_nominal
    nllh, g = petab_gradient(pb, x)
    assert nllh == pytest.approx(pb.evaluate(x).nllh, rel=1e-6)
    fine = load_petab(_yaml(model), rtol=1e-12, atol=1e-14)
    h = 1e-4
    fd = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        fd[i] = (fine.evaluate(x + e).nllh - fine.evaluate(x - e).nllh) / (2 * h)
    floor = 1e-3 * np.max(np.abs(fd))
    bad = np.abs(g - fd) > 1e-3 * np.abs(fd) + floor
    assert not np.any(bad), dict(
        zip(np.array(pb.estimated_ids)[bad], np.c_[g[bad], fd[bad]].tolist(), strict=True)
    )


def test_preequilibration_is_refused():
    pb = load_petab(_yaml("Zheng_PNAS2012"))
    with pytest.raises(UnsupportedFeatureError, match="preequilibration"):
        PetabGradient(pb)
