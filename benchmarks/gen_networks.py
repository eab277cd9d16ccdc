"""Sparse random mass-action networks for the network-size part of ``benchmarks/ssa.py``.

A network with ``R`` reactions has ``n = max(4, R // 4)`` species ``S0 .. S(n-1)`` in one
compartment of size 1, every species an amount (``hasOnlySubstanceUnits``), so that counts are
amounts.  Its reactions are

* a *ring* of ``n`` conversions ``S_p(i) -> S_p(i+1)`` along a random cyclic order ``p``: every
  molecule can always move on, and the conversion graph is strongly connected, so no species is
  a dead end;
* ``R - n`` random reactions in fixed proportions (in a random order), each with distinct
  random species ``A, B, C, D`` (``B`` may equal ``A``, giving a dimerisation ``2A -> ...``):

  ========  ====================  ==========  ==============================
  kind      reaction              share       effect on the total count N
  ========  ====================  ==========  ==============================
  convert   ``A -> B``            1/6         0
  split     ``A -> B + C``        1/3         +1
  merge     ``A + B -> C``        1/3         -1
  swap      ``A + B -> C + D``    1/6         0
  ========  ====================  ==========  ==============================

Rate constants are log-uniform on ``[0.1, 10]`` per unit time, those of the ring on ``[1, 10]``
(every species passes its molecules on within about one time unit, so none piles up for long
and the populations settle within a few time units); the merge constants are then
scaled together so that they sum to the split constants, and every bimolecular constant is
divided by ``mean_count``.  Splits make molecules at a rate linear in the counts and merges
remove them at a quadratic one, so the total count settles where the two balance: at
``mean_count`` molecules per species in the mean-field picture with equal counts, higher in
practice because species with slow exits accumulate (the benchmark prints the measured
populations).  The
network can neither explode (the loss is quadratic) nor die out (the total cannot drop below one
molecule, which keeps converting and splitting).  Every species starts at ``mean_count``.

The kinetic laws are written as mass action, ``k*A*B`` (``k*A*A`` for ``2A``), so the stochastic
layer gives them the combinatorial propensities ``k x_A x_B`` and ``k x_A (x_A - 1)``.
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

# kind: (reactants, products)
KINDS: dict[str, tuple[int, int]] = {
    "convert": (1, 1),
    "split": (1, 2),
    "merge": (2, 1),
    "swap": (2, 2),
}
K_RANGE = (0.1, 10.0)
RING_K_RANGE = (1.0, 10.0)


def _refs(ids: list[str]) -> tuple[SpeciesRef, ...]:
    """Species references with stoichiometries (``['A', 'A']`` -> ``2 A``)."""
    counts: dict[str, int] = {}
    for s in ids:
        counts[s] = counts.get(s, 0) + 1
    return tuple(SpeciesRef(s, float(n)) for s, n in counts.items())


def _distinct(rng: np.random.Generator, n: int, size: int) -> list[int]:
    """``size`` distinct integers from ``0 .. n-1`` (``n`` >= ``size``; rejection, cheap when
    ``n`` is much larger than ``size``)."""
    while True:
        pick = [int(i) for i in rng.integers(n, size=size)]
        if len(set(pick)) == size:
            return pick


def random_network(n_reactions: int, *, seed: int = 0, mean_count: float = 30.0) -> ReactionNetwork:
    """A sparse random mass-action network with ``n_reactions`` reactions (module docstring)."""
    if n_reactions < 3:
        raise ValueError("a random network needs at least 3 reactions")
    rng = np.random.default_rng(seed)
    n_s = max(4, n_reactions // 4)
    names = [f"S{i}" for i in range(n_s)]
    lo, hi = np.log(K_RANGE[0]), np.log(K_RANGE[1])

    reactions: list[tuple[list[str], list[str]]] = []
    order = rng.permutation(n_s)
    for i in range(n_s):
        reactions.append(([names[order[i]]], [names[order[(i + 1) % n_s]]]))
    # The kinds in their proportions (a repeating pattern, shuffled): splits and merges differ
    # by at most one, and both occur from two random reactions on.
    pattern = ["split", "merge", "convert", "split", "merge", "swap"]
    kinds = [pattern[i % len(pattern)] for i in range(n_reactions - n_s)]
    for kind in rng.permutation(kinds):
        n_in, n_out = KINDS[kind]
        pick = _distinct(rng, n_s, n_in + n_out)
        if n_in == 2 and rng.random() < 1.0 / n_s:
            pick[1] = pick[0]  # a dimerisation, about as often as a random pair repeats
        reactants = [names[s] for s in pick[:n_in]]
        products = [names[s] for s in pick[n_in:]]
        reactions.append((reactants, products))

    k = np.exp(rng.uniform(lo, hi, size=len(reactions)))
    k[:n_s] = np.exp(rng.uniform(np.log(RING_K_RANGE[0]), np.log(RING_K_RANGE[1]), size=n_s))
    n_in = np.array([len(r) for r, _ in reactions])
    n_net = np.array([len(p) - len(r) for r, p in reactions])
    made, lost = k[n_net > 0].sum(), k[n_net < 0].sum()
    if made > 0 and lost > 0:
        k[n_net < 0] *= made / lost  # splits and merges balance at mean_count per species
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
