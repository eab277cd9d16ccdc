"""Compiled models (scalebridge.codegen.build): right-hand side, analytic Jacobian, initial values.

References are mathematics, not snapshots:

* the analytic Jacobian ``vm.jac_dense`` equals a central finite-difference Jacobian of
  ``vm.rhs`` (entries where the one-sided slopes disagree -- a kink or jump within the step --
  are skipped and counted), for every model of the SBML test suite in ``tests/data``, the PEtab
  benchmark models and the Catalyst benchmark networks (egfr_net: a few columns);
* the right-hand side equals an independent evaluation of the network with
  ``expr.evaluate``: dA_i/dt = sum_j cf_i * s_ij * rate_j, with species symbols = amount / size
  (unless hasOnlySubstanceUnits) and assignment rules resolved by iteration;
* for networks with conservation laws c (model.conservation), c . dA/dt = 0 to round-off;
* ``rateOf`` of a concentration obeys the quotient rule d(A/V)/dt = (dA/dt)/V - (A/V)(dV/dt)/V.
"""

from __future__ import annotations

import math
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from scalebridge.codegen import vm
from scalebridge.codegen.build import AMOUNT, CompiledModel, compile_network
from scalebridge.errors import ModelError
from scalebridge.model import (
    AssignmentRule,
    Compartment,
    InitialAssignment,
    Parameter,
    RateRule,
    Reaction,
    ReactionNetwork,
    Species,
    SpeciesRef,
    parse_expr,
)
from scalebridge.model.conservation import conservation_laws
from scalebridge.model.expr import evaluate, walk
from scalebridge.model.rates import rate_of_expr
from scalebridge.model.sbml import read_sbml

DATA = Path(__file__).resolve().parents[1] / "data"
SEMANTIC = sorted((DATA / "sbml-semantic").glob("*/*-sbml-l3v2.xml"))
PETAB = sorted((DATA / "petab-benchmark").glob("*/model_*.xml"))
NETWORKS = [DATA / "networks" / f"{n}.xml" for n in ("multistate", "multisite2")]
EGFR = DATA / "networks" / "egfr_net.xml"


def model_id(path: Path) -> str:
    return path.parent.name if path.parent.parent.name == "sbml-semantic" else path.stem


@cache
def load(path: Path) -> tuple[ReactionNetwork, CompiledModel]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a few suite models warn about their units)
        net = read_sbml(path)
    return net, compile_network(net)


def perturbed(y0: np.ndarray, seed: int = 0) -> np.ndarray:
    """A state near ``y0``: non-negative entries stay non-negative (rate laws may take powers)."""
    rng = np.random.default_rng(seed)
    n = y0.size
    scale = float(np.abs(y0).mean()) + 1e-3
    pos = y0 * np.exp(0.2 * rng.standard_normal(n)) + 0.05 * scale * np.abs(rng.standard_normal(n))
    return np.where(y0 >= 0, pos, y0 * (1.0 + 0.1 * rng.standard_normal(n)))


def check_jacobian(cm: CompiledModel, y: np.ndarray, t: float, cols: list[int] | None = None
                   ) -> tuple[int, int]:  # fmt: skip
    """Compare ``vm.jac_dense`` with central differences of ``vm.rhs`` at (t, y).

    Returns (entries compared, entries skipped at kinks)."""
    K = cm.kernel
    n = cm.n_states
    _, v = cm.initial()
    stack = vm.new_stack(K)
    J = np.zeros((n, n))
    vm.jac_dense(K, t, y, v, np.zeros(K.n_g), J, stack)
    f0 = np.zeros(n)
    vm.rhs(K, t, y, v, f0, stack)
    ymax = float(np.abs(y).max()) if n else 1.0
    compared = skipped = 0
    for j in range(n) if cols is None else cols:
        h = 1e-6 * max(abs(y[j]), 1e-3 * ymax, 1e-6)
        fp, fm = np.zeros(n), np.zeros(n)
        yp, ym = y.copy(), y.copy()
        yp[j] += h
        ym[j] -= h
        vm.rhs(K, t, yp, v, fp, stack)
        vm.rhs(K, t, ym, v, fm, stack)
        with np.errstate(invalid="ignore"):
            central = (fp - fm) / (2 * h)
            fwd, bwd = (fp - f0) / h, (f0 - fm) / h
        size = np.abs(f0) / max(abs(y[j]), 1e-3) + np.abs(central) + 1.0
        noise = 1e3 * np.finfo(float).eps * (np.abs(fp) + np.abs(fm)) / h  # round-off of the FD
        kink = ~np.isclose(fwd, bwd, rtol=1e-3, atol=1e-6 * size)
        both_nan = np.isnan(J[:, j]) & np.isnan(central)
        ok = np.isclose(J[:, j], central, rtol=1e-5, atol=1e-9 * size + noise)
        bad = ~(ok | kink | both_nan)
        assert not bad.any(), (
            f"d f[{cm.state_names[int(np.argmax(bad))]}] / d {cm.state_names[j]}: "
            f"analytic {J[int(np.argmax(bad)), j]!r}, finite difference "
            f"{central[int(np.argmax(bad))]!r} at t={t}"
        )
        skipped += int(kink.sum())
        compared += int((~kink).sum())
    return compared, skipped


@pytest.mark.parametrize("path", SEMANTIC + PETAB + NETWORKS, ids=model_id)
def test_jacobian_matches_finite_differences(path: Path) -> None:
    _, cm = load(path)
    y0, _ = cm.initial()
    compared = skipped = 0
    for y in (y0, perturbed(y0)):
        c, s = check_jacobian(cm, y, t=0.3)
        compared += c
        skipped += s
    assert skipped <= max(2, compared // 10)  # the check is not vacuous


def test_jacobian_of_egfr_net() -> None:
    _, cm = load(EGFR)
    y0, _ = cm.initial()
    assert cm.n_states == 356
    for y in (y0, perturbed(y0, seed=3)):
        compared, skipped = check_jacobian(cm, y, t=0.0, cols=[0, 1, 4, 77, 200, 355])
        assert compared == 6 * 356 and skipped == 0


# ---------------------------------------------------------------------------------------------
# The right-hand side against an independent evaluation of the network
# ---------------------------------------------------------------------------------------------
def symbol_values(net: ReactionNetwork, amounts: dict[str, float] | None, t: float
                  ) -> dict[str, float]:  # fmt: skip
    """Values of all model symbols at time ``t`` given the species ``amounts`` (the states):
    declared values, initial assignments (for what is not a state) and assignment rules,
    resolved by iteration."""
    env: dict[str, float] = {}
    for p in net.parameters:
        if p.value is not None:
            env[p.id] = p.value
    for c in net.compartments:
        if c.size is not None:
            env[c.id] = c.size
        elif c.spatial_dimensions == 0:
            env[c.id] = 1.0
    for r in net.reactions:
        for ref in r.species_refs:
            if ref.id and ref.stoichiometry is not None:
                env[ref.id] = ref.stoichiometry
    given = set(amounts or ())
    # Initial assignments act at the initial time (0 here), rules at t.
    pending = {a.symbol: (a.math, 0.0) for a in net.initial_assignments if a.symbol not in given}
    pending.update({r.variable: (r.math, t) for r in net.assignment_rules})
    declared: dict[str, float] = {}
    for s in net.species:
        if amounts is not None and s.id in amounts:
            declared[s.id] = amounts[s.id]
        elif s.id not in pending and s.initial_amount is not None:
            declared[s.id] = s.initial_amount
        elif s.id not in pending and s.initial_concentration is not None:
            declared[s.id] = s.initial_concentration * env[s.compartment]
    for sid, a in declared.items():
        s = net.species_map[sid]
        env[sid] = a if s.has_only_substance_units else a / env[s.compartment]
    for _ in range(len(pending) + 1):
        for name, (e, when) in list(pending.items()):
            try:
                env[name] = evaluate(e, env, time=when, functions=net.functions_table)
            except ModelError:
                continue
            del pending[name]
    assert not pending, f"unresolved: {sorted(pending)}"
    return env


def independent_rhs(net: ReactionNetwork, amounts: dict[str, float], t: float
                    ) -> dict[str, float]:  # fmt: skip
    env = symbol_values(net, amounts, t)
    rates = {}
    for r in net.reactions:
        local = env | {lp.id: float(lp.value or 0.0) for lp in r.local_parameters}
        if r.rate is not None:
            rates[r.id] = evaluate(r.rate, local, time=t, functions=net.functions_table)
        else:
            rates[r.id] = 0.0
    out = dict.fromkeys(amounts, 0.0)
    for r in net.reactions:
        for sign, refs in ((-1.0, r.reactants), (1.0, r.products)):
            for ref in refs:
                if ref.species in out:
                    s = net.species_map[ref.species]
                    cf_id = s.conversion_factor or net.conversion_factor
                    cf = env[cf_id] if cf_id else 1.0
                    st = env[ref.id] if ref.id else ref.stoichiometry
                    out[ref.species] += sign * cf * float(st) * rates[r.id]  # type: ignore[arg-type]
    return out


def _independently_computable(net: ReactionNetwork, cm: CompiledModel) -> bool:
    """All states are species amounts, and the math needs no simulator (rateOf, variable
    stoichiometry, a reaction rate read by other math)."""
    if not all(k.startswith(AMOUNT) for k in cm.state_keys) or net.events:
        return False
    maths = [r.rate for r in net.reactions if r.rate is not None]
    maths += [a.math for a in net.assignment_rules] + [a.math for a in net.initial_assignments]
    if any(getattr(n, "op", "") == "rateOf" for e in maths for n in walk(e)):
        return False
    names = set(net.reaction_map) | set(net.species_ref_map)
    return not any(getattr(n, "name", "") in names for e in maths for n in walk(e))


RHS_MODELS = [p for p in SEMANTIC + PETAB + NETWORKS if _independently_computable(*load(p))]


def test_most_models_have_an_independent_rhs_check() -> None:
    assert len(RHS_MODELS) >= 50 and set(PETAB + NETWORKS) <= set(RHS_MODELS)


@pytest.mark.parametrize("path", RHS_MODELS, ids=model_id)
def test_rhs_matches_an_independent_evaluation(path: Path) -> None:
    net, cm = load(path)
    y0, v = cm.initial()
    species = [k[len(AMOUNT) :] for k in cm.state_keys]
    stack = vm.new_stack(cm.kernel)
    for y, t in ((y0, 0.0), (perturbed(y0, seed=1), 0.7)):
        dydt = np.zeros(cm.n_states)
        vm.rhs(cm.kernel, t, y, v.copy(), dydt, stack)
        want = independent_rhs(net, dict(zip(species, y.tolist(), strict=True)), t)
        ref = np.array([want[s] for s in species])
        np.testing.assert_allclose(dydt, ref, rtol=1e-12, atol=1e-12 * (np.abs(ref).max() + 1))


def test_rhs_of_egfr_net() -> None:
    net, cm = load(EGFR)
    y0, v = cm.initial()
    species = [k[len(AMOUNT) :] for k in cm.state_keys]
    y = perturbed(y0, seed=5)
    dydt = np.zeros(cm.n_states)
    vm.rhs(cm.kernel, 0.0, y, v, dydt, vm.new_stack(cm.kernel))
    want = independent_rhs(net, dict(zip(species, y.tolist(), strict=True)), 0.0)
    ref = np.array([want[s] for s in species])
    np.testing.assert_allclose(dydt, ref, rtol=1e-11, atol=1e-12 * np.abs(ref).max())


CLOSED = [p for p in [*PETAB, *NETWORKS, EGFR] if conservation_laws(load(p)[0])]


def test_closed_networks() -> None:
    assert {p.stem for p in CLOSED} >= {"multistate", "multisite2", "egfr_net"}
    assert len(CLOSED) >= 7


@pytest.mark.parametrize("path", CLOSED, ids=model_id)
def test_conservation_laws_hold(path: Path) -> None:
    net, cm = load(path)
    laws = conservation_laws(net)
    index = {cm.state_names[i]: i for i, k in enumerate(cm.state_keys) if k.startswith(AMOUNT)}
    y0, v = cm.initial()
    stack = vm.new_stack(cm.kernel)
    for y in (y0, perturbed(y0, seed=2)):
        dydt = np.zeros(cm.n_states)
        vm.rhs(cm.kernel, 0.5, y, v, dydt, stack)
        for law in laws:
            terms = [c * dydt[index[s]] for s, c in law.coefficients.items()]
            assert abs(math.fsum(terms)) <= 1e-12 * (sum(abs(x) for x in terms) + 1e-300), law


# ---------------------------------------------------------------------------------------------
# rateOf, initial values
# ---------------------------------------------------------------------------------------------
def test_rate_of_a_concentration_in_a_growing_compartment() -> None:
    """rateOf(S) for a concentration S = A/V, and of an assignment rule z = S^2 V + time (chain
    rule: dz/dt = 2 S V dS/dt + S^2 dV/dt + 1)."""
    P = parse_expr
    net = ReactionNetwork(
        compartments=(Compartment("V", 2.0, constant=False),),
        species=(Species("S", "V", initial_amount=3.0), Species("T", "V", initial_amount=1.0)),
        parameters=(Parameter("k", 0.7), Parameter("g", 0.3), Parameter("z", constant=False)),
        reactions=(Reaction("r", (SpeciesRef("S"),), (SpeciesRef("T", 2.0),), rate=P("k*S*V")),),
        rate_rules=(RateRule("V", P("g*V + time")),),
        assignment_rules=(AssignmentRule("z", P("S^2 * V + time")),),
    )
    cm = compile_network(net)
    y, v = cm.initial()
    t = 0.4
    y = y * np.array([1.1, 0.9, 1.3])
    dydt = np.zeros(3)
    vm.rhs(cm.kernel, t, y, v, dydt, vm.new_stack(cm.kernel))
    i_s, i_v = cm.state_keys.index(AMOUNT + "S"), cm.state_keys.index("V")
    amount, size = y[i_s], y[i_v]
    quotient_rule = dydt[i_s] / size - (amount / size) * dydt[i_v] / size
    env = {"S": amount / size, "T": y[cm.state_keys.index(AMOUNT + "T")] / size, "V": size,
           "k": 0.7, "g": 0.3}  # fmt: skip
    env["r"] = evaluate(net.reaction_map["r"].rate, env)  # type: ignore[arg-type]
    got = evaluate(rate_of_expr(net, "S"), env, time=t)
    assert got == pytest.approx(quotient_rule, rel=1e-13)
    assert dydt[i_v] == pytest.approx(0.3 * size + t, rel=1e-15)
    s = amount / size
    chain = 2 * s * size * quotient_rule + s**2 * dydt[i_v] + 1.0
    assert evaluate(rate_of_expr(net, "z"), env, time=t) == pytest.approx(chain, rel=1e-13)
    assert evaluate(rate_of_expr(net, "k"), env, time=t) == 0.0


def test_initial_values_and_overrides() -> None:
    P = parse_expr
    net = ReactionNetwork(
        compartments=(Compartment("c", 2.0),),
        species=(Species("A", "c", initial_concentration=1.5), Species("B", "c")),
        parameters=(Parameter("x", 3.0), Parameter("m", 1.0)),
        reactions=(
            Reaction(
                "r",
                (SpeciesRef("A"),),
                (SpeciesRef("B"),),
                rate=P("kl*A"),
                local_parameters=(Parameter("kl", 0.5),),
            ),
        ),
        initial_assignments=(InitialAssignment("m", P("2*x")), InitialAssignment("B", P("m"))),
    )
    cm = compile_network(net)
    y, v = cm.initial()
    amounts = dict(zip(cm.state_names, y.tolist(), strict=True))
    assert amounts == {"A": 3.0, "B": 12.0}  # A: 1.5 * 2; B: concentration m = 6, times 2
    assert v[cm.slot_of("m")] == 6.0
    y, v = cm.initial({"m": 1.0, "c": 4.0, "r.kl": 0.25})  # given values win over assignments
    assert dict(zip(cm.state_names, y.tolist(), strict=True)) == {"A": 6.0, "B": 4.0}
    assert v[cm.slots["r.kl"]] == 0.25
    for bad in ("r.nope", "nope.kl", "q", "r"):
        with pytest.raises(ModelError, match=f"'{bad}'"):
            cm.initial({bad: 1.0})
