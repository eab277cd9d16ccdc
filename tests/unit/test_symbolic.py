"""Expression trees <-> sympy: values agree at random points, and unsupported nodes are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

from scalebridge.errors import UnsupportedFeatureError
from scalebridge.model.expr import evaluate
from scalebridge.model.parse import parse_expr
from scalebridge.model.symbolic import from_sympy, sym, to_sympy

CASES = [
    "k1*A*B - k2*C/(Km + C)",
    "Vmax*S^n/(K^n + S^n)",
    "exp(-k*A) + ln(B) - log10(C) + sqrt(A*B)",
    "sin(A) + cos(B)*tanh(C) - arctan(A/B)",
    "piecewise(A, A > B, B, C <= 2, C)",
    "min(A, B) + max(B, C) + abs(A - C)",
    "root(3, A) + -B + 2/(A*A*A)",
    "A^-2 + cosh(B) / sinh(C)",
]


@pytest.mark.parametrize("text", CASES)
def test_round_trip_values(text: str) -> None:
    e = parse_expr(text)
    s = to_sympy(e)
    back = from_sympy(s)
    rng = np.random.default_rng(7)
    names = {"A", "B", "C", "S", "k1", "k2", "Km", "Vmax", "K", "n", "k"}
    for _ in range(20):
        vals = {v: float(rng.uniform(0.5, 3.0)) for v in names}
        direct = evaluate(e, vals)
        via_sympy = float(s.subs({sym(k): v for k, v in vals.items()}).evalf())
        rebuilt = evaluate(back, vals)
        assert math.isclose(direct, via_sympy, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(direct, rebuilt, rel_tol=1e-12, abs_tol=1e-12)


def test_symbolic_algebra_result_comes_back() -> None:
    # Michaelis-Menten from the quasi-steady state of C: kon*S*(Et - C) = (koff + kcat)*C
    C, S, Et, kon, koff, kcat = (sym(n) for n in ("C", "S", "Et", "kon", "koff", "kcat"))
    sol = sympy.solve(sympy.Eq(kon * S * (Et - C), (koff + kcat) * C), C)[0]
    rate = from_sympy(sympy.simplify(kcat * sol))
    vals = {"S": 2.0, "Et": 3.0, "kon": 1.5, "koff": 0.5, "kcat": 2.0}
    km = (0.5 + 2.0) / 1.5
    assert math.isclose(evaluate(rate, vals), 2.0 * 3.0 * 2.0 / (km + 2.0), rel_tol=1e-14)


@pytest.mark.parametrize("text", ["floor(A)", "factorial(A)", "rem(A, B)"])
def test_unsupported_is_refused(text: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match="symbolic"):
        to_sympy(parse_expr(text))
