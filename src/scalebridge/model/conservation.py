"""Stoichiometric matrix and exact conservation laws of a reaction network.

Definitions
-----------
Let the *reaction-changed species* be the species that occur in at least one reaction and are
neither boundary nor constant (the species whose amounts the reactions move), in model order, and
let ``N`` be their stoichiometric matrix, ``N[i, j]`` = (stoichiometry of species ``i`` among the
products of reaction ``j``) - (its stoichiometry among the reactants).  A species on both sides
of a reaction (a catalyst) contributes the difference, often zero.

With amounts ``n`` (not concentrations), the reactions give ``dn/dt = D N v`` where ``v`` are the
reaction rates and ``D`` the diagonal matrix of conversion factors (the species' own, else the
model's, else 1).  A *conservation law* is an integer vector ``c`` with ``c^T D N = 0``; then
``c^T n(t) = c^T n(0)`` for every rate law.  The laws form the left null space of ``D N``; its
dimension is ``n_species - rank(D N)``.

Scope and conventions
---------------------
* Laws are about amounts.  ``ConservationLaw.total`` is ``sum_i c_i n_i(0)`` with ``n_i(0)`` the
  initial amount, or the initial concentration times a constant, numerically sized compartment;
  it is None when any of those is not a plain number (an initial assignment, a rule, a missing
  value).
* Stoichiometry must be numeric: a species reference whose stoichiometry is missing or set by an
  initial assignment, a rule or an event raises :class:`~scalebridge.errors.ModelError` naming
  the reaction.  We raise rather than skip the reaction, because a law that ignores a reaction is
  simply false while that reaction runs.
* Conversion factors must be constant parameters with numeric values, else
  :class:`~scalebridge.errors.UnsupportedFeatureError`.
* Events that assign a species of a law reset its total: the law holds between such events.
* Species that no reaction changes (boundary, constant, or in no reaction) are not part of any
  law; they are trivially constant or governed by rules.

Exactness
---------
Everything after reading the model is integer arithmetic.  A float stoichiometry ``x`` is taken
as the decimal number its shortest representation ``repr(x)`` denotes (``0.1`` is 1/10, not the
binary double nearest to it), and each reaction column is scaled by the least common multiple of
its denominators, which leaves the left null space unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from ..errors import ModelError, UnsupportedFeatureError
from .expr import format_number
from .network import Reaction, ReactionNetwork, SpeciesRef

__all__ = [
    "ConservationLaw",
    "conservation_laws",
    "left_null_space",
    "stoichiometry_matrix",
]

# The double-description search for a non-negative basis stops (and the plain reduced basis is
# returned) beyond this many extreme rays; typical networks need a handful.
_MAX_RAYS = 2000
_MAX_PAIR_CHECKS = 20_000_000


@dataclass(frozen=True)
class ConservationLaw:
    """``sum_i coefficients[i] * amount_i = total`` (amounts, not concentrations).

    ``coefficients`` maps species ids to non-zero integers with greatest common divisor 1, in
    model order.  ``total`` is the value at the initial time, or None when an initial amount is
    not a plain number.
    """

    coefficients: dict[str, int]
    total: float | None

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self.coefficients)

    def lhs_text(self) -> str:
        """The left-hand side, e.g. ``E + ES`` or ``2 A2 + A - B``."""
        parts: list[str] = []
        for k, (name, c) in enumerate(self.coefficients.items()):
            mag = abs(c)
            term = name if mag == 1 else f"{mag} {name}"
            if k == 0:
                parts.append(term if c > 0 else f"-{term}")
            else:
                parts.append(f"{'+' if c > 0 else '-'} {term}")
        return " ".join(parts)

    def __str__(self) -> str:
        total = "(initial values not all numeric)" if self.total is None else _fmt(self.total)
        return f"{self.lhs_text()} = {total}"


def _fmt(v: float) -> str:
    s = format_number(v)
    return s if "." in s or "e" in s or "N" in s or "I" in s else f"{s}.0"


# ---------------------------------------------------------------------------------------------
# Stoichiometry
# ---------------------------------------------------------------------------------------------
def _exact(x: float) -> Fraction:
    """The decimal number that ``repr(x)`` denotes, exactly."""
    return Fraction(repr(float(x)))


def _variable_refs(net: ReactionNetwork) -> dict[str, str]:
    """Species-reference ids whose stoichiometry something other than its value sets."""
    refs = net.species_ref_map
    out: dict[str, str] = {}
    for ia in net.initial_assignments:
        if ia.symbol in refs:
            out[ia.symbol] = "an initial assignment"
    for rr in net.assignment_rules:
        if rr.variable in refs:
            out[rr.variable] = "an assignment rule"
    for rt in net.rate_rules:
        if rt.variable in refs:
            out[rt.variable] = "a rate rule"
    for ev in net.events:
        for ea in ev.assignments:
            if ea.variable in refs:
                out[ea.variable] = f"event '{ev.id}'" if ev.id else "an event"
    return out


def _stoich(
    net: ReactionNetwork, r: Reaction, ref: SpeciesRef, variable: Mapping[str, str]
) -> float:
    why = None
    if ref.stoichiometry is None:
        why = "has no numeric value"
    elif ref.id and ref.id in variable:
        why = f"is set by {variable[ref.id]}"
    if why is not None:
        raise ModelError(
            f"the stoichiometry of '{ref.species}' in reaction '{r.id}' {why}; the "
            "stoichiometric matrix and conservation laws need numeric stoichiometry",
            element=r.id,
            source=net.source,
        )
    assert ref.stoichiometry is not None
    return ref.stoichiometry


def _changed_species(net: ReactionNetwork) -> list[str]:
    in_reactions = {ref.species for r in net.reactions for ref in r.species_refs}
    return [
        s.id
        for s in net.species
        if s.id in in_reactions and not s.boundary_condition and not s.constant
    ]


def _columns(net: ReactionNetwork) -> tuple[list[str], list[dict[int, Fraction]]]:
    """Reaction-changed species and, per reaction, the exact net change {row: Fraction}."""
    species = _changed_species(net)
    row = {s: i for i, s in enumerate(species)}
    variable = _variable_refs(net)
    cols: list[dict[int, Fraction]] = []
    for r in net.reactions:
        col: dict[int, Fraction] = {}
        for sign, refs in ((-1, r.reactants), (1, r.products)):
            for ref in refs:
                i = row.get(ref.species)
                if i is None:  # boundary or constant: its stoichiometry does not matter
                    continue
                st = _stoich(net, r, ref, variable)
                if st != 0:
                    col[i] = col.get(i, Fraction(0)) + sign * _exact(st)
        cols.append({i: v for i, v in col.items() if v != 0})
    return species, cols


def stoichiometry_matrix(net: ReactionNetwork) -> tuple[list[str], list[str], sp.csr_matrix]:
    """``(species_ids, reaction_ids, N)`` with ``N`` a float CSR matrix of shape
    (species, reactions): ``N[i, j]`` = products minus reactants stoichiometry of species ``i``
    in reaction ``j``.

    Rows are the reaction-changed species (in a reaction, not boundary, not constant), in model
    order; columns are all reactions, in model order.  Conversion factors are not applied.
    Raises :class:`ModelError` when a stoichiometry is not numeric (see the module docstring).
    """
    species, cols = _columns(net)
    rows: list[int] = []
    idx: list[int] = []
    data: list[float] = []
    for j, col in enumerate(cols):
        for i, v in col.items():
            rows.append(i)
            idx.append(j)
            data.append(float(v))
    n = sp.csr_matrix(
        (
            np.asarray(data, dtype=float),
            (np.asarray(rows, dtype=np.int64), np.asarray(idx, dtype=np.int64)),
        ),
        shape=(len(species), len(cols)),
        dtype=float,
    )
    return species, list(net.reaction_ids), n


# ---------------------------------------------------------------------------------------------
# Exact integer linear algebra on sparse vectors {index: int}
# ---------------------------------------------------------------------------------------------
def _integer_column(col: Mapping[int, Fraction]) -> dict[int, int]:
    """The column scaled to coprime integers (same span)."""
    den = 1
    for v in col.values():
        den = math.lcm(den, v.denominator)
    out = {i: int(v * den) for i, v in col.items()}
    return _primitive(out)


def _primitive(v: dict[int, int]) -> dict[int, int]:
    g = 0
    for x in v.values():
        g = math.gcd(g, x)
        if g == 1:
            return v
    if g > 1:
        return {i: x // g for i, x in v.items()}
    return v


def _reduce(basis: dict[int, dict[int, int]], v: dict[int, int]) -> dict[int, int]:
    """Eliminate from ``v`` the last non-zero entry while it is a pivot of ``basis``.

    ``basis`` maps each pivot (the last non-zero index of its vector) to the vector.  Returns
    the reduced vector, empty when ``v`` lies in the span; otherwise its last non-zero index is
    not a pivot.  Cross-multiplication keeps every entry an integer.
    """
    while v:
        p = max(v)
        b = basis.get(p)
        if b is None:
            return v
        a, c = b[p], v[p]
        g = math.gcd(a, c)
        a //= g
        c //= g
        if a < 0:
            a, c = -a, -c
        new = {i: a * x for i, x in v.items()} if a != 1 else dict(v)
        for i, x in b.items():
            y = new.get(i, 0) - c * x
            if y:
                new[i] = y
            else:
                new.pop(i, None)
        v = _primitive(new)
    return v


def _column_space(columns: Iterable[dict[int, int]], m: int) -> dict[int, dict[int, int]]:
    """An echelon basis of the span of integer ``columns`` in Z^m, keyed by pivot.

    Pivots are last non-zero positions and pairwise distinct, so the pivot set is the
    lexicographically last basis of the row matroid (an invariant of the span).
    """
    basis: dict[int, dict[int, int]] = {}
    seen: set[tuple[tuple[int, int], ...]] = set()
    for col in columns:
        if not col:
            continue
        # Reversible pairs and repeated rules give equal columns up to sign: reduce each once.
        key = tuple(sorted(col.items()))
        last = key[-1][1]
        if last < 0:
            key = tuple((i, -x) for i, x in key)
        if key in seen:
            continue
        seen.add(key)
        v = _reduce(basis, dict(col))
        if v:
            basis[max(v)] = v
            if len(basis) == m:
                break
    return basis


def _null_vectors(basis: Mapping[int, Mapping[int, int]], m: int) -> list[dict[int, int]]:
    """Integer basis of {c : c . b = 0 for every b in ``basis``}, one vector per free index.

    Free indices are the non-pivots ``F``; the vector for ``f`` in ``F`` is zero on ``F`` except
    at ``f`` and is found by forward substitution over the pivots in increasing order (a pivot's
    equation involves only smaller indices).  So the basis is the reduced row echelon form of
    the null space with the pivots as far left as possible.
    """
    pivots = sorted(basis)
    free = [i for i in range(m) if i not in basis]
    out: list[dict[int, int]] = []
    for f in free:
        c: dict[int, int] = {f: 1}
        for p in pivots:
            if p < f:
                continue
            b = basis[p]
            s = 0
            for i, x in b.items():
                if i != p:
                    y = c.get(i)
                    if y:
                        s += x * y
            if s == 0:
                continue
            bp = b[p]
            g = math.gcd(s, bp)
            mult = abs(bp) // g
            if mult != 1:
                c = {i: y * mult for i, y in c.items()}
            c[p] = -(s * mult) // bp
        out.append(_primitive(c))
    return out


# ---------------------------------------------------------------------------------------------
# A readable basis: non-negative vectors of small support where possible
# ---------------------------------------------------------------------------------------------
def _extreme_rays(kernel: Sequence[dict[int, int]]) -> list[dict[int, int]] | None:
    """Extreme rays of the cone {c in span(kernel) : c >= 0} (double description), or None
    when the search exceeds its budget.

    ``kernel`` is the reduced basis of :func:`_null_vectors`: vector ``k`` is zero at the other
    vectors' free indices and positive at its own, so it starts as a simplicial cone (the
    constraints at free indices hold) and each remaining index ``i`` adds ``c_i >= 0``.  Rays
    are kept with their zero sets as bitmasks; two rays on opposite sides of a new constraint
    combine into a new ray only when they are adjacent (no third ray vanishes wherever both
    vanish: the combinatorial test of Fukuda & Prodon, 1996).
    """
    k = len(kernel)
    free_idx = [min(v) for v in kernel]  # vector k is positive at its free index, its minimum
    processed_mask = 0
    for f in free_idx:
        processed_mask |= 1 << f

    def zeros(v: Mapping[int, int]) -> int:
        z = processed_mask
        for i in v:
            if (processed_mask >> i) & 1:
                z &= ~(1 << i)
        return z

    rays: list[tuple[dict[int, int], int]] = [(dict(v), zeros(v)) for v in kernel]
    rest = sorted(set().union(*(set(v) for v in kernel)) - set(free_idx))
    checks = 0
    for i in rest:
        bit = 1 << i
        pos = [(v, z) for v, z in rays if v.get(i, 0) > 0]
        neg = [(v, z) for v, z in rays if v.get(i, 0) < 0]
        zero = [(v, z | bit) for v, z in rays if v.get(i, 0) == 0]
        processed_mask |= bit
        if not neg:
            rays = [(v, z) for v, z in pos] + zero
            continue
        new: list[tuple[dict[int, int], int]] = []
        need = k - 2
        for vp, zp in pos:
            sp_ = vp[i]
            for vn, zn in neg:
                z = zp & zn
                if need > 0 and z.bit_count() < need:
                    continue
                checks += len(rays)
                if checks > _MAX_PAIR_CHECKS:
                    return None
                adjacent = True
                for vr, zr in rays:
                    if vr is vp or vr is vn:
                        continue
                    if zr & z == z:
                        adjacent = False
                        break
                if not adjacent:
                    continue
                sn = -vn[i]
                w: dict[int, int] = {}
                for j, x in vp.items():
                    w[j] = sn * x
                for j, x in vn.items():
                    y = w.get(j, 0) + sp_ * x
                    if y:
                        w[j] = y
                    else:
                        w.pop(j, None)
                w.pop(i, None)
                w = _primitive(w)
                new.append((w, zeros(w)))
        rays = [(v, z) for v, z in pos] + zero + new
        if len(rays) > _MAX_RAYS:
            return None
    return [v for v, _ in rays]


def _readable_basis(kernel: list[dict[int, int]]) -> list[dict[int, int]]:
    """A basis of span(kernel): as many non-negative, small-support vectors as possible.

    Method: enumerate the extreme rays of the cone of non-negative vectors in the span (these
    are the non-negative laws of minimal support, such as moiety totals), pick them greedily by
    increasing support size (ties: earliest species first) while they are linearly independent,
    then complete with vectors of the reduced echelon basis, again smallest support first.  If
    the ray enumeration exceeds its budget, the reduced echelon basis is used as it is.
    """
    if not kernel:
        return []
    if all(x > 0 for v in kernel for x in v.values()):
        candidates: list[dict[int, int]] = list(kernel)
    else:
        rays = _extreme_rays(kernel)
        if rays is None:
            return _sorted_laws(kernel)
        candidates = sorted(rays, key=_support_key)
    chosen: list[dict[int, int]] = []
    echelon: dict[int, dict[int, int]] = {}
    for v in [*candidates, *sorted(kernel, key=_support_key)]:
        if len(chosen) == len(kernel):
            break
        r = _reduce(echelon, dict(v))
        if r:
            echelon[max(r)] = r
            chosen.append(v)
    return _sorted_laws(chosen)


def _support_key(v: Mapping[int, int]) -> tuple[int, int, tuple[int, ...]]:
    idx = tuple(sorted(v))
    return (len(idx), sum(1 for x in v.values() if x < 0), idx)


def _sorted_laws(vs: Iterable[dict[int, int]]) -> list[dict[int, int]]:
    out = []
    for v in vs:
        n_neg = sum(1 for x in v.values() if x < 0)
        if 2 * n_neg > len(v) or (2 * n_neg == len(v) and v[min(v)] < 0):
            v = {i: -x for i, x in v.items()}
        out.append(dict(sorted(v.items())))
    return sorted(out, key=lambda v: (min(v), len(v), tuple(v)))


def left_null_space(
    matrix: sp.spmatrix | sp.sparray | np.ndarray | Sequence[Sequence[float]],
) -> list[dict[int, int]]:
    """Exact integer basis of the left null space ``{c : c^T A = 0}`` of a rational matrix.

    Entries are read as the decimals their ``repr`` denotes.  Each vector is a sparse
    ``{row: coefficient}`` with coprime integer coefficients; the basis is the readable one of
    :func:`conservation_laws` (non-negative and small support where the space allows).
    """
    if sp.issparse(matrix):
        csc = sp.csc_matrix(matrix)
        m, n = csc.shape
        cols = []
        for j in range(n):
            lo, hi = csc.indptr[j], csc.indptr[j + 1]
            cols.append(
                {
                    int(i): _exact(float(x))
                    for i, x in zip(csc.indices[lo:hi], csc.data[lo:hi], strict=True)
                    if x != 0
                }
            )
    else:
        arr = np.asarray(matrix, dtype=float)
        if arr.ndim != 2:
            raise ValueError(f"expected a 2-D matrix, got shape {arr.shape}")
        m, n = arr.shape
        cols = [{i: _exact(arr[i, j]) for i in range(m) if arr[i, j] != 0} for j in range(n)]
    if not all(math.isfinite(float(x)) for col in cols for x in col.values()):
        raise ValueError("matrix entries must be finite")
    return _left_null(cols, m)


def _left_null(cols: Iterable[Mapping[int, Fraction]], m: int) -> list[dict[int, int]]:
    basis = _column_space((_integer_column(c) for c in cols if c), m)
    if len(basis) == m:
        return []
    kernel = _null_vectors(basis, m)
    return _readable_basis(kernel)


# ---------------------------------------------------------------------------------------------
# Conservation laws of a network
# ---------------------------------------------------------------------------------------------
def _conversion_factors(net: ReactionNetwork, species: Sequence[str]) -> list[Fraction] | None:
    """Exact conversion factor per species, or None when no conversion factor is in effect."""
    model_cf = net.conversion_factor
    if model_cf is None and not any(net.species_map[s].conversion_factor for s in species):
        return None
    ruled = set(net.assignment_rule_map) | set(net.rate_rule_map) | set(net.initial_assignment_map)
    ruled |= {ea.variable for ev in net.events for ea in ev.assignments}
    out: list[Fraction] = []
    for s in species:
        name = net.species_map[s].conversion_factor or model_cf
        if name is None:
            out.append(Fraction(1))
            continue
        p = net.parameter_map[name]
        if not p.constant or p.value is None or name in ruled:
            raise UnsupportedFeatureError(
                "conservation laws with a conversion factor that is not a constant number",
                element=s,
                source=net.source,
                detail=f"conversion factor '{name}'",
            )
        out.append(_exact(p.value))
    return out


def _initial_amounts(net: ReactionNetwork, species: Sequence[str]) -> list[float | None]:
    set_later = set(net.initial_assignment_map) | set(net.assignment_rule_map)
    out: list[float | None] = []
    for s_id in species:
        s = net.species_map[s_id]
        amount: float | None = None
        if s_id not in set_later:
            if s.initial_amount is not None:
                amount = s.initial_amount
            elif s.initial_concentration is not None:
                c = net.compartment_map[s.compartment]
                if c.size is not None and c.constant and c.id not in set_later:
                    amount = s.initial_concentration * c.size
        out.append(amount)
    return out


def conservation_laws(net: ReactionNetwork) -> list[ConservationLaw]:
    """A basis of the conservation laws of ``net``, computed exactly (see the module docstring).

    Method:

    1. Build the integer columns of ``D N`` (one per reaction; equal columns up to sign are
       reduced once) and reduce them to an echelon basis of the column space by fraction-free
       elimination on sparse integer vectors, pivoting on each vector's last non-zero entry.
    2. The non-pivot species ``F`` index the left null space: for each ``f`` in ``F`` forward
       substitution gives the integer vector that is 1 (scaled) at ``f`` and 0 at the rest of
       ``F``.  This is the reduced echelon basis with pivots on the earliest possible species,
       which in most models are free monomers such as ``E`` and ``S`` in an enzyme model.
    3. Readable basis: if that basis is non-negative it is kept; otherwise the extreme rays of
       the cone of non-negative laws are enumerated (double description), chosen greedily by
       support size while independent, and the basis is completed from step 2 where no
       non-negative law exists (e.g. ``A - B`` for ``A + B -> 0``).

    Every vector has coprime integer coefficients; one with mixed signs is oriented so that
    most coefficients are positive.  Laws are ordered by their first species in model order.
    For E + S <-> ES -> E + P the result is ``E + ES`` and ``S + ES + P``.

    Raises :class:`ModelError` for non-numeric stoichiometry and
    :class:`UnsupportedFeatureError` for non-constant conversion factors.
    """
    species, cols = _columns(net)
    m = len(species)
    if m == 0:
        return []
    cf = _conversion_factors(net, species)
    if cf is not None:
        cols = [{i: v * cf[i] for i, v in col.items() if cf[i] != 0} for col in cols]
    vectors = _left_null(cols, m)
    amounts = _initial_amounts(net, species)
    laws = []
    for v in vectors:
        coeffs = {species[i]: c for i, c in v.items()}
        vals = [amounts[i] for i in v]
        total = None
        if all(a is not None for a in vals):
            total = math.fsum(
                c * float(a) for c, a in zip(v.values(), vals, strict=True) if a is not None
            )
        laws.append(ConservationLaw(coeffs, total))
    return laws
