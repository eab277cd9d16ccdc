"""Structural identifiability: textbook models whose answers are derived by hand.

Each test states the derivation.  The engine's pieces (power series modulo p, F4 Gröbner
bases, rational reconstruction) are checked against closed forms and against sympy.
"""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction
from pathlib import Path

import pytest
import sympy

import scalebridge as sb
from scalebridge.errors import ModelError, OptionError, UnsupportedFeatureError
from scalebridge.infer import (
    identifiability_across_datasets,
    structural_identifiability,
    suggest_measurements,
)
from scalebridge.infer.combinations import rational_reconstruction
from scalebridge.infer.groebner import PolyRing, groebner
from scalebridge.infer.rational import exact_fraction, rationalize
from scalebridge.infer.series import Point, taylor, to_modp
from scalebridge.infer.structural import (
    LOCAL_PRIME,
    identifiability_report,
    parse_output_options,
)
from scalebridge.model.expr import evaluate
from scalebridge.model.odetext import parse_ode_text

IDENT = ("globally", "locally-not-globally", "locally")


def analyse(text: str, **kw):
    return structural_identifiability(parse_ode_text(text, source="test.txt"), **kw)


def combo_values(res, values: dict[str, float]) -> list[float]:
    return [evaluate(c.expression, values) for c in res.combinations]


# ---------------------------------------------------------------------------------------------
# Textbook cases
# ---------------------------------------------------------------------------------------------
def test_only_the_sum_of_two_rates():
    # y = x0 exp(-(k1 + k2) t): only k1 + k2 (and x0) are determined.
    res = analyse("parameters: k1, k2\ndx/dt = -(k1 + k2)*x\ny = x\n")
    assert res.parameters == {"k1": "non-identifiable", "k2": "non-identifiable"}
    assert res.initial_conditions == {"x": "globally"}
    assert res.rank == 2 and res.unknowns == 3
    assert len(res.combinations) == 1 and res.combinations_complete
    c = res.combinations[0]
    assert c.label == "globally" and set(c.variables) == {"k1", "k2"}
    for k1, k2 in [(0.3, 1.7), (2.0, 5.0)]:
        assert evaluate(c.expression, {"k1": k1, "k2": k2}) == pytest.approx(k1 + k2)


def test_scale_and_initial_value_only_as_product():
    # y = c x0 exp(-k t): k, and c*x0.
    res = analyse("parameters: k, c\ndx/dt = -k*x\ny = c*x\n")
    assert res.parameters == {"k": "globally", "c": "non-identifiable"}
    assert res.initial_conditions == {"x": "non-identifiable"}
    (c,) = res.combinations
    assert c.label == "globally"
    assert evaluate(c.expression, {"c": 3.0, res.ic_names["x"]: 5.0}) == pytest.approx(15.0)


def test_known_initial_value_identifies_the_scale():
    # x(0) = 1 known: y(0) = c.  Also a generic known x(0) and one set by a parameter.
    assert analyse("parameters: k, c\ninitial: x = 1\ndx/dt = -k*x\ny = c*x\n").parameters == {
        "k": "globally",
        "c": "globally",
    }
    res = analyse("parameters: k, c\ninitial: x = known\ndx/dt = -k*x\ny = c*x\n")
    assert res.parameters == {"k": "globally", "c": "globally"}
    assert res.initial_conditions == {}
    # x(0) = 2 x0tot with x0tot unknown: only c*x0tot.
    res = analyse("parameters: k, c, x0tot\ninitial: x = 2*x0tot\ndx/dt = -k*x\ny = c*x\n")
    assert res.parameters == {"k": "globally", "c": "non-identifiable", "x0tot": "non-identifiable"}
    (comb,) = res.combinations
    assert evaluate(comb.expression, {"c": 3.0, "x0tot": 7.0}) == pytest.approx(21.0)


@pytest.mark.parametrize(
    ("known", "expected"),
    [("known: V = 2", "globally"), ("known: V", "globally")],
)
def test_known_constants_with_and_without_values(known, expected):
    res = analyse(f"parameters: k\n{known}\ndx/dt = -k*V*x\ny = x\n")
    assert res.parameters == {"k": expected}


def test_unknown_constant_makes_a_product():
    res = analyse("parameters: k, V\ndx/dt = -k*V*x\ny = x\n")
    assert res.parameters == {"k": "non-identifiable", "V": "non-identifiable"}
    (c,) = res.combinations
    assert evaluate(c.expression, {"k": 2.0, "V": 3.0}) == pytest.approx(6.0)


def test_known_input_separates_what_a_constant_input_cannot():
    # y' = -k y + b u: with a known, varying u both k and b follow; with u an unknown
    # constant only k and b*u do.
    res = analyse("parameters: k, b\ninputs: u\ndx/dt = -k*x + b*u\ny = x\n")
    assert res.parameters == {"k": "globally", "b": "globally"}
    res = analyse("parameters: k, b, u\ndx/dt = -k*x + b*u\ny = x\n")
    assert res.parameters == {"k": "globally", "b": "non-identifiable", "u": "non-identifiable"}
    (c,) = res.combinations
    assert evaluate(c.expression, {"b": 2.0, "u": 5.0}) == pytest.approx(10.0)


def test_unknown_input_hides_the_rate_until_it_is_measured():
    # w = y' + k y for any k: k is not identifiable; measuring w as well identifies it.
    res = analyse("parameters: k\nunknown_inputs: w\ndx/dt = -k*x + w\ny = x\n")
    assert res.parameters == {"k": "non-identifiable"}
    assert not res.global_attempted
    res = analyse("parameters: k\nunknown_inputs: w\ndx/dt = -k*x + w\ny1 = x\ny2 = w\n")
    assert res.parameters == {"k": "locally"}


def test_sign_symmetry_is_local_not_global():
    # dx/dt = -k^2 x: k and -k give the same output; k^2 is globally identifiable.
    res = analyse("parameters: k\ndx/dt = -k^2*x\ny = x\n")
    assert res.parameters == {"k": "locally-not-globally"}
    assert res.initial_conditions == {"x": "globally"}
    assert any("certificate" in n for n in res.notes)
    (c,) = res.combinations
    assert c.label == "globally"
    assert evaluate(c.expression, {"k": 3.0}) == pytest.approx(9.0)


def test_squared_output_leaves_the_sign_of_the_initial_value():
    # y = x^2, x(t) = x0 exp(-k t): x0 and -x0 give the same output.
    res = analyse("parameters: k\ndx/dt = -k*x\ny = x^2\n")
    assert res.parameters == {"k": "globally"}
    assert res.initial_conditions == {"x": "locally-not-globally"}


def test_two_exponentials_can_be_swapped():
    # A -> B -> (k1, k2), y = B: y = alpha e^{-k1 t} + beta e^{-k2 t}; swapping k1 and k2 with
    # A0' = beta (k1 - k2)/k2 gives the same y, B0 = y(0) is unique; k1 + k2 and k1 k2 are.
    res = analyse("parameters: k1, k2\ndA/dt = -k1*A\ndB/dt = k1*A - k2*B\ny = B\n")
    assert res.parameters == {"k1": "locally-not-globally", "k2": "locally-not-globally"}
    assert res.initial_conditions == {"A": "locally-not-globally", "B": "globally"}
    vals = {"k1": 0.3, "k2": 1.1}
    got = sorted(combo_values(res, vals))
    assert got == pytest.approx(sorted([0.3 + 1.1, 0.3 * 1.1]))
    assert all(c.label == "globally" for c in res.combinations)


def test_equilibrium_binding_identifies_the_dissociation_constant():
    # y = Rtot L / (L + koff/kon): Rtot and K_D = koff/kon.
    res = analyse("parameters: kon, koff, Rtot\ninputs: L\ndz/dt = 0\ny = Rtot*L/(L + koff/kon)\n")
    assert res.parameters == {
        "kon": "non-identifiable",
        "koff": "non-identifiable",
        "Rtot": "globally",
    }
    (c,) = res.combinations
    assert c.label == "globally"
    assert evaluate(c.expression, {"kon": 2.0, "koff": 5.0}) == pytest.approx(2.5)


# ---------------------------------------------------------------------------------------------
# Non-rational terms
# ---------------------------------------------------------------------------------------------
def test_exponential_of_a_parameter_is_reparametrized():
    res = analyse("parameters: p\ndx/dt = -exp(p)*x\ny = x\n")
    assert res.parameters == {"p": "globally"}
    assert any("exp(p)" in n for n in res.notes)


def test_time_dependent_rate_becomes_a_state():
    # y'/y = -a exp(-k t): a = -y'(0)/y(0), k from the next derivative.
    res = analyse("parameters: k, a\ndx/dt = -a*exp(-k*t)*x\ny = x\n")
    assert res.parameters == {"k": "globally", "a": "globally"}
    assert any("time is the added state" in n for n in res.notes)


def test_hill_function_with_parameter_exponent():
    # V u^n/(K^n + u^n) with a known input u: u^n becomes a state (u(0) = 1), K^n stands for K.
    res = analyse("parameters: V, K, n, d\ninputs: u\ndx/dt = V*u^n/(K^n + u^n) - d*x\ny = x\n")
    assert res.parameters == {"V": "globally", "K": "globally", "n": "globally", "d": "globally"}
    assert any("K^n" in n for n in res.notes)


def test_arrhenius_factor_with_unknown_prefactor():
    # A exp(-E/T): only the product (a combination written with the exponential).
    res = analyse("parameters: E, A\nknown: T = 310\ndx/dt = -A*exp(-E/T)*x\ny = x\n")
    assert res.parameters == {"E": "non-identifiable", "A": "non-identifiable"}
    (c,) = res.combinations
    assert evaluate(c.expression, {"A": 2.0, "E": 31.0, "T": 310.0}) == pytest.approx(
        2.0 * math.exp(-0.1)
    )


def test_square_root_of_a_state():
    # dx/dt = -k sqrt(x): k = -y'/sqrt(y) is identifiable (the branch leaves global open).
    res = analyse("parameters: k\ndx/dt = -k*sqrt(x)\ny = x\n")
    assert res.parameters == {"k": "locally"}
    assert res.initial_conditions == {"x": "locally"}


@pytest.mark.parametrize(
    ("rhs", "term"),
    [
        ("-k*piecewise(1, x > 1, 2)", "x > 1"),
        ("-k*abs(x)", "abs(x)"),
        ("-k*tanh(x)", "tanh(x)"),
        ("-k*sin(k)*x", "sin(k)"),
    ],
)
def test_unsupported_terms_are_refused_by_name(rhs, term):
    with pytest.raises(UnsupportedFeatureError) as err:
        analyse(f"parameters: k\ndx/dt = {rhs}\ny = x\n")
    assert term in str(err.value) and "test.txt" in str(err.value)


def test_parameter_inside_and_outside_a_non_rational_term_is_refused():
    with pytest.raises(UnsupportedFeatureError, match="occurs elsewhere"):
        analyse("parameters: k\ndx/dt = -exp(k)*x - k*x\ny = x\n")


# ---------------------------------------------------------------------------------------------
# The probability statement
# ---------------------------------------------------------------------------------------------
def test_error_bound_follows_the_stated_degree_count():
    # dx/dt = -k x (degree 2), y = x (degree 1), no denominators, unknowns k and x0 (K = 2),
    # rank 2: a Jacobian entry has degree <= 2*1*1*(1 + 2*(2-1))*1 = 6; (2 + 1) minors of
    # size 2: 36 / (p - 1).
    res = analyse("parameters: k\ndx/dt = -k*x\ny = x\n")
    assert res.error_bound == pytest.approx(36 / (LOCAL_PRIME - 1))
    assert "Schwartz-Zippel" in res.probability_statement
    assert f"{res.error_bound:.3g}" in res.probability_statement


def test_labels_do_not_depend_on_the_random_point():
    text = "parameters: a1, a2, a21\ndx1/dt = -a1*x1 + a21*x2\ndx2/dt = -a2*x2 - a21*x2\ny = x1\n"
    labels = {
        json.dumps(analyse(text, seed=s, combinations=False).parameters, sort_keys=True)
        for s in range(6)
    }
    assert len(labels) == 1


# ---------------------------------------------------------------------------------------------
# Engine pieces
# ---------------------------------------------------------------------------------------------
def test_taylor_coefficients_and_sensitivities_are_exact():
    # x(t) = x0 exp(-k t): x_j = x0 (-k)^j / j!, d x_j / dk = -j x0 (-k)^(j-1) / j!.
    rm = rationalize(parse_ode_text("parameters: k\ndx/dt = -k*x\ny = x\n"))
    p = LOCAL_PRIME
    k, x0 = 12345, 678
    res = taylor(rm, Point(p, {"k": k, "x": x0}), 6)
    for j in range(7):
        fj = math.factorial(j)
        assert res.y["y"][j] == to_modp(Fraction(x0 * (-k) ** j, fj), p)
        dk = Fraction(-j * x0 * (-k) ** (j - 1), fj) if j else Fraction(0)
        assert res.dy["y"][j][0] == to_modp(dk, p)
        assert res.dy["y"][j][1] == to_modp(Fraction((-k) ** j, fj), p)


def test_groebner_basis_agrees_with_sympy():
    p = 2147483629
    x, y, z = sympy.symbols("x y z")
    rng = random.Random(3)
    polys = [
        sum(rng.randrange(1, 50) * m for m in (x * y, y * z, z**2, x, 1)),
        sum(rng.randrange(1, 50) * m for m in (x**2, y, z * x, 1)),
        sum(rng.randrange(1, 50) * m for m in (y**2, x * z, z, 1)),
    ]
    ring = PolyRing(3, p)
    ours = groebner(
        ring,
        [ring.poly((m, int(c) % p) for m, c in sympy.Poly(f, x, y, z).terms()) for f in polys],
    )
    ref = sympy.groebner(polys, x, y, z, order="grevlex", modulus=p)
    lead_ref = sorted(sympy.Poly(g, x, y, z).monoms(order="grevlex")[0] for g in ref.exprs)
    assert sorted(ring.exps(f[0][0]) for f in ours.polys) == lead_ref
    # same number of solutions (Bezout: 2*2*2 = 8 for generic quadrics)
    std = ours.standard_monomials(1000)
    assert std is not None and len(std) == 8


def test_katsura_solution_count():
    # Katsura-n has 2^n solutions.
    n = 4
    us = sympy.symbols(f"u0:{n + 1}")

    def u(i: int):
        return us[abs(i)] if abs(i) <= n else 0

    polys = [sum(u(i) for i in range(-n, n + 1)) - 1]
    polys += [sum(u(i) * u(m - i) for i in range(-n, n + 1)) - u(m) for m in range(n)]
    p = 2147483629
    ring = PolyRing(n + 1, p)
    gb = groebner(
        ring, [ring.poly((m, int(c) % p) for m, c in sympy.Poly(f, *us).terms()) for f in polys]
    )
    std = gb.standard_monomials(10_000)
    assert std is not None and len(std) == 2**n


def test_rational_reconstruction_and_exact_fractions():
    p = LOCAL_PRIME
    for f in [Fraction(3, 7), Fraction(-22, 5), Fraction(1), Fraction(-1, 123456)]:
        assert rational_reconstruction(to_modp(f, p), p) == f
    assert exact_fraction(0.1) == Fraction(1, 10)
    assert exact_fraction(1 / 3) == Fraction(1, 3)
    assert exact_fraction(2.5) == Fraction(5, 2)


# ---------------------------------------------------------------------------------------------
# Several datasets; reaction networks; the command-line report
# ---------------------------------------------------------------------------------------------
BINDING = """parameters: kon, koff, Rtot, s
inputs: u
dC/dt = kon*u*(Rtot - C) - koff*C
y1 = s*C
y2 = Rtot
"""


def test_datasets_alone_and_combined():
    m = parse_ode_text(BINDING)
    res = identifiability_across_datasets(m, {"cell": ["y1"], "molecular": ["y2"]})
    assert res.datasets["cell"].parameters["Rtot"] == "non-identifiable"
    assert res.datasets["cell"].parameters["kon"] in IDENT
    assert res.datasets["molecular"].parameters == {
        "kon": "non-identifiable",
        "koff": "non-identifiable",
        "Rtot": "globally",
        "s": "non-identifiable",
    }
    assert all(lab in IDENT for lab in res.combined.parameters.values())
    # separate experiments: each dataset has its own copy of the state
    assert set(res.combined.initial_conditions) == {"C_cell", "C_molecular"}
    assert "cell" in res.table() and "combined" in res.table()
    json.dumps(res.to_dict())


def test_datasets_given_as_expressions_shared_experiment():
    # One experiment observing s*C and Rtot: s = y1 / C with C known from Rtot and the kinetics.
    m = parse_ode_text(
        "parameters: kon, koff, Rtot, s\ninputs: u\ndC/dt = kon*u*(Rtot - C) - koff*C\n"
    )
    res = identifiability_across_datasets(
        m, {"cell": {"y1": "s*C"}, "molecular": {"y2": "Rtot"}}, experiments="shared"
    )
    assert res.datasets["cell"].parameters["s"] == "non-identifiable"
    assert all(lab in IDENT for lab in res.combined.parameters.values())
    assert set(res.combined.initial_conditions) == {"C"}
    with pytest.raises(OptionError):
        identifiability_across_datasets(m, {"a": {"y": "C"}}, experiments="both")


def test_suggested_measurements():
    m = parse_ode_text(BINDING)
    sug = suggest_measurements(m, outputs=["y1"])
    by_name = {s.measurement: s for s in sug}
    # measuring the complex itself, or Rtot at the molecular scale, fixes both Rtot and s
    assert set(by_name["C"].makes_identifiable) == {"Rtot", "s"}
    assert set(by_name["Rtot"].makes_identifiable) == {"Rtot", "s"}
    sug = suggest_measurements(m, outputs=["y1"], candidates={"ratio": "s/Rtot"})
    assert [s.measurement for s in sug] == ["ratio"]


def test_reaction_network_from_antimony():
    pytest.importorskip("antimony")
    net = sb.from_antimony(
        """model m
  A -> B; k1*A
  B -> ; k2*B
  obs := B
  A = 1; B = 0; k1 = 0.3; k2 = 0.5
end"""
    )
    res = structural_identifiability(net)
    assert res.outputs == ("obs",)
    assert res.parameters == {"k1": "locally-not-globally", "k2": "locally-not-globally"}
    assert res.initial_conditions["B"] == "globally"


def test_network_without_observables_needs_outputs():
    pytest.importorskip("antimony")
    net = sb.from_antimony("model m\n  A -> ; k*A\n  A = 1; k = 1\nend")
    with pytest.raises(ModelError, match="no outputs"):
        structural_identifiability(net)
    res = structural_identifiability(net, outputs=["A"])
    assert res.parameters == {"k": "globally"}


def test_report_json_contract(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text(BINDING, encoding="utf-8")
    doc = json.loads(identifiability_report(path, outputs=["y=s*C"], as_json=True))
    assert doc["parameters"] == {
        "kon": doc["parameters"]["kon"],
        "koff": doc["parameters"]["koff"],
        "Rtot": "non-identifiable",
        "s": "non-identifiable",
    }
    assert doc["parameters"]["kon"] in IDENT
    assert set(doc["initial_conditions"]) == {"C"}
    texts = [c["expression"] for c in doc["identifiable_combinations"]]
    assert "Rtot * s" in texts
    text = identifiability_report(path)
    assert "parameters:" in text and "P(wrong local label)" in text


@pytest.mark.parametrize("bad", ["y", "=s", "1y=C", "y==C", "y="])
def test_output_option_errors(bad):
    with pytest.raises(OptionError):
        parse_output_options([bad])


def test_output_naming_unknown_output_is_an_error():
    with pytest.raises(ModelError, match="no output named"):
        structural_identifiability(parse_ode_text(BINDING), outputs=["y3"])


def test_bad_time_budget():
    with pytest.raises(OptionError):
        structural_identifiability(parse_ode_text(BINDING), time_budget=-1)


# ---- the `scalebridge identifiability` command -------------------------------------------------
def test_cli_identifiability_json_and_errors(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scalebridge.cli import cli

    model = (
        Path(__file__).resolve().parents[1] / "data" / "identifiability" / "binding_equilibrium.txt"
    )
    res = CliRunner().invoke(cli, ["identifiability", str(model), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    # equilibrium binding: only K_D = koff/kon and the receptor total are determined
    assert data["parameters"] == {
        "kon": "non-identifiable", "koff": "non-identifiable", "Rtot": "globally"
    }  # fmt: skip
    assert [c["expression"] for c in data["identifiable_combinations"]] == ["koff / kon"]
    res = CliRunner().invoke(cli, ["identifiability", str(tmp_path / "missing.txt")])
    assert res.exit_code == 2 and "missing.txt" in res.output
