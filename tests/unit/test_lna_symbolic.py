"""The symbolic stationary LNA (``scalebridge.wellmixed.lna_symbolic``) against hand-derived
formulas and the numeric LNA.

* two-stage gene model: <M> = k_m/g_m, <P> = k_m k_p/(g_m g_p), Fano(M) = 1,
  Fano(P) = 1 + k_p/(g_m + g_p), Cov(M, P) = k_p <M>/(g_m + g_p);
* isomerisation A <-> B with A + B = T: <A> = T k2/(k1 + k2), Fano(A) = k1/(k1 + k2)
  (binomial), Cov(A, B) = -Var A;
* nonlinear dimerisation with production: no hand formula is needed -- the formulas, evaluated,
  must equal the numeric LNA (an independent computation: Newton + Bartels-Stewart).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy

import scalebridge as sb
from scalebridge.errors import OptionError
from scalebridge.model.expr import evaluate
from scalebridge.model.symbolic import sym
from scalebridge.wellmixed.lna import lna_stationary
from scalebridge.wellmixed.lna_symbolic import lna_symbolic

GENE = (
    "model m\n species M = 0, P = 0\n tx: -> M; km\n md: M -> ; gm*M\n tl: -> P; kp*M\n"
    " pd: P -> ; gp*P\n km = 10; gm = 1; kp = 5; gp = 0.1\nend"
)


def test_two_stage_fano_symbolically():
    r = lna_symbolic(sb.from_antimony(GENE))
    km, gm, kp, gp = (sym(s) for s in ("km", "gm", "kp", "gp"))
    assert sympy.simplify(r.fano["P"] - (1 + kp / (gm + gp))) == 0
    assert sympy.simplify(r.fano["M"] - 1) == 0
    assert sympy.simplify(r.mean["M"] - km / gm) == 0
    assert sympy.simplify(r.mean["P"] - km * kp / (gm * gp)) == 0
    cov = r.covariance[r.index("M"), r.index("P")]
    assert sympy.simplify(cov - kp * (km / gm) / (gm + gp)) == 0
    assert sympy.simplify(r.cv2["P"] - r.fano["P"] / r.mean["P"]) == 0
    # the Jacobian and diffusion matrix at the stationary mean
    assert sympy.simplify(r.jacobian - sympy.Matrix([[-gm, 0], [kp, -gp]])) == sympy.zeros(2)
    assert sympy.simplify(r.diffusion - sympy.diag(2 * km, 2 * km * kp / gm)) == sympy.zeros(2)


def test_two_stage_formula_numbers_match_the_numeric_lna_to_1e_10():
    net = sb.from_antimony(GENE)
    r = lna_symbolic(net)
    got = r.evaluate()
    num = lna_stationary(net)
    assert np.max(np.abs(got["covariance"] - num.covariance)) < 1e-10 * num.covariance.max()
    assert abs(got["fano"][1] - (1 + 5 / 1.1)) < 1e-10


def test_conservation_law_gives_the_binomial_formulas():
    net = sb.from_antimony(
        "model m\n species A = 100, B = 0\n f: A -> B; k1*A\n b: B -> A; k2*B\n k1 = 1; k2 = 3\nend"
    )
    r = lna_symbolic(net)
    k1, k2 = sym("k1"), sym("k2")
    (tname,) = r.totals
    T = sympy.Symbol(tname, real=True, positive=True)
    assert sympy.simplify(r.totals[tname] - (r.counts["A"] + r.counts["B"])) == 0
    assert sympy.simplify(r.mean["A"] - T * k2 / (k1 + k2)) == 0
    assert sympy.simplify(r.fano["A"] - k1 / (k1 + k2)) == 0
    var_a = r.covariance[0, 0]
    assert sympy.simplify(r.covariance[0, 1] + var_a) == 0
    vals = r.evaluate()
    assert vals["covariance"][0, 0] == pytest.approx(100 * 0.75 * 0.25, rel=1e-12)
    # totals from the initial state instead of a symbol
    r2 = lna_symbolic(net, totals="initial")
    assert r2.totals == {}
    assert sympy.simplify(r2.mean["A"] - 100 * k2 / (k1 + k2)) == 0


def test_nonlinear_dimerisation_formulas_equal_the_numeric_lna():
    net = sb.from_antimony(
        "model d\n compartment cell = 5\n species A in cell = 0, B in cell = 0\n"
        " p: -> A; k1*cell\n dim: 2A -> B; k2*cell*A*A\n un: B -> 2A; k3*cell*B\n"
        " deg: B -> ; k4*cell*B\n k1 = 10; k2 = 0.5; k3 = 1; k4 = 0.3\nend"
    )
    r = lna_symbolic(net, keep_sizes=True)
    assert sym("cell") in sympy.sympify(r.mean["A"]).free_symbols
    # Fano factors do not depend on the system size at this order
    assert sym("cell") not in sympy.sympify(r.fano["A"]).free_symbols
    num = lna_stationary(net)
    got = r.evaluate()
    assert got["mean"] == pytest.approx(num.mean, rel=1e-12)
    assert np.max(np.abs(got["covariance"] - num.covariance)) < 1e-10 * np.abs(num.covariance).max()
    # another system size, through the formula and through the numeric path
    big = lna_stationary(net, params={"cell": 50.0})
    got50 = r.evaluate({"cell": 50.0})
    assert got50["covariance"] == pytest.approx(big.covariance, rel=1e-10)


def test_params_substitution_and_expression_trees():
    r = lna_symbolic(sb.from_antimony(GENE), params={"gm": 1.0, "gp": 0.5})
    kp = sym("kp")
    assert sympy.simplify(r.fano["P"] - (1 + kp / sympy.Rational(3, 2))) == 0
    e = r.expr("fano", "P")
    assert evaluate(e, {"kp": 3.0}) == pytest.approx(3.0)
    c = r.expr("covariance", "M", "P")
    assert evaluate(c, {"km": 10.0, "kp": 3.0}) == pytest.approx(3.0 * 10.0 / 1.5)
    with pytest.raises(OptionError, match="what"):
        r.expr("median", "P")
    with pytest.raises(OptionError, match="no parameter"):
        lna_symbolic(sb.from_antimony(GENE), params={"nope": 1.0})


def test_to_dict_and_summary():
    r = lna_symbolic(sb.from_antimony(GENE))
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d["lna_symbolic"]["fano"]) == {"M", "P"}
    assert "kp" in d["lna_symbolic"]["fano"]["P"]
    text = r.summary()
    assert "Fano(P)" in text and "<M>" in text


def test_size_limit_points_to_the_numeric_path():
    lines = ["model big"] + [f" species X{i} = 0" for i in range(8)]
    lines += [f" p{i}: -> X{i}; 1\n d{i}: X{i} -> ; X{i}" for i in range(8)]
    net = sb.from_antimony("\n".join([*lines, "end"]))
    with pytest.raises(OptionError, match="numeric"):
        lna_symbolic(net)
    r = lna_symbolic(net, max_species=8)  # allowed when asked: all Poisson
    assert all(sympy.simplify(f - 1) == 0 for f in r.fano.values())
