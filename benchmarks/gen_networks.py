"""Sparse random mass-action networks for the network-size part of ``benchmarks/ssa.py``.

A network with ``R`` reactions (``R >= 10``) has ``n = max(4, R // 4)`` species
``S0 .. S(n-1)`` in one compartment of size 1, every species an amount
(``hasOnlySubstanceUnits``), so that counts are amounts.  Its reactions are

* a *ring* of ``n`` conversions ``S_p(i) -> S_p(i+1)`` along a random cyclic order ``p``: the
  conversion graph is strongly connected, so every molecule can always move on;
* ``n`` *sinks*, one dimerisation ``2 S_i -> S_j`` per species (``j != i`` random): every species
  loses molecules at a rate quadratic in its own count;
* ``R - 2n`` random reactions in fixed proportions (in a random order), each on distinct random
  species ``A, B, C, D``:

  ========  ====================  ==========  ==============================
  kind      reaction              share       effect on the total count N
  ========  ====================  ==========  ==============================
  split     ``A -> B + C``        1/3         +1
  merge     ``A + B -> C``        1/3         -1
  convert   ``A -> B``            1/6         0
  swap      ``A + B -> C + D``    1/6         0
  ========  ====================  ==========  ==============================

Rate constants are log-uniform per unit time: on ``[1, 10]`` for the ring (every species passes
its molecules on within about one time unit, so the populations settle within a few time
units), on ``[0.1, 10]`` for the others.  The constants of the reactions that remove a molecule
(sinks and merges) are then scaled together so that they sum to those of the splits, and every
bimolecular constant is divided by ``mean_count``: with every species at ``mean_count`` the
molecules made and removed would balance.  (Heterogeneous counts settle elsewhere; the benchmark
prints the measured populations.)

The network can neither explode nor die out.  Splits add at most ``k_max N`` molecules per unit
time, while the sinks alone remove at least ``k_min (N^2/n - N)`` (Cauchy-Schwarz on
``sum_i x_i (x_i - 1)``), so the total count ``N`` stays of order ``n mean_count``.  Every
reaction that removes a molecule needs two, so ``N`` never drops below one, and that molecule
keeps converting and, where it meets a split, multiplying.  Every species starts at
``mean_count``.

The kinetic laws are written as mass action, ``k*A*B`` and ``k*A*A`` for ``2A``, so the
stochastic layer gives them the combinatorial propensities ``k x_A x_B`` and ``k x_A (x_A - 1)``.
"""

from __future__ import annotations

import numpy as np

from scalebridge.model.expr import Sym, mul
from scalebridge.model.network import (
    Compartment,
    Parameter,
    Reaction,
    ReactionNetwork,
    Species,
    SpeciesRef,
)

__all__ = ["KINDS", "random_network"]

# kind: (number of reactants, number of products)
KINDS: dict[str, tuple[int, int]] = {
    "split": (1, 2),
    "merge": (2, 1),
    "convert": (1, 1),
    "swap": (2, 2),
}
# The random reactions' kinds repeat this pattern (then are shuffled): splits and merges differ
# in number by at most one, and both occur from two random reactions on.
PATTERN = ("split", "merge", "convert", "split", "merge", "swap")
K_RANGE = (0.1, 10.0)
RING_K_RANGE = (1.0, 10.0)
MIN_REACTIONS = 10


def _distinct(rng: np.random.Generator, n: int, size: int) -> list[int]:
    """``size`` distinct integers from ``0 .. n-1`` (``n >= size``; by rejection, which is cheap
    where ``n`` is much larger than ``size``, unlike a permutation of all ``n``)."""
    while True:
        pick = [int(i) for i in rng.integers(n, size=size)]
        if len(set(pick)) == size:
            return pick


def _refs(ids: list[str]) -> tuple[SpeciesRef, ...]:
    """Species references with stoichiometries (``['A', 'A']`` -> ``2 A``)."""
    counts: dict[str, int] = {}
    for s in ids:
        counts[s] = counts.get(s, 0) + 1
    return tuple(SpeciesRef(s, float(n)) for s, n in counts.items())


def random_network(n_reactions: int, *, seed: int = 0, mean_count: float = 30.0) -> ReactionNetwork:
    """A sparse random mass-action network with ``n_reactions`` reactions (module docstring)."""
    if n_reactions < MIN_REACTIONS:
        raise ValueError(f"a random network needs at least {MIN_REACTIONS} reactions")
    rng = np.random.default_rng(seed)
    n_s = max(4, n_reactions // 4)
    names = [f"S{i}" for i in range(n_s)]

    reactions: list[tuple[list[str], list[str]]] = []
    order = rng.permutation(n_s)
    for i in range(n_s):
        reactions.append(([names[order[i]]], [names[order[(i + 1) % n_s]]]))
    for i in range(n_s):
        j = (i + 1 + int(rng.integers(n_s - 1))) % n_s  # any species but i
        reactions.append(([names[i], names[i]], [names[j]]))
    kinds = [PATTERN[i % len(PATTERN)] for i in range(n_reactions - 2 * n_s)]
    for kind in rng.permutation(kinds):
        n_in, n_out = KINDS[str(kind)]
        pick = _distinct(rng, n_s, n_in + n_out)
        reactions.append(([names[s] for s in pick[:n_in]], [names[s] for s in pick[n_in:]]))

    lo, hi = np.log(K_RANGE)
    k = np.exp(rng.uniform(lo, hi, size=len(reactions)))
    k[:n_s] = np.exp(rng.uniform(*np.log(RING_K_RANGE), size=n_s))
    n_in = np.array([len(r) for r, _ in reactions])
    n_net = np.array([len(p) - len(r) for r, p in reactions])
    k[n_net < 0] *= k[n_net > 0].sum() / k[n_net < 0].sum()
    k[n_in == 2] /= mean_count

    params: list[Parameter] = []
    rxns: list[Reaction] = []
    for j, (reactants, products) in enumerate(reactions):
        params.append(Parameter(f"k{j}", float(k[j])))
        law = mul(Sym(f"k{j}"), *(Sym(s) for s in reactants))
        rxns.append(Reaction(f"R{j}", _refs(reactants), _refs(products), rate=law))
    species = tuple(
        Species(s, "cell", initial_amount=float(mean_count), has_only_substance_units=True)
        for s in names
    )
    return ReactionNetwork(
        id=f"random_{n_reactions}",
        compartments=(Compartment("cell", 1.0),),
        species=species,
        parameters=tuple(params),
        reactions=tuple(rxns),
    )
