"""The stochastic model layer: mass-action recognition, combinatorial propensities, scaling,
state-change tables, the dependency graph, refusals, and the random streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import scalebridge as sb
from scalebridge.codegen.stochastic import compile_stochastic
from scalebridge.errors import ModelError, OptionError, UnsupportedFeatureError
from scalebridge.wellmixed import propensity as prop


def model(text: str) -> sb.ReactionNetwork:
    return sb.from_antimony(f"model m\n{text}\nend")


def propensities(sm, x) -> np.ndarray:  # type: ignore[no-untyped-def]
    _, _, v = sm.initial()
    a = np.zeros(sm.tables.n_reactions)
    prop.all_propensities(sm.tables, np.asarray(x, dtype=float), v, a, np.empty(64))
    return a


def test_mass_action_laws_get_the_combinatorial_form() -> None:
    sm = compile_stochastic(
        model(
            " species A = 0, B = 0, C = 0\n"
            " r1: 2 A -> B; 0.5*k*A*A\n"
            " r2: A + B -> C; k2*A*B\n"
            " r3: 3 C -> ; k3*C^3\n"
            " r4: -> A; k4\n"
            " k = 2; k2 = 3; k3 = 0.25; k4 = 7"
        )
    )
    assert sm.mass_action == [True, True, True, True]
    assert sm.converted == ["r1", "r3"]
    x = [5, 4, 6]
    a = propensities(sm, x)
    assert a[0] == pytest.approx(0.5 * 2 * 5 * 4)  # A(A-1), not A^2
    assert a[1] == pytest.approx(3 * 5 * 4)
    assert a[2] == pytest.approx(0.25 * 6 * 5 * 4)  # C(C-1)(C-2)
    assert a[3] == pytest.approx(7)
    # too few molecules for the order: zero, never negative
    assert propensities(sm, [1, 0, 2])[0] == 0.0
    assert propensities(sm, [1, 0, 2])[2] == 0.0


def test_other_laws_are_used_as_written() -> None:
    sm = compile_stochastic(
        model(
            " species P = 0, P2 = 0, S = 0\n"
            " dim: 2 P -> P2; k1*P*(P - 1)/2\n"  # already combinatorial: as written
            " mm: S -> ; V*S/(K + S)\n"
            " cat: -> P; kp*S*S\n"  # a modifier squared stays as written
            " k1 = 1; V = 3; K = 2; kp = 0.5"
        )
    )
    assert sm.mass_action == [False, False, False]
    a = propensities(sm, [10, 0, 4])
    assert a == pytest.approx([45.0, 3 * 4 / 6, 0.5 * 16])


def test_compartment_sizes_and_counts_per_amount_scale_the_constants() -> None:
    # concentration symbols: a = s * k * (x_A / (s V)) * (x_B / (s V)) for A + B -> C
    net = model(
        " compartment c = 2.5\n species A in c = 0, B in c = 0, C in c = 0\n"
        " r: A + B -> C; k*A*B*c\n k = 4"
    )
    sm = compile_stochastic(net)
    a = propensities(sm, [3, 5, 0])
    assert a[0] == pytest.approx(4 * 3 * 5 / 2.5)
    sm2 = compile_stochastic(net, counts_per_amount=100.0)
    a2 = propensities(sm2, [300, 500, 0])
    assert a2[0] == pytest.approx(100 * 4 * (3.0 / 2.5) * (5.0 / 2.5) * 2.5)


def test_moles_need_an_explicit_scale() -> None:
    net = sb.load("tests/data/sbml-semantic/00001/00001-sbml-l3v2.xml")
    with pytest.raises(OptionError, match="counts_per_amount"):
        compile_stochastic(net)
    sm = compile_stochastic(net, counts_per_amount=6.02214076e23 * 1e-20)
    assert sm.counts_per_amount == pytest.approx(6.02214076e3)


def test_state_change_table_nets_both_sides() -> None:
    sm = compile_stochastic(
        model(" species A = 0, B = 0\n r: A + B -> 2 B; k*A*B\n s: A -> A; k\n k = 1")
    )
    T = sm.tables
    change = {
        sm.reactions[j]: {
            sm.species[T.st_idx[p]]: T.st_val[p] for p in range(T.st_ptr[j], T.st_ptr[j + 1])
        }
        for j in range(T.n_reactions)
    }
    assert change == {"r": {"A": -1.0, "B": 1.0}, "s": {}}


def test_non_integer_stoichiometry_is_refused_naming_the_reaction() -> None:
    net = model(" species A = 0\n r: 1.5 A -> ; k*A\n k = 1")
    with pytest.raises(ModelError, match=r"'r'.*non-integer"):
        compile_stochastic(net)


def test_refusals_name_the_element() -> None:
    with pytest.raises(UnsupportedFeatureError, match="rate rule"):
        compile_stochastic(model(" species A = 0\n J: -> A; k\n p' = 1\n p = 0; k = 1"))
    with pytest.raises(UnsupportedFeatureError, match=r"time.*J"):
        compile_stochastic(model(" species A = 0\n J: -> A; k*time\n k = 1"))
    with pytest.raises(UnsupportedFeatureError, match="both time and species"):
        compile_stochastic(model(" species A = 0\n J: -> A; k\n k = 1\n E: at (A > time): k = 0"))


def test_non_integer_initial_counts_are_refused() -> None:
    sm = compile_stochastic(model(" species A = 2.5\n J: A -> ; k*A\n k = 1"))
    with pytest.raises(ModelError, match=r"'A'.*whole"):
        sm.initial()


def test_dependency_graph_is_exactly_the_propensities_that_change() -> None:
    net = model(
        " species A = 0, B = 0, C = 0, D = 0\n"
        " r1: A -> B; k*A\n r2: B -> C; k*B\n r3: C + A -> D; k*C*A\n"
        " r4: D -> ; V*D/(K + D)\n r5: -> A; k\n r6: B -> B + C; k*B\n"
        " k = 1.3; V = 2; K = 3"
    )
    sm = compile_stochastic(net)
    T = sm.tables
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = rng.integers(0, 9, size=T.n_species).astype(float)
        a0 = propensities(sm, x)
        for j in range(T.n_reactions):
            y = x.copy()
            for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
                y[T.st_idx[p]] += T.st_val[p]
            changed = set(np.nonzero(propensities(sm, y) != a0)[0])
            listed = set(T.dep_idx[T.dep_ptr[j] : T.dep_ptr[j + 1]])
            assert changed <= listed, (sm.reactions[j], changed, listed)
    # and nothing superfluous: r5 (-> A) touches exactly the readers of A
    j = sm.reactions.index("r5")
    assert {sm.reactions[k] for k in T.dep_idx[T.dep_ptr[j] : T.dep_ptr[j + 1]]} == {"r1", "r3"}


def test_general_laws_read_assignment_rules_of_species() -> None:
    sm = compile_stochastic(
        model(" species A = 0, B = 0\n tot := A + 2*B\n J: -> B; k*tot\n K2: A -> ; k*A\n k = 0.5")
    )
    a = propensities(sm, [3, 4])
    assert a[0] == pytest.approx(0.5 * (3 + 8))
    j = sm.reactions.index("K2")  # changes A, which J reads through the rule
    T = sm.tables
    assert sm.reactions.index("J") in T.dep_idx[T.dep_ptr[j] : T.dep_ptr[j + 1]]


def test_uniform_and_normal_streams() -> None:
    # 2e5 draws: the KS statistic exceeds 1.95/sqrt(n) with probability ~1e-3 per check.
    s = prop.stream_states(np.random.SeedSequence(7).spawn(1))[0]
    n = 200_000
    u = np.array([prop.uniform(s) for _ in range(n)])
    assert 0.0 < u.min() and u.max() < 1.0
    assert stats.kstest(u, "uniform").statistic < 1.95 / math.sqrt(n)
    z = np.array([prop.normal(s) for _ in range(n)])
    assert stats.kstest(z, "norm").statistic < 1.95 / math.sqrt(n)
    e = np.array([prop.exponential(s) for _ in range(n)])
    assert stats.kstest(e, "expon").statistic < 1.95 / math.sqrt(n)


def test_streams_are_independent_and_reproducible() -> None:
    a = prop.stream_states(np.random.SeedSequence(1).spawn(3))
    b = prop.stream_states(np.random.SeedSequence(1).spawn(3))
    assert np.array_equal(a, b)
    assert len({tuple(r) for r in a}) == 3
    x = [prop.next_u64(a[0]) for _ in range(5)]
    y = [prop.next_u64(b[0]) for _ in range(5)]
    assert x == y


def test_info_says_which_reactions_were_converted() -> None:
    from scalebridge.codegen.stochastic import stochastic_summary

    s = stochastic_summary(
        model(
            " species A = 0, B = 0\n r1: 2 A -> B; 0.5*k*A*A\n r2: B -> ; k*B\n"
            " r3: B -> A; V*B/(K + B)\n k = 1; V = 1; K = 2"
        )
    )
    assert s["converted to combinatorial mass action"] == ["r1"]
    assert s["mass action, unchanged"] == ["r2"]
    assert s["laws used as written"] == ["r3"]
    bad = stochastic_summary(model(" species A = 0\n r: 1.5 A -> ; k*A\n k = 1"))
    assert bad["available"] is False and "non-integer" in str(bad["reason"])
