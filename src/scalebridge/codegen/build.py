"""Compile a :class:`ReactionNetwork` into a :class:`~scalebridge.codegen.vm.Kernel`.

States
------
* the amount of every species that reactions change;
* every variable with a rate rule (a species' symbol value -- its concentration unless it has
  only substance units --, a compartment size, a parameter, a stoichiometry).

Everything else is *fixed* (constants and values that only events change: parameters,
compartment sizes, amounts of other species, stoichiometries, local parameters) or *derived*
(concentrations, assignment rules, reaction rates, rate-rule right-hand sides), computed in
topological order by the bytecode.  Parameter values are never baked into the code, so one
compiled model serves every parameter set (estimation, sweeps).

The Jacobian is analytic: each derived value's partial derivatives are differentiated
symbolically and chained in forward mode over its sparse state-gradient pattern (see
:mod:`scalebridge.codegen.vm`).  ``rateOf`` is replaced by its expression
(:mod:`scalebridge.model.rates`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError, UnsupportedFeatureError
from ..model.expr import (
    BOOLEAN_OPS,
    Call,
    Expr,
    Num,
    Sym,
    diff,
    div,
    evaluate,
    expand_functions,
    fold,
    mul,
    sub,
    substitute,
    symbols,
    walk,
)
from ..model.network import ReactionNetwork
from ..model.rates import (
    TIME_SYMBOL,
    conversion_factor,
    rate_of_expr,
    resolve_rate_of,
    stoichiometry_terms,
    time_to_symbol,
)
from . import vm
from .program import Assembler

AMOUNT, CONC, RR, SCF, ROOT, TRIG, DELAY, PRIO, EA, PART = (
    "A#", "C#", "RR#", "SC#", "ROOT#", "TRIG#", "DELAY#", "PRIO#", "EA#", "P#",
)  # fmt: skip


CLOCK = "\0clock"


@dataclass(frozen=True)
class Target:
    """Where an event assignment goes: a state (``index`` into y) or a fixed slot.

    ``scale_slot`` >= 0 means the assigned value is a concentration to be multiplied by that
    compartment's size to give the stored amount.  For a compartment, ``rescale`` lists the
    states that hold concentrations of its species (rate-rule species): SBML conserves species
    amounts when an event changes a compartment's size, so those concentrations are multiplied
    by V_old / V_new.
    """

    name: str
    is_state: bool
    index: int
    scale_slot: int = -1
    rescale: tuple[int, ...] = ()


@dataclass(frozen=True)
class EventInfo:
    id: str
    trigger_slot: int
    delay_slot: int  # -1: no delay
    priority_slot: int  # -1: no priority
    targets: tuple[Target, ...]
    value_slots: tuple[int, ...]
    initial_value: bool
    persistent: bool
    use_values_from_trigger_time: bool


@dataclass
class CompiledModel:
    """A network compiled for the kernels, plus what the Python layer needs to drive them."""

    network: ReactionNetwork
    kernel: vm.Kernel
    state_keys: list[str]
    state_names: list[str]  # the model element each state belongs to
    slots: dict[str, int]  # key -> slot (aliases resolved)
    fixed_keys: list[str]
    events: list[EventInfo]
    root_labels: list[str]
    time_only_roots: np.ndarray  # bool per root function: depends on time, not on states
    time_root_slope: np.ndarray  # d/dt of a time-only root when constant (affine), else 0
    derived_exprs: dict[str, Expr] = field(repr=False, default_factory=dict)
    _pool: dict[str, list[Any]] = field(repr=False, default_factory=dict)

    def take(self, kind: str) -> Any | None:
        """A reusable object (e.g. an integrator workspace) kept for this model, or None.

        Each taken object serves one run at a time; :meth:`give` returns it to the pool.
        """
        items = self._pool.get(kind)
        if not items:
            return None
        try:  # another thread may have taken the last one since the check
            return items.pop()
        except IndexError:
            return None

    def give(self, kind: str, item: Any) -> None:
        self._pool.setdefault(kind, []).append(item)

    @property
    def n_states(self) -> int:
        return len(self.state_keys)

    def slot_of(self, name: str, quantity: str | None = None) -> int:
        """Slot of a model variable's value; species in ``quantity`` 'amount' or
        'concentration' when given (else as SBML defines its symbol)."""
        net = self.network
        key = name
        if name in net.species_map and quantity in ("amount", "concentration"):
            key = (AMOUNT if quantity == "amount" else CONC) + name
        try:
            return self.slots[key]
        except KeyError:
            raise ModelError(
                f"no variable named '{name}' in model '{net.id}'", element=name
            ) from None

    def with_records(self, slots: Iterable[int]) -> vm.Kernel:
        return self.kernel._replace(rec_slots=np.asarray(list(slots), dtype=np.int64))

    def initial(
        self,
        values: Mapping[str, float] | None = None,
        t0: float = 0.0,
        default_size: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Initial state ``y0`` and value array ``v0`` at ``t0`` (SBML initial-value semantics:
        declared values, then initial assignments and assignment rules).  ``values`` overrides
        parameters, compartment sizes and species (in the species' own units) and wins over
        initial assignments to the same symbol."""
        sym = InitialValues(self.network, values or {}, t0, default_size)
        v = np.zeros(self.kernel.n_slots)
        v[vm.SLOT_TIME] = t0
        v[vm.SLOT_ONE] = 1.0
        for key in self.fixed_keys:
            v[self.slots[key]] = sym.stored(key)
        y = np.array([sym.stored(k) for k in self.state_keys], dtype=np.float64)
        for i, k in enumerate(self.state_keys):
            v[self.slots[k]] = y[i]
        return y, v


class InitialValues(Mapping[str, float]):
    """Symbol values at the initial time, resolved lazily in dependency order."""

    def __init__(
        self,
        net: ReactionNetwork,
        overrides: Mapping[str, float],
        t0: float,
        default_size: float | None = None,
    ):
        self.net, self.over, self.t0 = net, dict(overrides), t0
        self.default_size = default_size
        self.cache: dict[str, float] = {}
        self.active: list[str] = []
        for name in self.over:
            if net.kind_of(name) in ("species", "compartment", "parameter", "species_ref"):
                continue
            # ``reaction.local`` names a local parameter; an unknown one must not be ignored.
            rid, _, lid = name.partition(".")
            r = net.reaction_map.get(rid)
            if r is None or not any(lp.id == lid for lp in r.local_parameters):
                raise ModelError(
                    f"no parameter, compartment, species or local parameter named '{name}'",
                    element=name,
                )

    def __getitem__(self, name: str) -> float:
        return self.value(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache)

    def __len__(self) -> int:
        return len(self.cache)

    def _eval(self, e: Expr, local: Mapping[str, float] | None = None) -> float:
        env: Mapping[str, float] = self if not local else _Overlay(local, self)
        return evaluate(
            e,
            env,
            time=self.t0,
            functions=self.net.functions_table,
            rate_of=lambda x: self._eval(rate_of_expr(self.net, x)),
        )

    def value(self, name: str) -> float:
        if name in self.cache:
            return self.cache[name]
        if name in self.active:
            raise ModelError(f"initial value of '{name}' depends on itself", element=name)
        self.active.append(name)
        try:
            x = self._compute(name)
        finally:
            self.active.pop()
        self.cache[name] = x
        return x

    def _compute(self, name: str) -> float:
        net = self.net
        if name in self.over:
            return float(self.over[name])
        if name in net.initial_assignment_map:
            return self._eval(net.initial_assignment_map[name].math)
        if name in net.assignment_rule_map:
            return self._eval(net.assignment_rule_map[name].math)
        kind = net.kind_of(name)
        if kind == "species":
            s = net.species_map[name]
            if s.initial_amount is not None:
                a = s.initial_amount
                return a if s.has_only_substance_units else a / self.value(s.compartment)
            if s.initial_concentration is not None:
                c = s.initial_concentration
                return c * self.value(s.compartment) if s.has_only_substance_units else c
            raise ModelError(f"species '{name}' has no initial value", element=name)
        if kind == "compartment":
            comp = net.compartment_map[name]
            if comp.size is not None:
                return comp.size
            if comp.spatial_dimensions == 0:
                return 1.0
            if self.default_size is not None:
                return self.default_size
            raise ModelError(f"compartment '{name}' has no size", element=name)
        if kind == "parameter":
            p = net.parameter_map[name]
            if p.value is None:
                raise ModelError(
                    f"parameter '{name}' has no value (give one with params= or --param)",
                    element=name,
                )
            return p.value
        if kind == "species_ref":
            ref = net.species_ref_map[name][1]
            if ref.stoichiometry is None:
                raise ModelError(f"stoichiometry '{name}' has no value", element=name)
            return ref.stoichiometry
        if kind == "reaction":
            r = net.reaction_map[name]
            if r.rate is None:
                return 0.0
            local = {lp.id: self._local(r.id, lp.id, lp.value) for lp in r.local_parameters}
            return self._eval(r.rate, local)
        if "." in name:
            rid, lid = name.split(".", 1)
            for lp in net.reaction_map[rid].local_parameters:
                if lp.id == lid:
                    return self._local(rid, lid, lp.value)
        raise ModelError(f"no initial value for '{name}'", element=name)

    def _local(self, rid: str, lid: str, value: float | None) -> float:
        key = f"{rid}.{lid}"
        if key in self.over:
            return float(self.over[key])
        if value is None:
            raise ModelError(
                f"local parameter '{lid}' of reaction '{rid}' has no value", element=rid
            )
        return value

    def stored(self, key: str) -> float:
        """Value of a state or fixed key: amounts for ``A#`` keys, symbol values otherwise."""
        if key == CLOCK:
            return 0.0
        if key.startswith(AMOUNT):
            sid = key[len(AMOUNT) :]
            s = self.net.species_map[sid]
            val = self.value(sid)
            return val if s.has_only_substance_units else val * self.value(s.compartment)
        return self.value(key)


class _Overlay(Mapping[str, float]):
    def __init__(self, top: Mapping[str, float], base: InitialValues):
        self.top, self.base = top, base

    def __getitem__(self, k: str) -> float:
        return self.top[k] if k in self.top else self.base.value(k)

    def __iter__(self) -> Iterator[str]:
        return iter(self.top)

    def __len__(self) -> int:
        return len(self.top)


# ---------------------------------------------------------------------------------------------
class _Builder:
    def __init__(self, net: ReactionNetwork):
        self.net = net
        self.state_keys: list[str] = []
        self.state_names: list[str] = []
        self.fixed_keys: list[str] = []
        self.alias: dict[str, str] = {}
        self.nodes: dict[str, Expr] = {}  # derived key -> expression over canonical keys
        self.slots: dict[str, int] = {}
        self.n_slots = 2

    # -- helpers ----------------------------------------------------------------------------
    def expand(self, e: Expr) -> Expr:
        net = self.net
        if net.functions:
            e = expand_functions(e, net.functions_table)
        return resolve_rate_of(net, e)

    def canon(self, key: str) -> str:
        while key in self.alias:
            key = self.alias[key]
        return key

    def canon_expr(self, e: Expr) -> Expr:
        names = symbols(e)
        mapping = {n: Sym(self.canon(n)) for n in names if n in self.alias}
        return substitute(e, mapping) if mapping else e

    def new_slot(self, key: str) -> int:
        s = self.n_slots
        self.slots[key] = s
        self.n_slots += 1
        return s

    def state(self, key: str, name: str) -> None:
        self.state_keys.append(key)
        self.state_names.append(name)

    # -- classification ---------------------------------------------------------------------
    def classify(self) -> None:
        net = self.net
        rr, ar = net.rate_rule_map, net.assignment_rule_map
        for s in net.species:
            if s.id in rr:
                self.state(s.id, s.id)
            elif s.id in ar:
                pass
            elif net.reaction_changes(s.id):
                self.state(AMOUNT + s.id, s.id)
            else:
                self.fixed_keys.append(AMOUNT + s.id)
        others = [c.id for c in net.compartments] + [p.id for p in net.parameters]
        others += list(net.species_ref_map)
        for name in others:
            if name in rr:
                self.state(name, name)
            elif name not in ar:
                self.fixed_keys.append(name)
        for r in net.reactions:
            for lp in r.local_parameters:
                self.fixed_keys.append(f"{r.id}.{lp.id}")
        if not self.state_keys:
            # A model with nothing to integrate still has time-dependent triggers: a clock state
            # with zero derivative lets the integrator step and find their roots.
            self.state(CLOCK, "time")
        for k in self.state_keys:
            self.new_slot(k)
        for k in self.fixed_keys:
            self.new_slot(k)

    def species_symbols(self) -> None:
        """Symbol, amount and concentration keys of each species (aliases or derived nodes)."""
        net = self.net
        for s in net.species:
            sid, comp = s.id, Sym(s.compartment)
            stored_amount = (AMOUNT + sid) in self.slots
            if stored_amount:
                if s.has_only_substance_units:
                    self.alias[sid] = AMOUNT + sid
                    self.nodes[CONC + sid] = div(Sym(AMOUNT + sid), comp)
                else:
                    self.nodes[sid] = div(Sym(AMOUNT + sid), comp)
                    self.alias[CONC + sid] = sid
            else:  # the symbol value is a state (rate rule) or derived (assignment rule)
                if s.has_only_substance_units:
                    self.alias[AMOUNT + sid] = sid
                    self.nodes[CONC + sid] = div(Sym(sid), comp)
                else:
                    self.nodes[AMOUNT + sid] = mul(Sym(sid), comp)
                    self.alias[CONC + sid] = sid

    def model_nodes(self) -> None:
        net = self.net
        for rule in net.assignment_rules:
            self.nodes[rule.variable] = self.expand(rule.math)
        for rrule in net.rate_rules:
            self.nodes[RR + rrule.variable] = self.expand(rrule.math)
        for r in net.reactions:
            if r.rate is None:
                self.nodes[r.id] = Num(0.0)
                continue
            local = {lp.id: Sym(f"{r.id}.{lp.id}") for lp in r.local_parameters}
            law = r.rate
            if net.functions:
                law = expand_functions(law, net.functions_table)
            law = substitute(law, local)
            self.nodes[r.id] = resolve_rate_of(net, law)

    def sum_of_products(self) -> list[tuple[int, float, str, str]]:
        """``(state index, coef, key a, key b)`` with dy[i]/dt += coef * v[a] * v[b]."""
        net = self.net
        sop: list[tuple[int, float, str, str]] = []
        for i, key in enumerate(self.state_keys):
            if key.startswith(AMOUNT):
                sid = key[len(AMOUNT) :]
                cf = conversion_factor(net, sid)
                for coef, rid in stoichiometry_terms(net, sid):
                    if isinstance(coef, Num):
                        sop.append((i, coef.value, rid, cf or "\0one"))
                    else:
                        k = f"{SCF}{sid}#{rid}"
                        self.nodes[k] = mul(Sym(cf), coef) if cf else coef
                        sop.append((i, 1.0, rid, k))
            elif key != CLOCK:
                sop.append((i, 1.0, RR + key, "\0one"))
        return sop

    # -- ordering -----------------------------------------------------------------------------
    def order(self, wanted: Iterable[str], exclude: set[str]) -> list[str]:
        """Derived keys needed for ``wanted`` (and not in ``exclude``), dependencies first."""
        out: list[str] = []
        seen: set[str] = set(exclude)
        stack: list[tuple[str, bool]] = [(k, False) for k in wanted]
        on_path: set[str] = set()
        while stack:
            key, done = stack.pop()
            if done:
                on_path.discard(key)
                out.append(key)
                continue
            if key in seen or key not in self.nodes:
                if key in on_path:
                    raise ModelError(f"'{key}' depends on itself", element=key)
                continue
            seen.add(key)
            on_path.add(key)
            stack.append((key, True))
            for dep in sorted(symbols(self.nodes[key]), reverse=True):
                if dep in on_path:
                    raise UnsupportedFeatureError(
                        "cyclic dependency between rules and rates", element=dep
                    )
                stack.append((dep, False))
        return out

    # -- build --------------------------------------------------------------------------------
    def build(self) -> CompiledModel:
        net = self.net
        self.classify()
        self.species_symbols()
        self.model_nodes()
        sop = self.sum_of_products()
        self.slots["\0one"] = vm.SLOT_ONE
        self.nodes = {k: fold(self.canon_expr(e)) for k, e in self.nodes.items()}
        sop = [(i, c, self.canon(a), self.canon(b)) for i, c, a, b in sop]

        deriv = self.order([k for _, _, a, b in sop for k in (a, b)], set())
        deriv_set = set(deriv)
        # roots: relational atoms of event triggers and of discontinuities in the right-hand side
        events = list(net.events)
        triggers = [fold(self.canon_expr(self.expand(ev.trigger))) for ev in events]
        atoms: dict[Expr, None] = {}
        for e in [*triggers, *(self.nodes[k] for k in deriv)]:
            for a in _relational_atoms(e):
                atoms.setdefault(a, None)
        root_labels = []
        root_keys = []
        for j, atom in enumerate(atoms):
            key = f"{ROOT}{j}"
            self.nodes[key] = atom
            root_keys.append(key)
            root_labels.append(str(atom))
        out_nodes = self.order(
            [k for k in self.nodes if k not in deriv_set and not k.startswith(ROOT)], deriv_set
        )
        root_nodes = self.order(root_keys, deriv_set)
        for k in deriv + out_nodes + root_keys:
            if k not in self.slots:
                self.new_slot(k)

        asm = Assembler()
        seg = np.zeros((vm.SEG_EVENT0 + len(events), 2), dtype=np.int64)

        def emit(segment: int, keys: Iterable[str]) -> None:
            start = asm.pos()
            for k in keys:
                asm.assign(self.nodes[k], self.slots[k], self.slot)
            seg[segment] = (start, asm.pos())

        emit(vm.SEG_DERIV, deriv)
        emit(vm.SEG_OUT, out_nodes)
        jac = self.jacobian(asm, seg, deriv, sop)
        emit(vm.SEG_ROOTS, root_nodes)
        # roots of time alone; a root of neither time nor states is constant between events
        time_only = [not self._depends_on_states(k) and self._depends_on_time(k) for k in root_keys]
        emit(
            vm.SEG_TIME_ROOTS,
            self.order([k for k, t in zip(root_keys, time_only, strict=True) if t], set()),
        )
        slopes = [
            self._time_slope(k) if t else 0.0 for k, t in zip(root_keys, time_only, strict=True)
        ]
        ev_infos = self.events(asm, seg, events, triggers)

        code, consts = asm.arrays()
        n_x = len(self.state_keys)
        sop_arr = list(zip(*sop, strict=True)) if sop else [(), (), (), ()]
        kernel = vm.Kernel(
            code=code,
            consts=consts,
            seg=seg,
            stack_size=max(asm.max_depth, 1),
            n_slots=self.n_slots,
            x_slots=np.asarray([self.slots[k] for k in self.state_keys], dtype=np.int64),
            sop_dst=np.asarray(sop_arr[0], dtype=np.int64),
            sop_coef=np.asarray(sop_arr[1], dtype=np.float64),
            sop_a=np.asarray([self.slot(k) for k in sop_arr[2]], dtype=np.int64),
            sop_b=np.asarray([self.slot(k) for k in sop_arr[3]], dtype=np.int64),
            acc_dst=jac.acc[0],
            acc_coef=jac.acc[1],
            acc_w=jac.acc[2],
            acc_src=jac.acc[3],
            n_g=jac.n_g,
            jac_indptr=jac.indptr,
            jac_indices=jac.indices,
            root_slots=np.asarray([self.slots[k] for k in root_keys], dtype=np.int64),
            rec_slots=np.zeros(0, dtype=np.int64),
        )
        assert kernel.x_slots.shape[0] == n_x
        slots = dict(self.slots)
        for alias in self.alias:
            slots[alias] = self.slots[self.canon(alias)]
        return CompiledModel(
            network=net,
            kernel=kernel,
            state_keys=self.state_keys,
            state_names=self.state_names,
            slots=slots,
            fixed_keys=self.fixed_keys,
            events=ev_infos,
            root_labels=root_labels,
            time_only_roots=np.array(time_only, dtype=np.bool_),
            time_root_slope=np.array(slopes, dtype=np.float64),
            derived_exprs=dict(self.nodes),
        )

    def _time_slope(self, key: str) -> float:
        """d(root)/dt when the root function is affine in time (constant slope), else 0."""
        e = self.nodes[key]
        for _ in range(10_000):  # inline derived values until only time and fixed values remain
            inner = {n: self.nodes[n] for n in symbols(e) if n in self.nodes}
            if not inner:
                break
            e = substitute(e, inner)
        else:
            return 0.0
        slope = fold(diff(time_to_symbol(e), TIME_SYMBOL))
        if isinstance(slope, Num) and math.isfinite(slope.value):
            return slope.value
        return 0.0

    def _depends_on_time(self, key: str) -> bool:
        """Whether derived ``key`` reads the time, directly or through other derived values."""
        seen: set[str] = set()
        stack = [key]
        while stack:
            k = stack.pop()
            if k in seen or k not in self.nodes:
                continue
            seen.add(k)
            e = self.nodes[k]
            if any(isinstance(n, Call) and n.op == "time" for n in walk(e)):
                return True
            stack.extend(symbols(e))
        return False

    def _depends_on_states(self, key: str) -> bool:
        """Whether derived ``key`` reads a state, directly or through other derived values."""
        states = set(self.state_keys)
        seen: set[str] = set()
        stack = [key]
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            if k in states:
                return True
            if k in self.nodes:
                stack.extend(symbols(self.nodes[k]))
        return False

    def slot(self, key: str) -> int:
        try:
            return self.slots[self.canon(key)]
        except KeyError:
            raise ModelError(f"unknown symbol '{key}'", element=key) from None

    # -- Jacobian -----------------------------------------------------------------------------
    def jacobian(
        self,
        asm: Assembler,
        seg: np.ndarray,
        deriv: list[str],
        sop: list[tuple[int, float, str, str]],
    ) -> _Jac:
        state_index = {k: i for i, k in enumerate(self.state_keys)}
        n_x = len(self.state_keys)
        pattern: dict[str, list[int]] = {}
        for k in deriv:
            p: set[int] = set()
            for s in symbols(self.nodes[k]):
                if s in state_index:
                    p.add(state_index[s])
                elif s in pattern:
                    p.update(pattern[s])
            pattern[k] = sorted(p)

        def grad(key: str) -> list[int]:
            if key in state_index:
                return [state_index[key]]
            return pattern.get(key, [])

        rows: list[set[int]] = [{i} for i in range(n_x)]
        for i, _, a, b in sop:
            rows[i].update(grad(a))
            rows[i].update(grad(b))
        indptr = np.zeros(n_x + 1, dtype=np.int64)
        indices: list[int] = []
        jpos: dict[tuple[int, int], int] = {}
        for i in range(n_x):
            for col in sorted(rows[i]):
                jpos[(i, col)] = len(indices)
                indices.append(col)
            indptr[i + 1] = len(indices)
        n_g = len(indices)
        gidx: dict[str, dict[int, int]] = {}
        for k in deriv:
            gidx[k] = {c: n_g + j for j, c in enumerate(pattern[k])}
            n_g += len(pattern[k])

        acc_dst: list[int] = []
        acc_coef: list[float] = []
        acc_w: list[int] = []
        acc_src: list[int] = []

        def add_acc(dst: int, coef: float, w: int, src: int) -> None:
            acc_dst.append(dst)
            acc_coef.append(coef)
            acc_w.append(w)
            acc_src.append(src)

        start = asm.pos()
        n_part = 0
        for k in deriv:
            e = self.nodes[k]
            for s in sorted(symbols(e)):
                if s not in state_index and s not in pattern:
                    continue
                if not grad(s):
                    continue
                partial = fold(diff(e, s))
                if isinstance(partial, Num):
                    if partial.value == 0.0:
                        continue
                    coef, w = partial.value, vm.SLOT_ONE
                else:
                    w = self.new_slot(f"{PART}{n_part}")
                    n_part += 1
                    asm.assign(partial, w, self.slot)
                    coef = 1.0
                if s in state_index:
                    add_acc(gidx[k][state_index[s]], coef, w, -1)
                else:
                    for c in pattern[s]:
                        add_acc(gidx[k][c], coef, w, gidx[s][c])
        seg[vm.SEG_PARTIALS] = (start, asm.pos())
        for i, cf, a, b in sop:
            for x, other in ((a, b), (b, a)):
                if x in state_index:
                    add_acc(jpos[(i, state_index[x])], cf, self.slot(other), -1)
                elif x in pattern:
                    for col in pattern[x]:
                        add_acc(jpos[(i, col)], cf, self.slot(other), gidx[x][col])
        acc = (
            np.asarray(acc_dst, dtype=np.int64),
            np.asarray(acc_coef, dtype=np.float64),
            np.asarray(acc_w, dtype=np.int64),
            np.asarray(acc_src, dtype=np.int64),
        )
        return _Jac(acc, max(n_g, 1), indptr, np.asarray(indices, dtype=np.int64))

    # -- events -------------------------------------------------------------------------------
    def events(
        self, asm: Assembler, seg: np.ndarray, events: list, triggers: list[Expr]
    ) -> list[EventInfo]:
        infos: list[EventInfo] = []
        trig_slots, delay_slots, prio_slots = [], [], []
        start = asm.pos()
        for i, t in enumerate(triggers):
            s = self.new_slot(f"{TRIG}{i}")
            asm.assign(t, s, self.slot)
            trig_slots.append(s)
        seg[vm.SEG_TRIGGERS] = (start, asm.pos())
        start = asm.pos()
        for i, ev in enumerate(events):
            if ev.delay is None:
                delay_slots.append(-1)
                continue
            s = self.new_slot(f"{DELAY}{i}")
            asm.assign(fold(self.canon_expr(self.expand(ev.delay))), s, self.slot)
            delay_slots.append(s)
        seg[vm.SEG_DELAYS] = (start, asm.pos())
        start = asm.pos()
        for i, ev in enumerate(events):
            if ev.priority is None:
                prio_slots.append(-1)
                continue
            s = self.new_slot(f"{PRIO}{i}")
            asm.assign(fold(self.canon_expr(self.expand(ev.priority))), s, self.slot)
            prio_slots.append(s)
        seg[vm.SEG_PRIORITIES] = (start, asm.pos())
        state_index = {k: i for i, k in enumerate(self.state_keys)}
        for i, ev in enumerate(events):
            start = asm.pos()
            targets, values = [], []
            for j, ea in enumerate(ev.assignments):
                s = self.new_slot(f"{EA}{i}#{j}")
                asm.assign(fold(self.canon_expr(self.expand(ea.math))), s, self.slot)
                values.append(s)
                targets.append(self._target(ea.variable, state_index))
            seg[vm.SEG_EVENT0 + i] = (start, asm.pos())
            infos.append(
                EventInfo(
                    id=ev.id or f"event{i + 1}",
                    trigger_slot=trig_slots[i],
                    delay_slot=delay_slots[i],
                    priority_slot=prio_slots[i],
                    targets=tuple(targets),
                    value_slots=tuple(values),
                    initial_value=ev.initial_value,
                    persistent=ev.persistent,
                    use_values_from_trigger_time=ev.use_values_from_trigger_time,
                )
            )
        return infos

    def _target(self, name: str, state_index: dict[str, int]) -> Target:
        net = self.net
        if name in net.species_map:
            if name in state_index:  # rate-rule species: its symbol value is the state
                return Target(name, True, state_index[name])
            s = net.species_map[name]
            key = AMOUNT + name
            scale = -1 if s.has_only_substance_units else self.slot(s.compartment)
            if key in state_index:
                return Target(name, True, state_index[key], scale)
            return Target(name, False, self.slots[key], scale)
        rescale: tuple[int, ...] = ()
        if name in net.compartment_map:
            rescale = tuple(
                state_index[s.id]
                for s in net.species
                if s.compartment == name and s.id in state_index and not s.has_only_substance_units
            )
        if name in state_index:
            return Target(name, True, state_index[name], rescale=rescale)
        return Target(name, False, self.slots[name], rescale=rescale)


@dataclass
class _Jac:
    acc: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    n_g: int
    indptr: np.ndarray
    indices: np.ndarray


def _relational_atoms(e: Expr) -> list[Expr]:
    """``lhs - rhs`` of every comparison in ``e`` whose sides are not both constant."""
    out: list[Expr] = []
    for node in walk(e):
        if isinstance(node, Call) and node.op in ("lt", "le", "gt", "ge", "eq", "ne"):
            a, b = node.args
            if _is_constant(a) and _is_constant(b):
                continue
            if _is_boolean(a) or _is_boolean(b):
                continue
            out.append(fold(sub(a, b)))
    return out


def _is_boolean(e: Expr) -> bool:
    return isinstance(e, Call) and e.op in BOOLEAN_OPS


def _is_constant(e: Expr) -> bool:
    return not symbols(e) and not any(isinstance(n, Call) and n.op == "time" for n in walk(e))


def compile_network(net: ReactionNetwork) -> CompiledModel:
    """Compile ``net`` for the kernels (see the module docstring)."""
    return _Builder(net).build()
