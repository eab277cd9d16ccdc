"""QSSA reduction: critical manifold, Michaelis-Menten law, reduced models, refusals.

References: the hand-derived quasi-steady state of receptor binding (C = R_T L/(K_m + L),
V_max = k_int R_T, K_m = (k_off + k_int)/k_on), the closed-form solution of the
Michaelis-Menten decay (Lambert W), eigenvalues of the linearised full and reduced models at
L = 0, and the known geometry of the cubic f(x, y) = y - y^3/3 - x (fold at x = 2/3, y = 1;
middle branch unstable with df/dy = 1 at y = 0).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sympy
from scipy.optimize import brentq
from scipy.special import lambertw

import scalebridge as sb
from scalebridge.errors import OptionError, UnsupportedFeatureError
from scalebridge.model.sbml import read_sbml, write_sbml
from scalebridge.model.symbolic import sym
from scalebridge.reduce import (
    ReductionRefused,
    michaelis_menten_form,
    receptor_uptake,
    reduce,
)

K_ON, K_OFF, K_INT, R_T, L0 = 0.001, 0.1, 0.2, 10.0, 1000.0
V_MAX, K_M = K_INT * R_T, (K_OFF + K_INT) / K_ON


@pytest.fixture(scope="module")
def receptor():
    return reduce(receptor_uptake(), t_end=1200, n_points=121)


# ---------------------------------------------------------------------------------------------
# The receptor example
# ---------------------------------------------------------------------------------------------
def test_receptor_fast_slow_split(receptor):
    assert sorted(receptor.fast) == ["C", "R"]
    assert receptor.slow == ["L", "Li"]
    assert receptor.manifold.symbolic
    assert receptor.exportable


def test_critical_manifold_is_the_hand_derived_quasi_steady_state(receptor):
    k_on, k_off, k_int, R_T_, L = (sym(n) for n in ("k_on", "k_off", "k_int", "R_T", "L"))
    K_m = (k_off + k_int) / k_on
    h = receptor.manifold.sympy_exprs
    assert sympy.simplify(h["C"] - R_T_ * L / (K_m + L)) == 0
    assert sympy.simplify(h["R"] - R_T_ * K_m / (K_m + L)) == 0


def test_derived_vmax_and_km_equal_the_hand_derived_expressions(receptor):
    (mm,) = receptor.michaelis_menten
    assert mm.reaction == "internalize" and mm.substrate == "L"
    k_on, k_off, k_int, R_T_ = (sym(n) for n in ("k_on", "k_off", "k_int", "R_T"))
    assert sympy.simplify(mm.V_max - k_int * R_T_) == 0
    assert sympy.simplify(mm.K_m - (k_off + k_int) / k_on) == 0
    assert mm.V_max_value == pytest.approx(V_MAX, rel=1e-14)
    assert mm.K_m_value == pytest.approx(K_M, rel=1e-14)


def test_uptake_law_against_a_direct_quasi_steady_state(receptor):
    # Independent of sympy: solve f_C = k_on L (R_T - C) - (k_off + k_int) C = 0 by bisection
    # and compare the uptake k_int C with the collapsed model's rate at the same L.
    red = receptor.network
    rate = red.reaction_map["internalize"].rate
    values = {"Vmax_internalize": V_MAX, "Km_internalize": K_M}
    from scalebridge.model.expr import evaluate

    for L in (0.5, 30.0, 300.0, 2500.0):
        C = brentq(lambda c, L=L: K_ON * L * (R_T - c) - (K_OFF + K_INT) * c, 0.0, R_T, xtol=1e-14)
        assert evaluate(rate, {**values, "L": L}) == pytest.approx(K_INT * C, rel=1e-12)


def test_collapsed_model_is_one_uptake_reaction(receptor):
    red = receptor.network
    assert [r.id for r in red.reactions] == ["internalize"]
    (r,) = red.reactions
    assert [(x.species, x.stoichiometry) for x in r.reactants] == [("L", 1.0)]
    assert [(x.species, x.stoichiometry) for x in r.products] == [("Li", 1.0)]
    assert str(r.rate) == "Vmax_internalize * L / (Km_internalize + L)"
    assert receptor.dropped == ["unbind (bind + unbind)"]
    assert red.species_map["C"].boundary_condition and "C" in red.assignment_rule_map


def test_reduced_model_solves_the_michaelis_menten_decay(receptor):
    # dL/dt = -V L/(K + L) has L(t) = K W((L0/K) exp((L0 - V t)/K)).
    t = np.linspace(0, 1200, 25)
    res = sb.simulate(receptor.network, "ode", times=t, rtol=1e-11, atol=1e-12)
    exact = K_M * np.real(lambertw(L0 / K_M * np.exp((L0 - V_MAX * t) / K_M)))
    np.testing.assert_allclose(res.data["L"].values, exact, rtol=0, atol=1e-7 * L0)
    np.testing.assert_allclose(res.data["Li"].values, L0 - exact, rtol=0, atol=1e-7 * L0)
    # the fast species are reported on the manifold
    np.testing.assert_allclose(
        res.data["C"].values, R_T * exact / (K_M + exact), rtol=1e-6, atol=1e-9
    )


def test_rules_and_collapsed_forms_agree(receptor):
    t = np.linspace(0, 1200, 13)
    a = sb.simulate(receptor.network, "ode", times=t, rtol=1e-11, atol=1e-12)
    b = sb.simulate(receptor.network_rules, "ode", times=t, rtol=1e-11, atol=1e-12)
    assert len(receptor.network_rules.reactions) == 3
    for v in ("L", "Li", "R", "C"):
        np.testing.assert_allclose(a.data[v].values, b.data[v].values, rtol=1e-7, atol=1e-7)


def test_sbml_round_trip(receptor, tmp_path):
    for form in ("collapsed", "rules"):
        path = tmp_path / f"reduced_{form}.xml"
        receptor.write_sbml(path, form=form)
        back = read_sbml(path)
        t = np.linspace(0, 1200, 7)
        a = sb.simulate(receptor.model(form), "ode", times=t, rtol=1e-10)
        b = sb.simulate(back, "ode", times=t, rtol=1e-10)
        for v in ("L", "Li", "C", "R"):
            np.testing.assert_allclose(a.data[v].values, b.data[v].values, rtol=1e-12)
    write_sbml(receptor.network, tmp_path / "again.xml")  # the plain writer accepts it too


def test_stochastic_methods_run_the_reduced_model(receptor):
    # Reduced SSA mean of Li against the reduced ODE: Li(t) has sd <= 21 (measured), so the
    # mean of 1000 runs has standard error <= 0.67; a 5-se bound fails by chance with
    # probability below 1e-6 per time point (the MM law's nonlinearity biases the mean by far
    # less than that at ~1000 molecules).
    t = np.linspace(0, 1200, 7)
    ode = sb.simulate(receptor.network, "ode", times=t, rtol=1e-10)
    ssa = sb.simulate(receptor.network, "ssa", times=t, runs=1000, seed=11)
    m, sd = ssa.mean()["Li"].values, ssa.sd()["Li"].values
    se = sd[1:] / math.sqrt(1000)
    assert np.all(np.abs(m[1:] - ode.data["Li"].values[1:]) < 5 * se + 1e-9)
    assert np.all((sd[1:] > 3) & (sd[1:] < 30))
    cle = sb.simulate(receptor.network, "cle", times=t, runs=200, seed=3)
    mc = cle.mean()["Li"].values
    assert np.all(np.isfinite(mc))
    np.testing.assert_allclose(mc[1:], ode.data["Li"].values[1:], rtol=0.05)


def test_error_report_numbers(receptor):
    err = receptor.error
    assert err is not None
    assert err.layer_end == pytest.approx(10.0)  # 10 time constants of ~0.31-1.3 per minute
    assert err.n_compared == 120
    # The QSSA error is O(R_T/(K_m + L)) = O(1/30): the measured errors sit well inside it.
    assert 1e-3 < err.max_rel["L"] < 0.02
    assert err.max_rel_error == max(err.max_rel.values())
    assert err.eps_max == pytest.approx(receptor.timescales.eps_after(10.0))
    assert 0 < err.split_error_max < 0.02
    d = receptor.to_dict()
    json.loads(json.dumps(d))
    assert d["michaelis_menten"][0]["K_m"] == "(k_int + k_off)/k_on"
    text = receptor.summary()
    assert "V_max = R_T*k_int = 2" in text and "K_m = (k_int + k_off)/k_on = 300" in text


def test_fast_variables_as_a_comma_separated_string():
    red = reduce(receptor_uptake(), "R, C", t_end=600, n_points=31, error_report=False)
    assert red.fast == ["R", "C"] and red.error is None


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------
def test_no_separation_is_refused_with_numbers():
    # R_T = K_m / 1 ... receptors as many as K_m: the complex is not fast next to the uptake.
    with pytest.raises(ReductionRefused, match="no timescale separation") as exc:
        reduce(receptor_uptake({"R_T": 300}), ["R", "C"], t_end=1200, n_points=61)
    d = exc.value.details
    assert exc.value.reason == "no_separation"
    lf, ls = complex(*d["lambda_fast"]), complex(*d["lambda_slow"])
    assert d["eps_max"] == pytest.approx(abs(ls) / abs(lf), rel=1e-12)
    assert d["eps_max"] > 0.1


def test_fast_binding_with_many_receptors_is_refused_as_a_split():
    # Binding 100x faster at the same K_m but R_T = 100: eps is small, yet the ligand itself
    # takes part in the fast binding, and the species-wise QSSA misses the slow rate.  At L = 0
    # the full model's slow eigenvalue solves lambda^2 + (a + k_off + k_int) lambda
    # + a k_int = 0 (a = k_on R_T) while the reduced one is -V_max/K_m.
    k_on, k_off, k_int, rt = 0.1, 29.8, 0.2, 100.0
    net = receptor_uptake({"k_on": k_on, "k_off": k_off, "k_int": k_int, "R_T": rt})
    with pytest.raises(ReductionRefused, match="do not carry the fast modes") as exc:
        reduce(net, ["R", "C"], t_end=1200, n_points=61)
    a = k_on * rt
    lam = np.roots([1.0, a + k_off + k_int, a * k_int])
    slow = lam[np.argmin(np.abs(lam))]
    reduced = -k_int * rt / ((k_off + k_int) / k_on)
    expected = abs(reduced - slow) / abs(slow)
    assert exc.value.reason == "split"
    assert exc.value.details["split_error_max"] == pytest.approx(expected, rel=1e-3)
    with pytest.raises(ReductionRefused, match="do not split by variables"):
        reduce(net, t_end=1200, n_points=61)


FOLD = """
model fold
  x' = a
  y' = (y - y^3/3 - x)/eps
  x = -1; y = 2; a = 0.1; eps = 0.01
end
"""


@pytest.mark.parametrize("fast", [None, ["y"]])
def test_fold_is_detected_and_refused(fast):
    # The upper branch y > 1 of y - y^3/3 = x ends at the fold x = 2/3, y = 1, which x = -1 +
    # 0.1 t reaches at t = 50/3.
    with pytest.raises(ReductionRefused, match="folds") as exc:
        reduce(sb.from_antimony(FOLD), fast, t_end=20, n_points=101)
    d = exc.value.details
    assert exc.value.reason == "fold"
    assert d["state"]["x"] == pytest.approx(2 / 3, abs=1e-3)
    assert d["state"]["y"] == pytest.approx(1.0, abs=0.05)
    assert d["time"] == pytest.approx(50 / 3, abs=0.01)
    assert -1.0 < d["eigenvalue"][0] < 0  # df/dy = (1 - y^2)/eps -> 0 from below


def test_upper_branch_before_the_fold_reduces_numerically():
    red = reduce(sb.from_antimony(FOLD), ["y"], t_end=10, n_points=101)
    assert red.stability.stable
    assert not red.exportable  # a cubic's real root needs complex radicals here
    with pytest.raises(UnsupportedFeatureError, match="numerical critical manifold"):
        red.model()
    # along the branch, y - y^3/3 = x and df/dy = (1 - y^2)/eps
    ms = red.samples
    assert ms is not None
    x, y = ms.z[:, 0], ms.y[:, 0]
    np.testing.assert_allclose(y - y**3 / 3, x, atol=1e-10)
    worst = np.max((1 - y**2) / 0.01)
    assert red.stability.worst_eigenvalue.real == pytest.approx(worst, rel=1e-9)


def test_unstable_middle_branch_is_refused():
    net = sb.from_antimony(
        FOLD.replace("x' = a", "x' = 0").replace("x = -1; y = 2", "x = 0; y = 0")
    )
    with pytest.raises(ReductionRefused, match="unstable") as exc:
        reduce(net, ["y"], t_end=5, n_points=11)
    assert exc.value.reason == "unstable"
    assert exc.value.details["eigenvalue"][0] == pytest.approx(100.0, rel=1e-12)  # 1/eps


def test_hopf_loss_of_stability_is_refused():
    # Fast (u, w) with equilibrium 0 and eigenvalues (x +- i)/eps: stable for x < 0.  With
    # x = -1 + 0.1 t the manifold loses stability at t = 10; the trajectory lingers near it
    # (delayed Hopf), so the branch is followed and found unstable.
    net = sb.from_antimony(
        """model hopf
  x' = a
  u' = (x*u - w - u*(u^2 + w^2))/eps
  w' = (u + x*w - w*(u^2 + w^2))/eps
  x = -1; u = 0.001; w = 0; a = 0.1; eps = 0.01
end"""
    )
    with pytest.raises(ReductionRefused, match="unstable") as exc:
        reduce(net, ["u", "w"], t_end=15, n_points=61)
    d = exc.value.details
    assert 10.0 <= d["first_time"] <= 10.25  # the first sample with x >= 0 (spacing 0.25)
    assert d["eigenvalue"] == pytest.approx([50.0, 100.0], rel=1e-9)  # (0.5 + i)/0.01 at t=15


# ---------------------------------------------------------------------------------------------
# Other models
# ---------------------------------------------------------------------------------------------
def test_enzyme_with_amount_species_and_a_compartment():
    # Rates in amounts with k1 S E / V: the quasi-steady state gives K_m = V (k2 + km1)/k1 in
    # amounts and V_max = k2 E_T, E_T the conserved total (a new parameter: E(0) is a number).
    net = sb.from_antimony(
        """model enzyme
  compartment V = 2;
  substanceOnly species S in V = 1000, E in V = 5, ES in V = 0, P in V = 0;
  J1: S + E -> ES; k1*S*E/V;
  J2: ES -> S + E; km1*ES;
  J3: ES -> E + P; k2*ES;
  k1 = 0.01; km1 = 1; k2 = 1;
end"""
    )
    red = reduce(net, t_end=2000, n_points=101)
    assert sorted(red.fast) == ["E", "ES"]
    assert red.manifold.totals == {"E_ES_total": 5.0}
    (mm,) = red.michaelis_menten
    V, k1, km1, k2, ET = (sym(n) for n in ("V", "k1", "km1", "k2", "E_ES_total"))
    assert sympy.simplify(mm.V_max - k2 * ET) == 0
    assert sympy.simplify(mm.K_m - V * (k2 + km1) / k1) == 0
    assert mm.K_m_value == pytest.approx(400.0) and mm.V_max_value == pytest.approx(5.0)
    assert red.error is not None and red.error.max_rel_error < 0.01


def test_rate_rule_fast_variable_with_a_closed_form():
    # dy/dt = (x - y)/eps: h(x) = x; the reduced model keeps x' = -x with y := x.
    net = sb.from_antimony("model lin\n x' = -x\n y' = (x - y)/eps\n x = 1; y = 0; eps = 1e-3\nend")
    red = reduce(net, t_end=3, n_points=61)
    assert red.fast == ["y"]
    assert str(red.manifold.expressions["y"]) == "x"
    res = sb.simulate(red.network, "ode", t_end=3, n_points=7, vars=["x", "y"], rtol=1e-10)
    np.testing.assert_allclose(res.data["y"].values, np.exp(-np.linspace(0, 3, 7)), rtol=1e-7)
    # the full model's y lags x by eps: y - x = O(eps) after the layer
    assert red.error is not None and red.error.fast_residual["y"] < 3e-3


def test_numerical_manifold_when_sympy_has_no_closed_form():
    # Y' = (A - Y^5 - Y)/eps: a quintic, no radicals; Y does not act on A, so the reduction
    # of A is exact and the report says so.
    net = sb.from_antimony(
        """model quintic
  species A = 1, Y = 1;
  J0: -> A; 0.1;
  J1: A -> ; 0.05*A;
  Y' = (A - Y^5 - Y)/eps
  eps = 0.001
end"""
    )
    red = reduce(net, ["Y"], t_end=50, n_points=51)
    assert red.manifold.method == "numeric" and not red.exportable
    assert "no closed form" in red.why_not_exportable
    assert red.error is not None and red.error.max_rel["A"] < 1e-8
    ms = red.samples
    assert ms is not None
    A, Y = ms.z[:, 0], ms.y[:, 0]
    np.testing.assert_allclose(Y**5 + Y, A, rtol=1e-10)
    json.dumps(red.to_dict())
    with pytest.raises(UnsupportedFeatureError, match="cannot be written as SBML"):
        red.write_sbml("never.xml")


def test_michaelis_menten_form_recognition():
    S, a, b, c = (sym(n) for n in ("S", "a", "b", "c"))
    V, K = michaelis_menten_form(a * S / (b + c * S), "S")
    assert sympy.simplify(V - a / c) == 0 and sympy.simplify(K - b / c) == 0
    assert michaelis_menten_form(a * S**2 / (b + S**2), "S") is None
    assert michaelis_menten_form(a * S, "S") is None
    assert michaelis_menten_form((a * S + 1) / (b + S), "S") is None


def test_bad_options():
    with pytest.raises(OptionError):
        reduce(receptor_uptake(), t_end=0)
    with pytest.raises(OptionError):
        reduce(receptor_uptake(), t_end=10, max_eps=0)
