"""Forward sensitivities against closed forms and central finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import scalebridge as sb
from scalebridge.errors import UnsupportedFeatureError
from scalebridge.infer.sensitivity import SensitivityModel, forward_sensitivities

T = np.linspace(0.0, 4.0, 9)


def test_decay_matches_closed_form():
    # A -> B in a compartment of size 2 (concentrations): A = A0 exp(-k t).
    net = sb.from_antimony(
        "compartment c = 2; species A in c = 3; species B in c = 0\nk = 0.7\nR1: A -> B; k*A*c"
    )
    r = forward_sensitivities(net, ["k", "A"], T, rtol=1e-10, atol=1e-12)
    a = r.states.index("A")
    b = r.states.index("B")
    e = np.exp(-0.7 * T)
    np.testing.assert_allclose(r.x[:, a], 3.0 * e, rtol=1e-8)
    np.testing.assert_allclose(r.s[:, a, 0], -T * 3.0 * e, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(r.s[:, a, 1], e, rtol=1e-7)
    # B = A0 (1 - exp(-k t)): dB/dk = t A0 exp(-k t), dB/dA0 = 1 - exp(-k t)
    np.testing.assert_allclose(r.s[:, b, 0], T * 3.0 * e, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(r.s[:, b, 1], 1.0 - e, rtol=1e-7, atol=1e-10)


NONLINEAR = """
compartment c = 0.5
species S in c = 2; species P in c = 0; species E in c
E = 0.1 * S0
S0 = 4
kcat = 1.3; Km = 0.8; kd = 0.2; h = 2
R1: S -> P; c * kcat * Etot * S^h / (Km^h + S^h)
R2: P -> ; c * kd * P
Etot := E * 2
"""


def test_nonlinear_model_matches_central_differences():
    net = sb.from_antimony(NONLINEAR)
    params = ["kcat", "Km", "kd", "h", "S0", "S"]
    sm = SensitivityModel(net, params)
    r = sm.solve(T, {}, rtol=1e-11, atol=1e-13)
    base = {"kcat": 1.3, "Km": 0.8, "kd": 0.2, "h": 2.0, "S0": 4.0, "S": 2.0}
    for j, p in enumerate(params):
        step = 1e-5 * base[p]
        hi = sm.solve(T, {p: base[p] + step}, rtol=1e-11, atol=1e-13).x
        lo = sm.solve(T, {p: base[p] - step}, rtol=1e-11, atol=1e-13).x
        fd = (hi - lo) / (2 * step)
        np.testing.assert_allclose(r.s[:, :, j], fd, rtol=1e-5, atol=1e-7, err_msg=p)
    # the sensitivity to S0 (through the initial assignment of E) is not zero
    assert np.max(np.abs(r.s[:, :, params.index("S0")])) > 1e-2


def test_events_are_refused():
    net = sb.from_antimony("species A = 1\nk = 1\nR: A -> ; k*A\nat time > 1: k = 2")
    with pytest.raises(UnsupportedFeatureError, match="events"):
        SensitivityModel(net, ["k"])


def test_rate_rule_on_parameter_is_refused():
    net = sb.from_antimony("species A = 1\nk = 1\nR: A -> ; k*A\nk' = -0.1")
    with pytest.raises(UnsupportedFeatureError, match="rate rule"):
        SensitivityModel(net, ["k"])
