"""Stoichiometric matrix and exact conservation laws.

References are mathematics: laws known in closed form for small networks, the defining identity
c^T N = 0 checked in exact integer arithmetic, dim(left null space) = n_species - rank(N) with the
rank from sympy, and for the BioNetGen egfr network the molecule counts encoded in the species
names (each molecule type is a conserved moiety).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import sympy

from scalebridge.errors import ModelError, UnsupportedFeatureError
from scalebridge.model import (
    AssignmentRule,
    Compartment,
    InitialAssignment,
    Parameter,
    Reaction,
    ReactionNetwork,
    Species,
    SpeciesRef,
    parse_expr,
)
from scalebridge.model.conservation import (
    ConservationLaw,
    conservation_laws,
    left_null_space,
    stoichiometry_matrix,
)
from scalebridge.model.sbml import read_sbml

DATA = Path(__file__).resolve().parents[1] / "data" / "networks"


def rx(rid: str, reactants: str, products: str, **kw: object) -> Reaction:
    """Reaction from text such as ``"2 A + B"`` (empty string: nothing)."""

    def refs(side: str) -> tuple[SpeciesRef, ...]:
        out = []
        for term in filter(None, (t.strip() for t in side.split("+"))):
            parts = term.split()
            st, sp_ = (float(parts[0]), parts[1]) if len(parts) == 2 else (1.0, parts[0])
            out.append(SpeciesRef(sp_, st))
        return tuple(out)

    return Reaction(rid, refs(reactants), refs(products), **kw)  # type: ignore[arg-type]


def network(species: dict[str, float], reactions: list[Reaction], **kw: object) -> ReactionNetwork:
    comps = kw.pop("compartments", (Compartment("c", 1.0),))
    sps = kw.pop("species_objs", None) or tuple(
        Species(s, "c", initial_amount=a) for s, a in species.items()
    )
    return ReactionNetwork(compartments=comps, species=sps, reactions=tuple(reactions), **kw)  # type: ignore[arg-type]


def law_set(laws: list[ConservationLaw]) -> set[frozenset[tuple[str, int]]]:
    return {frozenset(law.coefficients.items()) for law in laws}


# ---------------------------------------------------------------------------------------------
# Stoichiometric matrix
# ---------------------------------------------------------------------------------------------
def test_stoichiometry_matrix_products_minus_reactants():
    net = network(
        {"A": 1, "B": 0, "E": 1, "X": 5, "Z": 0},
        [
            rx("r1", "2 A + E", "A + B + E"),  # A: -1, B: +1, E: 0 (catalyst)
            rx("r2", "B", "2 A"),
            rx("r3", "X", "A"),  # X is a boundary species: not a row
        ],
        species_objs=(
            Species("A", "c", initial_amount=1),
            Species("B", "c", initial_amount=0),
            Species("E", "c", initial_amount=1),
            Species("X", "c", initial_amount=5, boundary_condition=True),
            Species("Z", "c", initial_amount=0),  # in no reaction: not a row
        ),
    )
    species, reactions, n = stoichiometry_matrix(net)
    assert species == ["A", "B", "E"]
    assert reactions == ["r1", "r2", "r3"]
    assert sp.issparse(n) and n.format == "csr" and n.dtype == np.float64
    expected = np.array([[-1, 2, 1], [1, -1, 0], [0, 0, 0]], dtype=float)
    np.testing.assert_array_equal(n.toarray(), expected)


def test_non_numeric_stoichiometry_raises_naming_reaction():
    net = ReactionNetwork(
        compartments=(Compartment("c"),),
        species=(Species("A", "c", initial_amount=1), Species("B", "c", initial_amount=0)),
        parameters=(Parameter("n", 2.0),),
        reactions=(Reaction("conv", (SpeciesRef("A", 1.0),), (SpeciesRef("B", None, id="sB"),)),),
        initial_assignments=(InitialAssignment("sB", parse_expr("n")),),
    )
    for fn in (stoichiometry_matrix, conservation_laws):
        with pytest.raises(ModelError, match="conv") as ei:
            fn(net)
        assert ei.value.element == "conv"
        assert "numeric stoichiometry" in str(ei.value)


def test_stoichiometry_set_by_rule_raises_even_with_a_value():
    net = ReactionNetwork(
        compartments=(Compartment("c"),),
        species=(Species("A", "c", initial_amount=1), Species("B", "c", initial_amount=0)),
        reactions=(
            Reaction(
                "conv", (SpeciesRef("A", 1.0),), (SpeciesRef("B", 1.0, id="sB", constant=False),)
            ),
        ),
        assignment_rules=(AssignmentRule("sB", parse_expr("1 + time")),),
    )
    with pytest.raises(ModelError, match="assignment rule"):
        conservation_laws(net)


def test_variable_stoichiometry_of_a_boundary_species_does_not_matter():
    net = ReactionNetwork(
        compartments=(Compartment("c"),),
        species=(
            Species("X", "c", initial_amount=1, boundary_condition=True),
            Species("A", "c", initial_amount=2),
            Species("B", "c", initial_amount=3),
        ),
        parameters=(Parameter("n", 2.0),),
        reactions=(
            Reaction("r", (SpeciesRef("X", None, id="sX"), SpeciesRef("A")), (SpeciesRef("B"),)),
        ),
        initial_assignments=(InitialAssignment("sX", parse_expr("n")),),
    )
    species, _, n = stoichiometry_matrix(net)
    assert species == ["A", "B"]
    np.testing.assert_array_equal(n.toarray(), [[-1.0], [1.0]])
    assert [(law.coefficients, law.total) for law in conservation_laws(net)] == [
        ({"A": 1, "B": 1}, 5.0)
    ]


# ---------------------------------------------------------------------------------------------
# Known laws
# ---------------------------------------------------------------------------------------------
ENZYME = [rx("bind", "E + S", "ES"), rx("unbind", "ES", "E + S"), rx("cat", "ES", "E + P")]


def test_enzyme_kinetics_readable_basis_and_totals():
    net = network({"E": 2.0, "S": 10.0, "ES": 0.5, "P": 1.0}, ENZYME)
    laws = conservation_laws(net)
    assert law_set(laws) == {
        frozenset({("E", 1), ("ES", 1)}),
        frozenset({("S", 1), ("ES", 1), ("P", 1)}),
    }
    totals = {frozenset(law.coefficients): law.total for law in laws}
    assert totals[frozenset({"E", "ES"})] == pytest.approx(2.5)
    assert totals[frozenset({"S", "ES", "P"})] == pytest.approx(11.5)
    assert str(laws[0]) == "E + ES = 2.5"


@pytest.mark.parametrize(
    "order",
    [("E", "S", "ES", "P"), ("ES", "E", "S", "P"), ("P", "ES", "S", "E"), ("ES", "P", "S", "E")],
)
def test_enzyme_basis_is_non_negative_in_any_species_order(order):
    # In some orders the reduced echelon basis is mixed-sign (E - S - P); the readable basis
    # must still be the two moiety totals.
    net = network(dict.fromkeys(order, 1.0), ENZYME)
    assert law_set(conservation_laws(net)) == {
        frozenset({("E", 1), ("ES", 1)}),
        frozenset({("S", 1), ("ES", 1), ("P", 1)}),
    }


def test_dimerisation():
    net = network({"A": 10.0, "A2": 3.0}, [rx("f", "2 A", "A2"), rx("b", "A2", "2 A")])
    laws = conservation_laws(net)
    assert [law.coefficients for law in laws] == [{"A": 1, "A2": 2}]
    assert laws[0].total == pytest.approx(16.0)
    assert str(laws[0]) == "A + 2 A2 = 16.0"


def test_cycle():
    net = network(
        {"A": 1.0, "B": 2.0, "C": 3.0},
        [rx("ab", "A", "B"), rx("bc", "B", "C"), rx("ca", "C", "A")],
    )
    laws = conservation_laws(net)
    assert [law.coefficients for law in laws] == [{"A": 1, "B": 1, "C": 1}]
    assert laws[0].total == pytest.approx(6.0)


def test_open_network_has_no_laws():
    net = network({"A": 1.0, "B": 0.0}, [rx("in", "", "A"), rx("ab", "A", "B"), rx("out", "B", "")])
    assert conservation_laws(net) == []


def test_annihilation_needs_a_mixed_sign_law():
    net = network({"A": 5.0, "B": 3.0}, [rx("ann", "A + B", "")])
    laws = conservation_laws(net)
    assert len(laws) == 1
    coeffs = laws[0].coefficients
    assert coeffs in ({"A": 1, "B": -1}, {"A": -1, "B": 1})
    assert laws[0].total == pytest.approx(coeffs["A"] * 5.0 + coeffs["B"] * 3.0)
    assert str(ConservationLaw({"A": 1, "B": -1}, 2.0)) == "A - B = 2.0"


def test_catalyst_on_both_sides_is_conserved_alone():
    net = network({"E": 1.0, "S": 4.0, "P": 0.0}, [rx("r", "E + S", "E + P")])
    assert law_set(conservation_laws(net)) == {
        frozenset({("E", 1)}),
        frozenset({("S", 1), ("P", 1)}),
    }


def test_fractional_stoichiometry_is_exact():
    # 0.1 A -> 0.3 B: conserved 3 A + B (exactly, although 0.1 and 0.3 are not binary fractions)
    net = network({"A": 1.0, "B": 1.0}, [rx("r", "0.1 A", "0.3 B")])
    assert [law.coefficients for law in conservation_laws(net)] == [{"A": 3, "B": 1}]


def test_total_uses_concentration_times_size_and_none_when_not_numeric():
    comps = (Compartment("c", 2.0),)
    species = (
        Species("E", "c", initial_concentration=1.5),
        Species("S", "c", initial_amount=4.0),
        Species("ES", "c", initial_amount=0.0),
        Species("P", "c", initial_amount=None),
    )
    net = ReactionNetwork(
        compartments=comps,
        species=species,
        parameters=(Parameter("p0", 1.0),),
        reactions=tuple(ENZYME),
        initial_assignments=(InitialAssignment("P", parse_expr("p0")),),
    )
    totals = {frozenset(law.coefficients): law.total for law in conservation_laws(net)}
    assert totals[frozenset({"E", "ES"})] == pytest.approx(3.0)
    assert totals[frozenset({"S", "ES", "P"})] is None
    law = next(law for law in conservation_laws(net) if law.total is None)
    assert "not all numeric" in str(law)


def test_conversion_factors_scale_the_rows():
    # A -> B, with B's amount changing at twice the reaction extent: 2 A + B is conserved.
    species = (
        Species("A", "c", initial_amount=1.0),
        Species("B", "c", initial_amount=0.0, conversion_factor="two"),
    )
    net = ReactionNetwork(
        compartments=(Compartment("c"),),
        species=species,
        parameters=(Parameter("two", 2.0),),
        reactions=(rx("r", "A", "B"),),
    )
    assert [law.coefficients for law in conservation_laws(net)] == [{"A": 2, "B": 1}]
    varying = net.replace(parameters=(Parameter("two", 2.0, constant=False),))
    with pytest.raises(UnsupportedFeatureError, match="conversion factor"):
        conservation_laws(varying)


# ---------------------------------------------------------------------------------------------
# Random networks: c^T N = 0 exactly, count = n - rank
# ---------------------------------------------------------------------------------------------
def exact_rank(rows: list[list[int]]) -> int:
    return 0 if not rows else sympy.Matrix(rows).rank()


def check_left_null_space(n_int: np.ndarray, vectors: list[dict[int, int]]) -> None:
    m = n_int.shape[0]
    ints = [[int(x) for x in row] for row in n_int.tolist()]
    for v in vectors:
        assert v, "empty law"
        assert all(isinstance(c, int) and c != 0 for c in v.values())
        assert math.gcd(*v.values()) == 1
        # exact c^T N = 0 with Python integers
        for j in range(n_int.shape[1]):
            assert sum(c * ints[i][j] for i, c in v.items()) == 0
    assert len(vectors) == m - exact_rank(ints)
    dense = [[v.get(i, 0) for i in range(m)] for v in vectors]
    assert exact_rank(dense) == len(vectors), "laws are not independent"


@pytest.mark.parametrize("seed", range(40))
def test_random_integer_matrices(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 9))
    n = int(rng.integers(1, 9))
    a = rng.integers(-2, 3, size=(m, n))
    # low-rank products and sparse patterns create larger null spaces
    if seed % 3 == 0:
        a = rng.integers(-2, 3, size=(m, 2)) @ rng.integers(-2, 3, size=(2, n))
    a[rng.random((m, n)) < 0.3] = 0
    check_left_null_space(a, left_null_space(a))
    check_left_null_space(a, left_null_space(sp.csr_matrix(a)))


def random_complex_network(rng: np.random.Generator, n_monomers: int, n_complexes: int):
    """Monomers bind into complexes (A + B -> AB), with unbinding and exchange reactions;
    every reaction conserves each monomer type, so monomer counts are laws."""
    comp: dict[str, Counter[str]] = {f"M{i}": Counter({f"M{i}": 1}) for i in range(n_monomers)}
    names = list(comp)
    reactions = []
    for k in range(n_complexes):
        a, b = rng.choice(names, size=2)
        cid = f"C{k}"
        comp[cid] = comp[a] + comp[b]
        reactions.append(rx(f"bind{k}", f"{a} + {b}" if a != b else f"2 {a}", cid))
        if rng.random() < 0.5:
            reactions.append(rx(f"unbind{k}", cid, f"{a} + {b}" if a != b else f"2 {a}"))
        names.append(cid)
    order = list(names)
    rng.shuffle(order)  # species order must not matter for a non-negative basis
    species = {s: float(rng.integers(0, 5)) for s in order}
    return network(species, reactions), comp


@pytest.mark.parametrize("seed", range(20))
def test_random_mass_conserving_networks(seed):
    rng = np.random.default_rng(100 + seed)
    sizes = (int(rng.integers(2, 5)), int(rng.integers(1, 8))) if seed < 15 else (8, 60)
    net, comp = random_complex_network(rng, *sizes)
    species, _, n = stoichiometry_matrix(net)
    n_int = np.rint(n.toarray()).astype(np.int64)
    laws = conservation_laws(net)
    vectors = [{species.index(s): c for s, c in law.coefficients.items()} for law in laws]
    check_left_null_space(n_int, vectors)
    # every monomer count lies in the span of the laws
    basis = [[law.coefficients.get(s, 0) for s in species] for law in laws]
    for mono in (s for s in comp if s.startswith("M") and s in species):
        moiety = [comp[s][mono] for s in species]
        assert exact_rank([*basis, moiety]) == len(basis)
    # totals are the initial amounts weighted by the coefficients
    amounts = {s.id: s.initial_amount for s in net.species}
    for law in laws:
        assert law.total == pytest.approx(
            sum(c * amounts[s] for s, c in law.coefficients.items())  # type: ignore[operator]
        )
        # Each complex is made by its own binding reaction, so rank N = number of complexes
        # and the laws are exactly the span of the monomer counts, which has a non-negative
        # basis: the readable basis must find one.
        assert all(c > 0 for c in law.coefficients.values())


def test_budget_fallback_still_gives_a_valid_basis(monkeypatch):
    import scalebridge.model.conservation as cons

    monkeypatch.setattr(cons, "_MAX_PAIR_CHECKS", 0)
    net = network(dict.fromkeys(("ES", "E", "S", "P"), 1.0), ENZYME)
    species, _, n = stoichiometry_matrix(net)
    laws = conservation_laws(net)
    vectors = [{species.index(s): c for s, c in law.coefficients.items()} for law in laws]
    check_left_null_space(np.rint(n.toarray()).astype(np.int64), vectors)


def test_fraction_entries_in_left_null_space():
    a = np.array([[0.5], [-0.25], [0.0]])
    vs = left_null_space(a)
    assert len(vs) == 2
    for v in vs:
        assert sum(Fraction(c) * Fraction(repr(float(a[i, 0]))) for i, c in v.items()) == 0


# ---------------------------------------------------------------------------------------------
# egfr_net: 356 species x 3,749 reactions
# ---------------------------------------------------------------------------------------------
def molecule_counts(name: str) -> Counter[str]:
    """Molecule types in a BioNetGen species name such as ``egf(r!1).egfr(Y1068~Y,l!1,r)``."""
    return Counter(re.match(r"([A-Za-z0-9_]+)\(", part).group(1) for part in name.split("."))  # type: ignore[union-attr]


@pytest.mark.parametrize("model", ["egfr_net", "multisite2", "multistate"])
def test_benchmark_networks_laws_are_the_molecule_counts(model):
    net = read_sbml(DATA / f"{model}.xml")
    start = time.perf_counter()
    laws = conservation_laws(net)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"conservation laws took {elapsed:.2f} s"
    counts = {s.id: molecule_counts(s.name) for s in net.species}
    types = sorted({t for c in counts.values() for t in c})
    expected = {frozenset((s, counts[s][t]) for s in counts if counts[s][t]) for t in types}
    assert law_set(laws) == expected
    amounts = {s.id: s.initial_amount for s in net.species}
    for law in laws:
        assert law.total == pytest.approx(
            sum(c * amounts[s] for s, c in law.coefficients.items())  # type: ignore[operator]
        )
