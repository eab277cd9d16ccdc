"""Timescale analysis: eigenvalues on the conservation surface, eps, participation, fast variables.

Reference values are derived by hand (linear models with known spectra, the 2x2 participation
formula, the receptor Jacobian in independent coordinates) or computed independently with
eigenvectors from ``scipy.linalg.eig``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.linalg as sla

import scalebridge as sb
from scalebridge.errors import ModelError, UnsupportedFeatureError
from scalebridge.reduce import ReductionRefused, analyze_timescales, receptor_uptake
from scalebridge.reduce.timescales import fast_participation, sample_trajectory

CHAIN = """
model chain
  compartment c = 1;
  species X in c = 5, Y in c = 0;
  conv: X -> Y; a*X;
  loss: Y -> ; b*Y;
  a = 0.1; b = 50;
end
"""


def test_linear_chain_eps_and_participation_are_exact():
    # J = [[-a, 0], [a, -b]]: eigenvalues -b (fast, carried by Y alone) and -a.
    net = sb.from_antimony(CHAIN)
    ts = analyze_timescales(net, t_end=40, n_samples=41)
    assert ts.n_fast == 1
    np.testing.assert_allclose(ts.eps, 0.1 / 50, rtol=1e-12)
    np.testing.assert_allclose(ts.lambda_fast, -50.0, rtol=1e-12)
    np.testing.assert_allclose(ts.lambda_slow, -0.1, rtol=1e-12)
    assert ts.fast == ["Y"] and not ts.declared and ts.consistent
    assert ts.participation["Y"] == pytest.approx(1.0, abs=1e-12)
    assert ts.participation["X"] == pytest.approx(0.0, abs=1e-12)
    # 10 time constants of the fast mode (0.2) end within the first sample interval
    assert ts.layer_end == pytest.approx(1.0)


def test_layer_end_counts_fast_time_constants():
    net = sb.from_antimony(CHAIN).with_values({"b": 0.5, "a": 0.001})
    ts = analyze_timescales(net, t_end=100, n_samples=101, layer_time_constants=5)
    assert ts.layer_end == pytest.approx(10.0)  # first sample with t >= 5/0.5


def test_window_floor_on_the_slow_eigenvalue():
    # A slow mode with eigenvalue 0 is counted as changing on the window's scale.
    net = sb.from_antimony(CHAIN).with_values({"a": 0.0})
    ts = analyze_timescales(net, t_end=20, n_samples=21)
    np.testing.assert_allclose(ts.eps, (1 / 20) / 50, rtol=1e-12)


def _two_by_two_participation(J: np.ndarray) -> float:
    """Participation of state 1 in the faster mode: (lambda_f - J22)/(lambda_f - lambda_s)."""
    lam = np.linalg.eigvals(J)
    lf, ls = sorted(lam, key=lambda x: -abs(x))
    return float(((lf - J[1, 1]) / (lf - ls)).real)


@pytest.mark.parametrize(
    "J",
    [
        np.array([[-3.0, 1.0], [2.0, -40.0]]),
        np.array([[-30.0, 5.0], [7.0, -2.0]]),
        np.array([[-10.0, 9.0], [8.0, -11.0]]),
    ],
)
def test_participation_matches_the_two_by_two_formula(J):
    lam = np.abs(np.linalg.eigvals(J))
    p, m = fast_participation(J, math.sqrt(lam.max() * lam.min()))
    assert m == 1
    assert p[0] == pytest.approx(_two_by_two_participation(J), rel=1e-12, abs=1e-14)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_participation_against_eigenvectors_with_a_complex_pair_and_rescaling():
    rng = np.random.default_rng(3)
    V = rng.normal(size=(4, 4))
    A = np.diag([-100.0, -100.0, -1.0, -0.5])
    A[0, 1], A[1, 0] = 30.0, -30.0  # fast complex pair -100 +- 30i
    J = V @ A @ np.linalg.inv(V)
    lam, left, right = sla.eig(J, left=True, right=True)
    fast = np.abs(lam) > 10
    ref = np.zeros(4)
    for k in np.nonzero(fast)[0]:
        lk, rk = left[:, k].conj(), right[:, k]
        ref += (lk * rk / (lk @ rk)).real
    p, m = fast_participation(J, 10.0)
    assert m == 2
    np.testing.assert_allclose(p, ref, atol=1e-9)
    assert p.sum() == pytest.approx(2.0, abs=1e-9)
    # invariant under a change of units of the states
    D = np.diag([1e-3, 2.0, 5e4, 0.7])
    p2, _ = fast_participation(np.linalg.inv(D) @ J @ D, 10.0)
    np.testing.assert_allclose(p2, p, atol=1e-8)


def test_receptor_eigenvalues_on_the_conservation_surface():
    # With R = R_T - C and L + C + Li conserved, the motion is 2-dimensional: in (L, C),
    # J = [[-k_on R, k_on L + k_off], [k_on R, -(k_on L + k_off + k_int)]].
    net = receptor_uptake()
    traj = sample_trajectory(net, np.linspace(0, 600, 7))
    ts = analyze_timescales(traj)
    k_on, k_off, k_int = 0.001, 0.1, 0.2
    for i, z in enumerate(traj.states):
        L, R = z[traj.index("L")], z[traj.index("R")]
        Jr = np.array([[-k_on * R, k_on * L + k_off], [k_on * R, -(k_on * L + k_off + k_int)]])
        ref = np.linalg.eigvals(Jr)
        ref = ref[np.argsort(-np.abs(ref))]
        np.testing.assert_allclose(ts.eigenvalues[i], ref, rtol=1e-10)
        assert ts.eps[i] == pytest.approx(max(abs(ref[1]), 1 / 600) / abs(ref[0]), rel=1e-10)


def test_receptor_fast_variables_detected_with_their_law():
    ts = analyze_timescales(receptor_uptake(), t_end=1200, n_samples=61)
    assert ts.n_fast == 1
    assert sorted(ts.fast) == ["C", "R"]
    assert ts.fast_laws == [{"R": 1, "C": 1}]
    assert ts.participation["L"] < 0.02  # O(R_T/(K_m + L)) = O(1/30)
    assert ts.participation["Li"] < 1e-12  # nothing depends on Li
    assert ts.consistent
    assert ts.eps_max < 0.05
    json.dumps(ts.to_dict())
    assert "fast variables (detected): R, C" in ts.summary()


def test_declared_fast_variables_and_leakage():
    ts = analyze_timescales(receptor_uptake(), t_end=1200, n_samples=31, fast=["C", "R"])
    assert ts.declared and ts.fast == ["C", "R"] and ts.n_fast == 1
    assert np.max(ts.leakage) == pytest.approx(ts.participation["L"], rel=1e-9)


def test_declared_set_spanning_every_direction_is_refused():
    with pytest.raises(ReductionRefused, match="span 2 of the model's 2") as exc:
        analyze_timescales(receptor_uptake(), t_end=100, fast=["L", "R", "C"])
    assert exc.value.reason == "split"


def test_unknown_fast_variable_is_named():
    with pytest.raises(ModelError, match="'Z'"):
        analyze_timescales(receptor_uptake(), t_end=100, fast=["Z"])


def test_single_mode_is_refused():
    net = sb.from_antimony("model one\n species A = 1;\n J: A -> ; k*A;\n k = 1;\nend")
    with pytest.raises(ReductionRefused, match="1 dynamic mode") as exc:
        analyze_timescales(net, t_end=5)
    assert exc.value.reason == "no_separation"


def test_events_are_refused():
    net = sb.from_antimony(CHAIN.replace("  a = 0.1;", "  at (time > 1): X = 5;\n  a = 0.1;"))
    assert net.events
    with pytest.raises(UnsupportedFeatureError, match="events"):
        analyze_timescales(net, t_end=5)
