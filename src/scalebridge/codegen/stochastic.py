"""A network as data for the stochastic kernels (SSA, tau-leaping, CLE, FSP).

Conventions (DESIGN.md, "Command line")
---------------------------------------
* The state is the molecule count of every species that reactions change.  SBML amounts are
  counts: ``count = counts_per_amount x amount`` with ``counts_per_amount`` = 1 unless the
  caller gives another scale.  A model whose substance units are moles needs that scale and
  says so (:class:`~scalebridge.errors.OptionError`) instead of being run with a silent guess.
* A compartment without a size has size 1 (the system size Omega is the compartment size where
  one is given, 1 otherwise).
* Reaction propensities are the kinetic laws as written (in counts per unit time:
  ``a_j = counts_per_amount x rate_j``), except that a law *recognised as mass action* -- a
  species-free factor ``C`` times the product of the reactants' symbols, each to the power of
  its stoichiometry (``k*A*B``, ``0.5*k*S*S``, ``k*S^2``, ``c*k*E*S`` with a compartment size
  ``c``) -- gets the combinatorial form: each ``S^nu`` becomes the falling factorial
  ``x(x-1)...(x-nu+1)`` of the count, scaled to the species' symbol (divided by
  ``counts_per_amount`` and, for a concentration, by the compartment size).  Hence
  ``a_j = c_j prod_i ff(x_i, nu_ij)`` with
  ``c_j = C s^(1 - sum nu) prod_(concentration species) V_i^(-nu_ij)``.
* Stoichiometry must be integer and numeric; reactions change counts by whole molecules.

What is refused (:class:`~scalebridge.errors.UnsupportedFeatureError`, naming the element):
rate rules (continuous variables in a stochastic run need a hybrid method), stoichiometry set by
rules or events, propensities that depend on time, and event triggers that depend on both time
and species.

The tables (:class:`SsaTables`) hold, per reaction, the net state change (CSR), the
mass-action data or the bytecode segment that computes a general law, and the dependency graph
(which propensities to recompute after reaction j fires).  Everything else -- rules, events,
outputs, initial values -- comes from the deterministic compiled model
(:class:`~scalebridge.codegen.build.CompiledModel`) the tables point into: its value array ``v``
holds amounts in the state slots, which the kernels keep up to date.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..errors import ModelError, OptionError, UnsupportedFeatureError
from ..model.expr import (
    Call,
    Expr,
    FunCall,
    Num,
    Sym,
    expand_functions,
    fold,
    mul,
    power,
    substitute,
    symbols,
    walk,
)
from ..model.network import Reaction, ReactionNetwork
from ..model.rates import resolve_rate_of
from .build import AMOUNT, CLOCK, CompiledModel, compile_network
from .program import Assembler


class SsaTables(NamedTuple):
    """Arrays for the compiled stochastic kernels (see the module docstring)."""

    n_species: int
    n_reactions: int
    scale: float  # counts per amount unit
    x_slots: np.ndarray  # int64[n_s]: slot of each species' amount in v
    x_state: np.ndarray  # int64[n_s]: index of each species in the compiled model's state y
    st_ptr: np.ndarray  # int64[n_r + 1]: net state change of reaction j is
    st_idx: np.ndarray  # int64[:]        st_val[p] on species st_idx[p], p in st_ptr[j]..
    st_val: np.ndarray  # float64[:]
    is_ma: np.ndarray  # bool[n_r]
    ma_ptr: np.ndarray  # int64[n_r + 1]: reactants of mass-action reaction j (species, order)
    ma_idx: np.ndarray  # int64[:]
    ma_ord: np.ndarray  # int64[:]
    c_slot: np.ndarray  # int64[n_r]: slot of c_j in v (mass action), -1 otherwise
    rate_slot: np.ndarray  # int64[n_r]: slot of the kinetic law (general), -1 otherwise
    code: np.ndarray  # int32[:]: bytecode of general laws and of the c_j
    consts: np.ndarray  # float64[:]
    prop_seg: np.ndarray  # int64[n_r, 2]: code computing rate_slot[j] (general laws)
    const_seg: np.ndarray  # int64[2]: code computing every c_j (after fixed values change)
    stack_size: int
    dep_ptr: np.ndarray  # int64[n_r + 1]: reactions whose propensity reaction j changes
    dep_idx: np.ndarray  # int64[:]
    rec_kind: np.ndarray  # int64[n_rec]: 0 count of state species rec_ref, 1 value of slot
    #                       rec_ref, 2 count of another species (amount in slot rec_ref x scale)
    rec_ref: np.ndarray  # int64[n_rec]


@dataclass
class StochasticModel:
    """A network compiled for the stochastic kernels."""

    network: ReactionNetwork
    cm: CompiledModel
    tables: SsaTables
    species: list[str]  # species ids of the state, in state order
    reactions: list[str]
    mass_action: list[bool]  # propensity by the mass-action kernel path
    converted: list[str]  # reactions whose law got the combinatorial form (some order >= 2)
    counts_per_amount: float
    time_triggers: bool  # some event trigger depends on time (needs the time-root scan)
    _pool: dict[str, list[object]] = field(default_factory=dict, repr=False)

    @property
    def n_species(self) -> int:
        return len(self.species)

    def initial(
        self, values: Mapping[str, float] | None = None, t0: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Initial counts ``x0``, the compiled model's state ``y0`` and value array ``v0``.

        Raises :class:`ModelError` when an initial count is not a whole number.
        """
        y, v = self.cm.initial(values, t0, default_size=1.0)
        T = self.tables
        x = y[T.x_state] * T.scale if T.n_species else np.zeros(0)
        for i, c in enumerate(x):
            if not (math.isfinite(c) and c >= 0 and abs(c - round(c)) <= 1e-9 * max(1.0, abs(c))):
                raise ModelError(
                    f"species '{self.species[i]}' starts at {c:g} molecules, not a whole "
                    "non-negative number (give counts_per_amount to scale amounts to counts)",
                    element=self.species[i],
                )
        x = np.round(x)
        refresh_constants(T, v)
        return x, y, v

    def with_records(self, names: Iterable[str]) -> SsaTables:
        """Tables recording ``names``: species as molecule counts (kind 0 for state species, 2
        for species no reaction changes: amount x scale), anything else by value (kind 1)."""
        kinds, refs = [], []
        index = {s: i for i, s in enumerate(self.species)}
        for n in names:
            if n in index:
                kinds.append(0)
                refs.append(index[n])
            else:
                kinds.append(2 if n in self.network.species_map else 1)
                refs.append(self.cm.slot_of(n, "amount"))
        return self.tables._replace(
            rec_kind=np.asarray(kinds, dtype=np.int64), rec_ref=np.asarray(refs, dtype=np.int64)
        )


def refresh_constants(T: SsaTables, v: np.ndarray) -> None:
    """Recompute every mass-action constant c_j in ``v`` (after fixed values changed)."""
    from . import vm

    stack = np.empty(max(T.stack_size, 1))
    vm.run(T.code, T.consts, v, int(T.const_seg[0]), int(T.const_seg[1]), stack)


# ---------------------------------------------------------------------------------------------
def compile_stochastic(
    net: ReactionNetwork, *, counts_per_amount: float | None = None
) -> StochasticModel:
    """Compile ``net`` for the stochastic kernels (see the module docstring)."""
    scale = _scale(net, counts_per_amount)
    for rule in net.rate_rules:
        raise UnsupportedFeatureError(
            "rate rule in a stochastic simulation",
            element=rule.variable,
            detail="continuous variables need a hybrid method",
        )
    cm = compile_network(net)
    species_keys = [k for k in cm.state_keys if k != CLOCK]
    species = [k[len(AMOUNT) :] for k in species_keys]
    index = {s: i for i, s in enumerate(species)}
    state_pos = {k: i for i, k in enumerate(cm.state_keys)}
    _refuse_time(net, cm)

    asm = Assembler()
    reactions = list(net.reactions)
    n_r = len(reactions)
    st_ptr, st_idx, st_val = [0], [], []
    ma_ptr, ma_idx, ma_ord = [0], [], []
    is_ma = np.zeros(n_r, dtype=np.bool_)
    c_slot = np.full(n_r, -1, dtype=np.int64)
    rate_slot = np.full(n_r, -1, dtype=np.int64)
    prop_seg = np.zeros((n_r, 2), dtype=np.int64)
    n_slots = cm.kernel.n_slots
    c_exprs: list[tuple[int, Expr]] = []
    depends: list[set[int]] = []
    converted: list[str] = []

    def slot_of(key: str) -> int:
        return cm.slots[key]

    for j, r in enumerate(reactions):
        for sid, delta in _net_change(net, r).items():
            if sid in index:
                st_idx.append(index[sid])
                st_val.append(delta)
        st_ptr.append(len(st_idx))
        law = _law(net, r)
        ma = _mass_action(net, r, law, index)
        if ma is not None:
            C, orders = ma
            is_ma[j] = True
            if any(nu >= 2 for nu in orders.values()):
                converted.append(r.id)
            for sid, nu in orders.items():
                ma_idx.append(index[sid])
                ma_ord.append(nu)
            c_slot[j] = n_slots
            n_slots += 1
            c_exprs.append((int(c_slot[j]), _c_expr(net, C, orders, scale)))
            depends.append({index[s] for s in orders})
        else:
            start = asm.pos()
            for key in _closure(cm, r.id):
                asm.assign(cm.derived_exprs[key], cm.slots[key], slot_of)
            prop_seg[j] = (start, asm.pos())
            rate_slot[j] = cm.slots[r.id]
            depends.append(_species_deps(cm, r.id, index))
        ma_ptr.append(len(ma_idx))
    const_start = asm.pos()
    for slot, e in c_exprs:
        asm.assign(e, slot, slot_of)
    const_seg = np.array([const_start, asm.pos()], dtype=np.int64)
    code, consts = asm.arrays()

    dep_ptr, dep_idx = _dependency_graph(st_ptr, st_idx, depends)
    tables = SsaTables(
        n_species=len(species),
        n_reactions=n_r,
        scale=scale,
        x_slots=np.asarray([cm.slots[k] for k in species_keys], dtype=np.int64),
        x_state=np.asarray([state_pos[k] for k in species_keys], dtype=np.int64),
        st_ptr=np.asarray(st_ptr, dtype=np.int64),
        st_idx=np.asarray(st_idx, dtype=np.int64),
        st_val=np.asarray(st_val, dtype=np.float64),
        is_ma=is_ma,
        ma_ptr=np.asarray(ma_ptr, dtype=np.int64),
        ma_idx=np.asarray(ma_idx, dtype=np.int64),
        ma_ord=np.asarray(ma_ord, dtype=np.int64),
        c_slot=c_slot,
        rate_slot=rate_slot,
        code=code,
        consts=consts,
        prop_seg=prop_seg,
        const_seg=const_seg,
        stack_size=max(asm.max_depth, 1),
        dep_ptr=dep_ptr,
        dep_idx=dep_idx,
        rec_kind=np.zeros(0, dtype=np.int64),
        rec_ref=np.zeros(0, dtype=np.int64),
    )
    if n_slots > cm.kernel.n_slots:
        cm = _widen(cm, n_slots)
    return StochasticModel(
        network=net,
        cm=cm,
        tables=tables,
        species=species,
        reactions=[r.id for r in reactions],
        mass_action=[bool(m) for m in is_ma],
        converted=converted,
        counts_per_amount=scale,
        time_triggers=bool(cm.time_only_roots.any()),
    )


# ---------------------------------------------------------------------------------------------
def _scale(net: ReactionNetwork, counts_per_amount: float | None) -> float:
    if counts_per_amount is not None:
        s = float(counts_per_amount)
        if not (math.isfinite(s) and s > 0):
            raise OptionError(f"counts_per_amount must be a positive number, got {s!r}")
        return s
    for owner, unit in [
        (net.id, net.units.substance),
        *((s.id, s.substance_units) for s in net.species),
    ]:
        if unit is not None and _is_mole(net, unit):
            raise OptionError(
                f"'{owner}' has substance units '{unit}' (moles): stochastic methods count "
                "molecules, so give counts_per_amount (molecules per unit of amount, e.g. "
                "6.02214076e23 for moles) or --counts-per-amount"
            )
    return 1.0


def _is_mole(net: ReactionNetwork, unit: str) -> bool:
    if unit == "mole":
        return True
    for uid, parts in net.units.definitions:
        if uid == unit:
            return any(kind == "mole" for kind, *_ in parts)
    return False


def _law(net: ReactionNetwork, r: Reaction) -> Expr | None:
    if r.rate is None:
        return None
    law = r.rate
    if net.functions:
        law = expand_functions(law, net.functions_table)
    law = substitute(law, {lp.id: Sym(f"{r.id}.{lp.id}") for lp in r.local_parameters})
    return fold(resolve_rate_of(net, law))


def _net_change(net: ReactionNetwork, r: Reaction) -> dict[str, float]:
    change: dict[str, float] = {}
    for sign, refs in ((-1.0, r.reactants), (1.0, r.products)):
        for ref in refs:
            if ref.id and (
                not ref.constant
                or ref.id in net.assignment_rule_map
                or ref.id in net.initial_assignment_map
                or any(ea.variable == ref.id for ev in net.events for ea in ev.assignments)
            ):
                raise UnsupportedFeatureError(
                    "stoichiometry set by rules or events in a stochastic simulation",
                    element=r.id,
                )
            st = 1.0 if ref.stoichiometry is None else ref.stoichiometry
            if st != math.floor(st):
                raise ModelError(
                    f"reaction '{r.id}' has non-integer stoichiometry {st:g} for "
                    f"'{ref.species}': stochastic methods change counts by whole molecules",
                    element=r.id,
                )
            change[ref.species] = change.get(ref.species, 0.0) + sign * st
    return {s: d for s, d in change.items() if d != 0.0 and net.reaction_changes(s)}


def _mass_action(
    net: ReactionNetwork, r: Reaction, law: Expr | None, index: Mapping[str, int]
) -> tuple[Expr, dict[str, int]] | None:
    """(C, orders) when ``law`` is C * prod_(reactants) S^nu (* modifiers M, each to power 1)
    with C free of species; None when the law must be used as written.

    A modifier to the first power (``kp*M`` for ``-> P``) reads the same either way, so it
    joins the product; anything else with species in it is used as written.
    """
    if law is None:
        return None
    want: dict[str, int] = {}
    for ref in r.reactants:
        st = 1.0 if ref.stoichiometry is None else ref.stoichiometry
        want[ref.species] = want.get(ref.species, 0) + int(st)
    if any(s not in index for s in want):
        return None  # a boundary or constant reactant: the law is used as written
    factors: list[Expr] = []
    got: dict[str, int] = {}

    def species_power(e: Expr) -> tuple[str, int] | None:
        if isinstance(e, Sym) and e.name in net.species_map:
            return e.name, 1
        if (
            isinstance(e, Call)
            and e.op == "pow"
            and isinstance(e.args[0], Sym)
            and e.args[0].name in net.species_map
        ):
            ex = e.args[1]
            if isinstance(ex, Num) and ex.value == math.floor(ex.value) and ex.value >= 1:
                return e.args[0].name, int(ex.value)
            return e.args[0].name, -1
        return None

    def collect(e: Expr, sign: int) -> bool:
        if isinstance(e, Call) and e.op == "mul":
            return all(collect(a, sign) for a in e.args)
        if isinstance(e, Call) and e.op == "div":
            return collect(e.args[0], sign) and collect(e.args[1], -sign)
        sp = species_power(e)
        if sp is not None:
            name, nu = sp
            if sign < 0 or nu < 1 or name not in index:
                return False
            got[name] = got.get(name, 0) + nu
            return True
        if not _species_free(net, e):
            return False
        factors.append(e if sign > 0 else Call("div", (Num(1.0), e)))
        return True

    if not collect(law, 1):
        return None
    if any(got.get(s) != nu for s, nu in want.items()):
        return None
    if any(nu != 1 for s, nu in got.items() if s not in want):
        return None  # a modifier squared: x^2 and x(x-1) differ, so keep the law as written
    C = mul(*factors) if factors else Num(1.0)
    return C, got


def _species_free(net: ReactionNetwork, e: Expr) -> bool:
    """No species, reaction rates, time, or rule-defined values that could depend on them."""
    for node in walk(e):
        if isinstance(node, Call) and node.op in ("time", "rateOf"):
            return False
        if isinstance(node, FunCall):
            return False
    for name in symbols(e):
        if "." in name:
            continue  # a local parameter
        kind = net.kind_of(name)
        if kind in ("species", "reaction"):
            return False
        if name in net.assignment_rule_map or name in net.rate_rule_map:
            return False
    return True


def _c_expr(net: ReactionNetwork, C: Expr, orders: Mapping[str, int], scale: float) -> Expr:
    total = sum(orders.values())
    e = mul(C, Num(scale ** (1 - total)))
    for sid, nu in orders.items():
        s = net.species_map[sid]
        if not s.has_only_substance_units:
            e = mul(e, power(Sym(s.compartment), Num(-float(nu))))
    return fold(e)


def _closure(cm: CompiledModel, key: str) -> list[str]:
    """Derived keys ``key`` needs (itself included), dependencies first."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(k: str) -> None:
        if k in seen or k not in cm.derived_exprs:
            return
        seen.add(k)
        for d in sorted(symbols(cm.derived_exprs[k])):
            visit(d)
        out.append(k)

    visit(key)
    return out


def _species_deps(cm: CompiledModel, key: str, index: Mapping[str, int]) -> set[int]:
    deps: set[int] = set()
    for k in _closure(cm, key):
        for s in symbols(cm.derived_exprs[k]):
            if s.startswith(AMOUNT) and s[len(AMOUNT) :] in index:
                deps.add(index[s[len(AMOUNT) :]])
    return deps


def _refuse_time(net: ReactionNetwork, cm: CompiledModel) -> None:
    for r in net.reactions:
        for k in _closure(cm, r.id):
            if any(isinstance(n, Call) and n.op == "time" for n in walk(cm.derived_exprs[k])):
                raise UnsupportedFeatureError(
                    "propensity that depends on time in a stochastic simulation",
                    element=r.id,
                    detail="exact sampling of a time-varying hazard needs the hybrid method",
                )
    for label, time_only, key in zip(
        cm.root_labels,
        cm.time_only_roots,
        (f"ROOT#{i}" for i in range(len(cm.root_labels))),
        strict=True,
    ):
        if time_only:
            continue
        e = cm.derived_exprs.get(key)
        if e is None:
            continue
        if any(
            isinstance(n, Call) and n.op == "time"
            for k in _closure(cm, key)
            for n in walk(cm.derived_exprs[k])
        ):
            raise UnsupportedFeatureError(
                "event trigger that depends on both time and species in a stochastic simulation",
                element=label,
            )


def _dependency_graph(
    st_ptr: list[int], st_idx: list[int], depends: list[set[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """dep[j] = reactions whose propensity reads a species that reaction j changes."""
    readers: dict[int, list[int]] = {}
    for k, deps in enumerate(depends):
        for s in deps:
            readers.setdefault(s, []).append(k)
    ptr = [0]
    idx: list[int] = []
    for j in range(len(depends)):
        targets: set[int] = set()
        for p in range(st_ptr[j], st_ptr[j + 1]):
            targets.update(readers.get(st_idx[p], ()))
        idx.extend(sorted(targets))
        ptr.append(len(idx))
    return np.asarray(ptr, dtype=np.int64), np.asarray(idx, dtype=np.int64)


def _widen(cm: CompiledModel, n_slots: int) -> CompiledModel:
    """A copy of ``cm`` whose value arrays have room for the mass-action constants."""
    from dataclasses import replace

    return replace(cm, kernel=cm.kernel._replace(n_slots=n_slots), _pool={})


def stochastic_summary(net: ReactionNetwork) -> dict[str, object]:
    """How the stochastic methods read ``net``, for ``scalebridge info``: which reactions
    were converted to the combinatorial mass-action form, which run on the mass-action path
    unchanged, which laws are used as written -- or why the network cannot run stochastically."""
    note = ""
    try:
        _scale(net, None)
    except OptionError as e:
        note = str(e)
    try:
        sm = compile_stochastic(net, counts_per_amount=1.0)
    except (ModelError, OptionError) as e:  # UnsupportedFeatureError is a ModelError
        return {"available": False, "reason": str(e)}
    as_written = [r for r, m in zip(sm.reactions, sm.mass_action, strict=True) if not m]
    same = [r for r, m in zip(sm.reactions, sm.mass_action, strict=True) if m]
    groups = {
        "converted to combinatorial mass action": sm.converted,
        "mass action, unchanged": [r for r in same if r not in sm.converted],
        "laws used as written": as_written,
    }
    out: dict[str, object] = {"available": True}
    out.update({k: v for k, v in groups.items() if v})
    if note:
        out["note"] = note
    return out
