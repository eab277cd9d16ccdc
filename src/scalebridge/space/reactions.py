"""Local reaction terms R(c, x, t) of a reaction-diffusion model, cell by cell.

Two kinds of terms add up, per species, to the local rate of change (concentration per time):

* **source expressions** -- text parsed with :func:`scalebridge.model.parse.parse_expr` (or
  expression trees), in the species, the model's parameters (scalars or fields), the cell-centre
  coordinates ``x``, ``y``, ``z`` and the time ``t``;
* a **reaction network** acting in every cell: its species are fields, in concentration
  (amount / compartment size); its kinetic laws, rules and parameters are evaluated by the
  compiled stack machine of :mod:`scalebridge.codegen.vm` inside a compiled loop over cells,
  with its analytic Jacobian for implicit and Newton solves.

Source expressions are sorted once, symbolically: a term that is affine in the species with
time-independent coefficients is split into a constant diagonal rate ``a_diag[s] c_s`` (fused into
the diffusion stencil), further linear terms ``coef(x) c_j`` and a constant source field ``S(x)``;
these never run through the interpreter and enter the implicit matrices exactly.  Everything else
(nonlinear or time-dependent terms, and the network) is the *nonlinear part* N(c, t), evaluated
cell by cell; its Jacobian is a block of ``n_species x n_species`` per cell with a fixed pattern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..codegen import vm
from ..codegen.build import AMOUNT, CompiledModel
from ..codegen.jit import kernel
from ..codegen.program import Assembler
from ..errors import ModelError, UnsupportedFeatureError
from ..model.expr import Call, Expr, Num, diff, fold, substitute, symbols, walk
from ..model.network import ReactionNetwork

__all__ = ["LocalReactions", "compile_reactions", "uses_time"]

COORDS = ("x", "y", "z")


def uses_time(e: Expr) -> bool:
    return any(isinstance(n, Call) and n.op == "time" for n in walk(e))


# =============================================================================================
# Compiled kernels


@kernel
def _expr_rates(code: np.ndarray, consts: np.ndarray, seg: np.ndarray, v: np.ndarray,
                stack: np.ndarray, u: np.ndarray, coords: np.ndarray, pf: np.ndarray,
                pf_slots: np.ndarray, sp0: int, c0: int, act: np.ndarray, t: float,
                out_sp: np.ndarray, out_slot: np.ndarray, beta: float,
                out: np.ndarray) -> None:  # fmt: skip
    """out[out_sp[e], P] += beta * value of output e at cell P (active cells)."""
    ns, N = u.shape
    v[vm.SLOT_TIME] = t
    for P in range(N):
        if not act[P]:
            continue
        for s in range(ns):
            v[sp0 + s] = u[s, P]
        for k in range(coords.shape[0]):
            v[c0 + k] = coords[k, P]
        for q in range(pf_slots.shape[0]):
            v[pf_slots[q]] = pf[q, P]
        vm.run(code, consts, v, seg[0, 0], seg[0, 1], stack)
        for e in range(out_sp.shape[0]):
            out[out_sp[e], P] += beta * v[out_slot[e]]


@kernel
def _expr_jac(code: np.ndarray, consts: np.ndarray, seg: np.ndarray, v: np.ndarray,
              stack: np.ndarray, u: np.ndarray, coords: np.ndarray, pf: np.ndarray,
              pf_slots: np.ndarray, sp0: int, c0: int, act: np.ndarray, t: float,
              part_slot: np.ndarray, jv: np.ndarray) -> None:  # fmt: skip
    """jv[e, P] = value of partial derivative e at cell P (0 at inactive cells)."""
    ns, N = u.shape
    v[vm.SLOT_TIME] = t
    for P in range(N):
        if not act[P]:
            for e in range(part_slot.shape[0]):
                jv[e, P] = 0.0
            continue
        for s in range(ns):
            v[sp0 + s] = u[s, P]
        for k in range(coords.shape[0]):
            v[c0 + k] = coords[k, P]
        for q in range(pf_slots.shape[0]):
            v[pf_slots[q]] = pf[q, P]
        vm.run(code, consts, v, seg[0, 0], seg[0, 1], stack)
        vm.run(code, consts, v, seg[1, 0], seg[1, 1], stack)
        for e in range(part_slot.shape[0]):
            jv[e, P] = v[part_slot[e]]


@kernel
def _net_rates(K: vm.Kernel, v: np.ndarray, stack: np.ndarray, u: np.ndarray,
               sp_idx: np.ndarray, scale: np.ndarray, pf: np.ndarray, pf_slots: np.ndarray,
               act: np.ndarray, t: float, y: np.ndarray, dydt: np.ndarray, beta: float,
               out: np.ndarray) -> None:  # fmt: skip
    """out[species, P] += beta * (d state / dt) / scale at every active cell P."""
    N = u.shape[1]
    nx = sp_idx.shape[0]
    for P in range(N):
        if not act[P]:
            continue
        for i in range(nx):
            y[i] = u[sp_idx[i], P] * scale[i]
        for q in range(pf_slots.shape[0]):
            v[pf_slots[q]] = pf[q, P]
        vm.rhs(K, t, y, v, dydt, stack)
        for i in range(nx):
            out[sp_idx[i], P] += beta * dydt[i] / scale[i]


@kernel
def _net_jac(K: vm.Kernel, v: np.ndarray, stack: np.ndarray, u: np.ndarray,
             sp_idx: np.ndarray, scale: np.ndarray, pf: np.ndarray, pf_slots: np.ndarray,
             act: np.ndarray, t: float, y: np.ndarray, g: np.ndarray,
             jv: np.ndarray) -> None:  # fmt: skip
    """jv[p, P]: CSR entry p of the network Jacobian in concentrations at cell P."""
    N = u.shape[1]
    nx = sp_idx.shape[0]
    ip = K.jac_indptr
    ix = K.jac_indices
    for P in range(N):
        if not act[P]:
            for p in range(jv.shape[0]):
                jv[p, P] = 0.0
            continue
        for i in range(nx):
            y[i] = u[sp_idx[i], P] * scale[i]
        for q in range(pf_slots.shape[0]):
            v[pf_slots[q]] = pf[q, P]
        vm.jac(K, t, y, v, g, stack)
        for i in range(nx):
            for p in range(ip[i], ip[i + 1]):
                jv[p, P] = g[p] * scale[ix[p]] / scale[i]


# =============================================================================================
# Expression programs


@dataclass(eq=False)
class _Program:
    """Expressions compiled for :func:`_expr_rates` / :func:`_expr_jac`."""

    code: np.ndarray
    consts: np.ndarray
    seg: np.ndarray
    n_slots: int
    stack_size: int
    sp0: int
    c0: int
    pf_slots: np.ndarray
    out_sp: np.ndarray
    out_slot: np.ndarray
    part_slot: np.ndarray
    part_rows: np.ndarray
    part_cols: np.ndarray


def _compile_program(
    outputs: Sequence[tuple[int, Expr]],
    species: Sequence[str],
    ndim: int,
    field_params: Sequence[str],
    partials: bool,
) -> _Program:
    """``outputs`` are (species index, expression) pairs; with ``partials`` the program also
    computes d expression / d species for every species the expression reads."""
    slots: dict[str, int] = {}
    n = 2
    sp0 = n
    for name in species:
        slots[name] = n
        n += 1
    c0 = n
    for a in COORDS[:ndim]:
        slots.setdefault(a, n)
        n += 1
    pf_slots = []
    for p in field_params:
        slots[p] = n
        pf_slots.append(n)
        n += 1

    def slot_of(name: str) -> int:
        try:
            return slots[name]
        except KeyError:
            raise ModelError(f"unknown symbol '{name}' in a reaction term", element=name) from None

    asm = Assembler()
    seg = np.zeros((2, 2), dtype=np.int64)
    out_sp: list[int] = []
    out_slot: list[int] = []
    for s, e in outputs:
        out_sp.append(s)
        out_slot.append(n)
        asm.assign(e, n, slot_of)
        n += 1
    seg[0] = (0, asm.pos())
    part_slot: list[int] = []
    rows: list[int] = []
    cols: list[int] = []
    if partials:
        start = asm.pos()
        sp_index = {name: i for i, name in enumerate(species)}
        for s, e in outputs:
            for name in sorted(symbols(e)):
                if name not in sp_index:
                    continue
                d = fold(diff(e, name))
                if isinstance(d, Num) and d.value == 0.0:
                    continue
                asm.assign(d, n, slot_of)
                part_slot.append(n)
                rows.append(s)
                cols.append(sp_index[name])
                n += 1
        seg[1] = (start, asm.pos())
    code, consts = asm.arrays()
    return _Program(
        code=code,
        consts=consts,
        seg=seg,
        n_slots=n,
        stack_size=max(asm.max_depth, 1),
        sp0=sp0,
        c0=c0,
        pf_slots=np.asarray(pf_slots, dtype=np.int64),
        out_sp=np.asarray(out_sp, dtype=np.int64),
        out_slot=np.asarray(out_slot, dtype=np.int64),
        part_slot=np.asarray(part_slot, dtype=np.int64),
        part_rows=np.asarray(rows, dtype=np.int64),
        part_cols=np.asarray(cols, dtype=np.int64),
    )


# =============================================================================================
# The compiled reaction terms


@dataclass(eq=False)
class _NetworkPart:
    cm: CompiledModel
    v: np.ndarray
    sp_idx: np.ndarray
    scale: np.ndarray
    pf: np.ndarray
    pf_slots: np.ndarray
    rows: np.ndarray  # species index of each Jacobian CSR entry
    cols: np.ndarray


@dataclass(eq=False)
class LocalReactions:
    """The reaction terms of a model on its grid (see the module docstring).

    Arrays of values are ``(n_species, N)`` (species-major, every cell of the box; inactive cells
    are skipped and stay 0).
    """

    species: tuple[str, ...]
    n_cells: int
    active: np.ndarray
    a_diag: np.ndarray  # (ns,)
    lin_rows: np.ndarray  # (n_lin,) species the term adds to
    lin_cols: np.ndarray  # (n_lin,) species it multiplies
    lin_coef: np.ndarray  # (n_lin, N)
    source: np.ndarray | None  # (ns, N) or None
    coords: np.ndarray  # (ndim, N)
    field_params: np.ndarray  # (n_fp, N)
    program: _Program | None
    network: _NetworkPart | None
    time_dependent: bool
    _v: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    _stack: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1))

    def __post_init__(self) -> None:
        if self.program is not None:
            self._v = np.zeros(self.program.n_slots)
            self._v[vm.SLOT_ONE] = 1.0
            self._stack = np.zeros(self.program.stack_size)
        self._net_stack = (
            vm.new_stack(self.network.cm.kernel) if self.network is not None else np.zeros(1)
        )

    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def has_nonlinear(self) -> bool:
        """Whether any term runs cell by cell (nonlinear or time-dependent, or a network)."""
        return self.program is not None or self.network is not None

    @property
    def has_linear_terms(self) -> bool:
        """Linear terms beyond the constant diagonal ``a_diag``."""
        return self.lin_rows.shape[0] > 0

    # ---------------------------------------------------------------- evaluation
    def add_linear(self, u: np.ndarray, out: np.ndarray, beta: float = 1.0) -> None:
        """out += beta * (linear terms other than a_diag, and the constant sources)."""
        for e in range(self.lin_rows.shape[0]):
            out[self.lin_rows[e]] += beta * self.lin_coef[e] * u[self.lin_cols[e]]
        if self.source is not None:
            out += beta * self.source

    def add_nonlinear(self, u: np.ndarray, t: float, out: np.ndarray, beta: float = 1.0) -> None:
        """out += beta * N(u, t) (the terms evaluated cell by cell)."""
        p = self.program
        if p is not None:
            _expr_rates(
                p.code, p.consts, p.seg, self._v, self._stack, u, self.coords,
                self.field_params, p.pf_slots, p.sp0, p.c0, self.active, float(t), p.out_sp,
                p.out_slot, float(beta), out,
            )  # fmt: skip
        nw = self.network
        if nw is not None:
            nx = nw.sp_idx.shape[0]
            _net_rates(
                nw.cm.kernel, nw.v, self._net_stack, u, nw.sp_idx, nw.scale, nw.pf,
                nw.pf_slots, self.active, float(t), np.zeros(nx), np.zeros(nx), float(beta), out,
            )  # fmt: skip

    def rates(self, u: np.ndarray, t: float = 0.0) -> np.ndarray:
        """R(u, t): every reaction term, ``(n_species, N)``."""
        out = self.a_diag[:, None] * u
        out[:, ~self.active] = 0.0
        self.add_linear(u, out)
        self.add_nonlinear(u, t, out)
        return out

    # ---------------------------------------------------------------- matrices
    def linear_matrix(self) -> sp.csr_matrix:
        """The linear terms (a_diag and the rest) as a sparse matrix, species-major."""
        ns, N = self.n_species, self.n_cells
        act = self.active.astype(np.float64)
        rows, cols, vals = [], [], []
        cells = np.arange(N)
        for s in range(ns):
            if self.a_diag[s] != 0.0:
                rows.append(s * N + cells)
                cols.append(s * N + cells)
                vals.append(self.a_diag[s] * act)
        for e in range(self.lin_rows.shape[0]):
            rows.append(self.lin_rows[e] * N + cells)
            cols.append(self.lin_cols[e] * N + cells)
            vals.append(self.lin_coef[e] * act)
        if not rows:
            return sp.csr_matrix((ns * N, ns * N))
        M = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(ns * N, ns * N),
        ).tocsr()
        M.sum_duplicates()
        return M

    def nonlinear_jacobian(self, u: np.ndarray, t: float = 0.0) -> sp.csr_matrix:
        """dN/du at (u, t): one ``ns x ns`` block per cell, as a sparse matrix."""
        ns, N = self.n_species, self.n_cells
        rows, cols, vals = [], [], []
        cells = np.arange(N)
        p = self.program
        if p is not None and p.part_slot.shape[0]:
            jv = np.empty((p.part_slot.shape[0], N))
            _expr_jac(
                p.code, p.consts, p.seg, self._v, self._stack, u, self.coords,
                self.field_params, p.pf_slots, p.sp0, p.c0, self.active, float(t), p.part_slot,
                jv,
            )  # fmt: skip
            for e in range(jv.shape[0]):
                rows.append(p.part_rows[e] * N + cells)
                cols.append(p.part_cols[e] * N + cells)
                vals.append(jv[e])
        nw = self.network
        if nw is not None and nw.rows.shape[0]:
            K = nw.cm.kernel
            jv = np.empty((nw.rows.shape[0], N))
            _net_jac(
                K, nw.v, self._net_stack, u, nw.sp_idx, nw.scale, nw.pf, nw.pf_slots,
                self.active, float(t), np.zeros(nw.sp_idx.shape[0]), np.zeros(K.n_g), jv,
            )  # fmt: skip
            for e in range(jv.shape[0]):
                rows.append(nw.rows[e] * N + cells)
                cols.append(nw.cols[e] * N + cells)
                vals.append(jv[e])
        if not rows:
            return sp.csr_matrix((ns * N, ns * N))
        M = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(ns * N, ns * N),
        ).tocsr()
        M.sum_duplicates()
        return M

    def reaction_stiffness(self, u: np.ndarray, t: float = 0.0) -> float:
        """max over cells of the Gershgorin bound of the local reaction Jacobian at (u, t)."""
        bound = np.abs(self.a_diag).max() if self.n_species else 0.0
        J = self.linear_matrix() - sp.diags(np.repeat(self.a_diag, self.n_cells))
        if self.has_nonlinear:
            J = J + self.nonlinear_jacobian(u, t)
        if J.nnz:
            row = np.asarray(abs(J).sum(axis=1)).ravel()
            diag = np.repeat(self.a_diag, self.n_cells)
            bound = max(bound, float(np.max(row + np.abs(diag))))
        return float(bound)


# =============================================================================================
# Building


def _is_const(e: Expr) -> bool:
    return isinstance(e, Num)


def compile_reactions(
    species: Sequence[str],
    sources: Mapping[str, Expr],
    network: ReactionNetwork | None,
    parameters: Mapping[str, float | np.ndarray],
    grid_centres: Sequence[np.ndarray],
    active: np.ndarray,
    *,
    source: str | None = None,
) -> LocalReactions:
    """Sort and compile the reaction terms of a model (see the module docstring).

    ``sources`` maps species to expression trees (already parsed and checked); ``parameters``
    holds scalars and flattened fields (length N); ``grid_centres`` the flattened cell-centre
    coordinates, one array per axis.
    """
    ns = len(species)
    N = int(active.shape[0])
    ndim = len(grid_centres)
    sp_index = {s: i for i, s in enumerate(species)}
    coords = np.asarray(grid_centres, dtype=np.float64).reshape(ndim, N)
    scalars = {k: Num(float(v)) for k, v in parameters.items() if np.ndim(v) == 0}
    fields = {k: np.asarray(v, dtype=np.float64) for k, v in parameters.items() if np.ndim(v)}
    field_names = sorted(fields)
    field_arr = np.stack([fields[k] for k in field_names]) if field_names else np.zeros((0, N))

    a_diag = np.zeros(ns)
    lin: list[tuple[int, int, Expr]] = []
    src_terms: list[tuple[int, Expr]] = []
    nonlinear: list[tuple[int, Expr]] = []
    time_dep = False
    for name, raw in sources.items():
        s = sp_index[name]
        e = fold(substitute(raw, scalars))
        if uses_time(e):
            time_dep = True
            nonlinear.append((s, e))
            continue
        sp_syms = [x for x in sorted(symbols(e)) if x in sp_index]
        coefs: list[tuple[int, Expr]] = []
        affine = True
        for x in sp_syms:
            d = fold(diff(e, x))
            if symbols(d) & set(sp_index) or uses_time(d):
                affine = False
                break
            coefs.append((sp_index[x], d))
        if not affine:
            nonlinear.append((s, e))
            continue
        rest = fold(substitute(e, {x: Num(0.0) for x in sp_syms}))
        for j, d in coefs:
            if j == s and _is_const(d):
                a_diag[s] += d.value  # type: ignore[attr-defined]
            elif not (_is_const(d) and d.value == 0.0):  # type: ignore[attr-defined]
                lin.append((s, j, d))
        if not (_is_const(rest) and rest.value == 0.0):  # type: ignore[attr-defined]
            src_terms.append((s, rest))

    # constant coefficient and source fields: evaluate once at the cell centres
    lin_coef = np.zeros((len(lin), N))
    source_arr: np.ndarray | None = None
    once = [(i, d) for i, (_, _, d) in enumerate(lin)]
    once += [(len(lin) + i, r) for i, (_, r) in enumerate(src_terms)]
    if once:
        prog = _compile_program(once, species, ndim, field_names, partials=False)
        vals = np.zeros((len(once), N))
        v = np.zeros(prog.n_slots)
        v[vm.SLOT_ONE] = 1.0
        _expr_rates(
            prog.code, prog.consts, prog.seg, v, np.zeros(prog.stack_size),
            np.zeros((ns, N)), coords, field_arr, prog.pf_slots, prog.sp0, prog.c0, active, 0.0,
            np.arange(len(once), dtype=np.int64), prog.out_slot, 1.0, vals,
        )  # fmt: skip
        lin_coef = vals[: len(lin)]
        if src_terms:
            source_arr = np.zeros((ns, N))
            for i, (s, _) in enumerate(src_terms):
                source_arr[s] += vals[len(lin) + i]
    program = (
        _compile_program(nonlinear, species, ndim, field_names, partials=True)
        if nonlinear
        else None
    )
    net_part = None
    if network is not None:
        net_part = _network_part(network, species, parameters, source=source)
        if any(uses_time(r.rate) for r in network.reactions if r.rate is not None):
            time_dep = True
    return LocalReactions(
        species=tuple(species),
        n_cells=N,
        active=active.astype(np.bool_),
        a_diag=a_diag,
        lin_rows=np.asarray([r for r, _, _ in lin], dtype=np.int64),
        lin_cols=np.asarray([c for _, c, _ in lin], dtype=np.int64),
        lin_coef=lin_coef,
        source=source_arr,
        coords=coords,
        field_params=field_arr,
        program=program,
        network=net_part,
        time_dependent=time_dep,
    )


def network_field_species(net: ReactionNetwork, *, source: str | None = None) -> list[str]:
    """The species of ``net`` that become fields: those its reactions or rate rules change.

    Raises :class:`~scalebridge.errors.UnsupportedFeatureError` for what a spatial model cannot
    take: events, rate rules on parameters or compartments, compartments that change.
    """
    if net.events:
        raise UnsupportedFeatureError(
            "events in the local reactions of a spatial model", element=net.events[0].id,
            source=source,
        )  # fmt: skip
    rr = net.rate_rule_map
    for name in rr:
        if name not in net.species_map:
            raise UnsupportedFeatureError(
                "rate rule on a non-species variable in a spatial model",
                element=name,
                source=source,
            )
    for c in net.compartments:
        if not c.constant or c.id in rr or c.id in net.assignment_rule_map:
            raise UnsupportedFeatureError(
                "compartment that changes size in a spatial model", element=c.id, source=source
            )
    out = []
    for s in net.species:
        if s.id in rr or (s.id not in net.assignment_rule_map and net.reaction_changes(s.id)):
            out.append(s.id)
    return out


def _network_part(
    net: ReactionNetwork,
    species: Sequence[str],
    parameters: Mapping[str, Any],
    *,
    source: str | None,
) -> _NetworkPart:
    from ..wellmixed.compiled import compiled

    cm = compiled(net)
    scalars = {k: float(v) for k, v in parameters.items() if np.ndim(v) == 0 and _in_net(net, k)}
    _, v0 = cm.initial(scalars)
    sp_index = {s: i for i, s in enumerate(species)}
    sp_idx, scale = [], []
    for key, name in zip(cm.state_keys, cm.state_names, strict=True):
        if name not in sp_index:
            raise UnsupportedFeatureError(
                "network state that is not a field species", element=name, source=source
            )
        sp_idx.append(sp_index[name])
        s = net.species_map[name]
        size = float(v0[cm.slots[s.compartment]])
        # amounts are stored; a rate-rule species stores its symbol value
        if key.startswith(AMOUNT) or s.has_only_substance_units:
            scale.append(size)
        else:
            scale.append(1.0)
    pf_names = [k for k, v in parameters.items() if np.ndim(v) and _in_net(net, k)]
    for k in pf_names:
        if net.kind_of(k) != "parameter":
            raise UnsupportedFeatureError(
                "a field value for a network element that is not a parameter", element=k,
                source=source,
            )  # fmt: skip
    pf = (
        np.stack([np.asarray(parameters[k], dtype=np.float64) for k in pf_names])
        if pf_names
        else np.zeros((0, 1))
    )
    pf_slots = np.asarray([cm.slot_of(k) for k in pf_names], dtype=np.int64)
    K = cm.kernel
    rows = np.zeros(K.jac_indices.shape[0], dtype=np.int64)
    for i in range(len(sp_idx)):
        rows[K.jac_indptr[i] : K.jac_indptr[i + 1]] = sp_idx[i]
    cols = np.asarray([sp_idx[j] for j in K.jac_indices], dtype=np.int64)
    return _NetworkPart(
        cm=cm,
        v=v0.copy(),
        sp_idx=np.asarray(sp_idx, dtype=np.int64),
        scale=np.asarray(scale, dtype=np.float64),
        pf=pf,
        pf_slots=pf_slots,
        rows=rows,
        cols=cols,
    )


def _in_net(net: ReactionNetwork, name: str) -> bool:
    return net.kind_of(name) in ("parameter", "compartment", "species")


def network_initial(net: ReactionNetwork, parameters: Mapping[str, Any]) -> dict[str, float]:
    """Initial concentration of each field species of ``net`` (SBML initial values)."""
    from ..wellmixed.compiled import compiled

    cm = compiled(net)
    scalars = {k: float(v) for k, v in parameters.items() if np.ndim(v) == 0 and _in_net(net, k)}
    y0, v0 = cm.initial(scalars)
    out = {}
    for i, (key, name) in enumerate(zip(cm.state_keys, cm.state_names, strict=True)):
        s = net.species_map.get(name)
        if s is None:
            continue
        size = float(v0[cm.slots[s.compartment]])
        scaled = key.startswith(AMOUNT) or s.has_only_substance_units
        out[name] = float(y0[i]) / size if scaled else float(y0[i])
    return out


def evaluate_on_cells(
    exprs: Sequence[Expr],
    species: Sequence[str],
    parameters: Mapping[str, Any],
    grid_centres: Sequence[np.ndarray],
    active: np.ndarray,
    t: float = 0.0,
) -> np.ndarray:
    """Values of expressions of the coordinates, parameters (scalars or flattened fields) and
    time at every cell centre, ``(len(exprs), N)``; species read as 0."""
    N = int(active.shape[0])
    ndim = len(grid_centres)
    coords = np.asarray(grid_centres, dtype=np.float64).reshape(ndim, N)
    scalars = {k: Num(float(v)) for k, v in parameters.items() if np.ndim(v) == 0}
    names = sorted(k for k, v in parameters.items() if np.ndim(v))
    pf = (
        np.stack([np.asarray(parameters[k], dtype=np.float64).reshape(N) for k in names])
        if names
        else np.zeros((0, N))
    )
    outs = [(i, fold(substitute(e, scalars))) for i, e in enumerate(exprs)]
    prog = _compile_program(outs, species, ndim, names, partials=False)
    vals = np.zeros((len(outs), N))
    v = np.zeros(prog.n_slots)
    v[vm.SLOT_ONE] = 1.0
    _expr_rates(
        prog.code, prog.consts, prog.seg, v, np.zeros(prog.stack_size),
        np.zeros((len(species), N)), coords, pf, prog.pf_slots, prog.sp0, prog.c0,
        np.ones(N, dtype=np.bool_), float(t), prog.out_sp, prog.out_slot, 1.0, vals,
    )  # fmt: skip
    return vals
