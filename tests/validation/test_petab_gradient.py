"""Sensitivity-based gradients of the PEtab objective against central finite differences.

The finite differences are central differences at steps 2h and h (h = 1e-4 on the parameter
scales), Richardson-extrapolated to remove the O(h^2) term, with simulations at rtol 1e-12 /
atol 1e-14; the sensitivity gradient runs at rtol 1e-10 / atol 1e-12.  The extrapolation is
needed: Zheng_PNAS2012's objective is so curved near its nominal point (third derivatives of
~1e5) that a plain central difference at h = 1e-4 is off by ~1e-3 absolute.
Criterion per component: ``|g - fd| <= 1e-3 |fd| + floor`` with the absolute floor
``floor = 1e-3 max_k |fd_k|``.  Why a floor: the central difference has truncation error
(``O(h^4)`` after extrapolation) and round-off error ``~ eps_int |nllh| / h`` (eps_int ~ 1e-11, the
integrator's error at rtol 1e-12, times nllh of up to ~1e3) -- about 1e-5 to 1e-4 in absolute
terms whatever the size of the component, so a component that is small compared with the
gradient's norm (an almost flat direction) cannot be checked relatively; 1e-3 of the largest
component is well above both errors and still 1e-3 of the scale of the gradient.  The largest
relative error seen on the passing components is printed by the failure message.

Zheng_PNAS2012 has a preequilibration: its gradient checks the steady-state sensitivities
(``J S* = -df/dp`` with the model's conservation laws) and their hand-over to the simulation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scalebridge.errors import UnsupportedFeatureError
from scalebridge.infer.petab_gradient import PetabGradient, petab_gradient
from scalebridge.infer.petab_problem import load_petab

ROOT = Path(__file__).resolve().parents[1] / "data" / "petab-benchmark"
H = 1e-4
REL = 1e-3


def _yaml(model: str) -> Path:
    return ROOT / model / f"{model}.yaml"


def _central_differences(model: str, x: np.ndarray) -> np.ndarray:
    """Central differences at steps 2h and h, Richardson-extrapolated (error O(h^4))."""
    fine = load_petab(_yaml(model), rtol=1e-12, atol=1e-14)

    def central(step: float) -> np.ndarray:
        out = np.zeros_like(x)
        for i in range(len(x)):
            e = np.zeros_like(x)
            e[i] = step
            out[i] = (fine.evaluate(x + e).nllh - fine.evaluate(x - e).nllh) / (2 * step)
        return out

    return (4.0 * central(H) - central(2 * H)) / 3.0


@pytest.mark.parametrize(
    "model",
    [
        "Boehm_JProteomeRes2014",
        "Elowitz_Nature2000",
        "Fujita_SciSignal2010",
        "Zheng_PNAS2012",
        "Perelson_Science1996",
        "Raia_CancerResearch2011",
    ],
)
def test_gradient_matches_central_differences(model: str):
    pb = load_petab(_yaml(model), rtol=1e-10, atol=1e-12)
    x = pb.x_nominal
    nllh, g = petab_gradient(pb, x)
    assert nllh == pytest.approx(pb.evaluate(x).nllh, rel=1e-6)
    fd = _central_differences(model, x)
    floor = REL * np.max(np.abs(fd))
    bad = np.abs(g - fd) > REL * np.abs(fd) + floor
    assert not np.any(bad), dict(
        zip(np.array(pb.estimated_ids)[bad], np.c_[g[bad], fd[bad]].tolist(), strict=True)
    )
    # the check is not vacuous: most components are checked relatively, not by the floor
    assert np.mean(np.abs(fd) > floor) > 0.3


def test_gradient_at_a_point_away_from_nominal():
    # Off the nominal point the gradient is larger and every term of it matters.
    model = "Zheng_PNAS2012"
    pb = load_petab(_yaml(model), rtol=1e-10, atol=1e-12)
    x = pb.x_nominal + np.random.default_rng(1).uniform(-0.2, 0.2, len(pb.x_nominal))
    _, g = PetabGradient(pb).gradient(x)
    fd = _central_differences(model, x)
    np.testing.assert_allclose(g, fd, rtol=REL, atol=REL * np.max(np.abs(fd)))


def test_measurement_sensitivities_are_consistent():
    pb = load_petab(_yaml("Boehm_JProteomeRes2014"))
    grad = PetabGradient(pb)
    ms = grad.measurement_sensitivities()
    res = pb.evaluate()
    np.testing.assert_allclose(ms.simulation, res.simulations["simulation"], rtol=1e-8)
    assert ms.llh == pytest.approx(res.llh, rel=1e-8)
    assert ms.chi2 == pytest.approx(res.chi2, rel=1e-8)
    # Gauss-Newton identity for normal noise with fixed sigma: grad = -J^T r (for terms whose
    # sigma does not depend on x)
    fixed = ~np.any(ms.dsigma_dx != 0.0, axis=1)
    sub = ms.subset(fixed)
    np.testing.assert_allclose(sub.gradient(), sub.residual_jacobian().T @ sub.residuals())


def test_events_are_refused_naming_the_event(tmp_path):
    import shutil

    src = ROOT / "Boehm_JProteomeRes2014"
    dst = tmp_path / "Boehm"
    shutil.copytree(src, dst)
    model = dst / "model_Boehm_JProteomeRes2014.xml"
    text = model.read_text()
    event = (
        '<listOfEvents><event id="dose_event" useValuesFromTriggerTime="true">'
        "<trigger><math "
        'xmlns="http://www.w3.org/1998/Math/MathML"><apply><gt/><csymbol encoding="text" '
        'definitionURL="http://www.sbml.org/sbml/symbols/time"> time </csymbol><cn> 10 </cn>'
        "</apply></math></trigger><listOfEventAssignments><eventAssignment "
        'variable="STAT5A"><math xmlns="http://www.w3.org/1998/Math/MathML"><cn> 1 </cn>'
        "</math></eventAssignment></listOfEventAssignments></event></listOfEvents>"
    )
    model.write_text(text.replace("</model>", event + "</model>"))
    pb = load_petab(dst / "Boehm_JProteomeRes2014.yaml")
    with pytest.raises(UnsupportedFeatureError, match="dose_event"):
        PetabGradient(pb)
