"""Compiled, table-driven kernels: one stack machine for all models.

Per-model generated code does not scale (DESIGN.md), so every model is turned into *data* -- a
bytecode program plus tables -- and these kernels, compiled once per installation (numba,
``cache=True``), run it.  A model's data is a :class:`Kernel` named tuple of arrays.

Value array ``v``
-----------------
All quantities live in one float64 array ``v`` of ``Kernel.n_slots`` slots:
slot 0 is the time, slot 1 the constant 1.0, then states (copied from ``y``), fixed values
(parameters, compartment sizes, amounts of species no reaction or rule changes, stoichiometries;
set at the start and changed only by events), constants, and derived values (concentrations,
assignment rules, reaction rates, rate-rule right-hand sides, partial derivatives, root functions).

Segments
--------
``seg[s] = (start, end)`` delimits the code of segment ``s``: :data:`SEG_DERIV` computes every
derived slot the right-hand side needs, :data:`SEG_OUT` the further ones outputs need,
:data:`SEG_PARTIALS` the partial derivatives of the Jacobian, :data:`SEG_ROOTS` the root functions,
:data:`SEG_TRIGGERS`, :data:`SEG_DELAYS`, :data:`SEG_PRIORITIES` event quantities,
:data:`SEG_TIME_ROOTS` only the root functions of time alone (with just the derived values they
need, so they can be scanned cheaply), and ``SEG_EVENT0 + i`` the assignment values of event
``i``.

Right-hand side and Jacobian
----------------------------
``dydt[sop_dst[e]] += sop_coef[e] * v[sop_a[e]] * v[sop_b[e]]`` over the sum-of-products table
(reaction terms cf * stoichiometry * rate, and rate rules with ``sop_b`` = the 1.0 slot).
The Jacobian is assembled by forward-mode chain rule in a gradient buffer ``g``:
``g[acc_dst[e]] += acc_coef[e] * v[acc_w[e]] * (1 if acc_src[e] < 0 else g[acc_src[e]])``,
entries in topological order; ``g[:nnz]`` are the values of d(dydt)/dy in CSR order
(``jac_indptr``, ``jac_indices``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .jit import kernel

# --- opcodes (operands follow inline in ``code``) -------------------------------------------
OP_LOAD = 1  # slot        push v[slot]
OP_CONST = 2  # k          push consts[k]
OP_STORE = 3  # slot       v[slot] = pop
OP_ADD = 4
OP_SUB = 5
OP_MUL = 6
OP_DIV = 7
OP_POW = 8
OP_NEG = 9
OP_ADDN = 10  # n          sum of top n
OP_MULN = 11  # n          product of top n
OP_FUNC1 = 12  # f         unary function f
OP_FUNC2 = 13  # f         binary function f
OP_LT = 14
OP_LE = 15
OP_GT = 16
OP_GE = 17
OP_EQ = 18
OP_NE = 19
OP_AND = 20  # n
OP_OR = 21  # n
OP_XOR = 22  # n
OP_NOT = 23
OP_PIECEWISE = 24  # n      n arguments: v1 c1 v2 c2 ... [otherwise]
OP_MIN = 25  # n
OP_MAX = 26  # n
OP_MULLOAD = 27  # slot    top *= v[slot]
OP_LOADMUL = 28  # a b     push v[a] * v[b]

# unary function codes
F_EXP, F_LN, F_LOG10, F_SQRT, F_ABS, F_FLOOR, F_CEIL, F_FACT = 0, 1, 2, 3, 4, 5, 6, 7
F_SIN, F_COS, F_TAN, F_SEC, F_CSC, F_COT = 8, 9, 10, 11, 12, 13
F_SINH, F_COSH, F_TANH, F_SECH, F_CSCH, F_COTH = 14, 15, 16, 17, 18, 19
F_ASIN, F_ACOS, F_ATAN, F_ASEC, F_ACSC, F_ACOT = 20, 21, 22, 23, 24, 25
F_ASINH, F_ACOSH, F_ATANH, F_ASECH, F_ACSCH, F_ACOTH = 26, 27, 28, 29, 30, 31
UNARY_CODES = {
    "exp": F_EXP, "ln": F_LN, "log10": F_LOG10, "sqrt": F_SQRT, "abs": F_ABS,
    "floor": F_FLOOR, "ceiling": F_CEIL, "factorial": F_FACT,
    "sin": F_SIN, "cos": F_COS, "tan": F_TAN, "sec": F_SEC, "csc": F_CSC, "cot": F_COT,
    "sinh": F_SINH, "cosh": F_COSH, "tanh": F_TANH, "sech": F_SECH, "csch": F_CSCH,
    "coth": F_COTH, "arcsin": F_ASIN, "arccos": F_ACOS, "arctan": F_ATAN, "arcsec": F_ASEC,
    "arccsc": F_ACSC, "arccot": F_ACOT, "arcsinh": F_ASINH, "arccosh": F_ACOSH,
    "arctanh": F_ATANH, "arcsech": F_ASECH, "arccsch": F_ACSCH, "arccoth": F_ACOTH,
}  # fmt: skip
# binary function codes
F2_REM, F2_QUOT, F2_LOGB, F2_ROOT, F2_IMPLIES = 0, 1, 2, 3, 4
BINARY_CODES = {"rem": F2_REM, "quotient": F2_QUOT, "logb": F2_LOGB, "root": F2_ROOT}

SLOT_TIME = 0
SLOT_ONE = 1

SEG_DERIV = 0
SEG_OUT = 1
SEG_PARTIALS = 2
SEG_ROOTS = 3
SEG_TRIGGERS = 4
SEG_DELAYS = 5
SEG_PRIORITIES = 6
SEG_TIME_ROOTS = 7
SEG_EVENT0 = 8


class Kernel(NamedTuple):
    """A model as data for the compiled kernels (see the module docstring)."""

    code: np.ndarray  # int32[:]
    consts: np.ndarray  # float64[:]
    seg: np.ndarray  # int64[n_seg, 2]
    stack_size: int
    n_slots: int
    x_slots: np.ndarray  # int64[n_x]    slot of each state
    sop_dst: np.ndarray  # int64[:]      state index
    sop_coef: np.ndarray  # float64[:]
    sop_a: np.ndarray  # int64[:]
    sop_b: np.ndarray  # int64[:]
    acc_dst: np.ndarray  # int64[:]      index into g
    acc_coef: np.ndarray  # float64[:]
    acc_w: np.ndarray  # int64[:]      slot of the partial derivative
    acc_src: np.ndarray  # int64[:]      index into g, or -1 for a state's unit gradient
    n_g: int
    jac_indptr: np.ndarray  # int64[n_x + 1]
    jac_indices: np.ndarray  # int64[nnz]
    root_slots: np.ndarray  # int64[n_roots]
    rec_slots: np.ndarray  # int64[n_rec]


@kernel
def _factorial(x: float) -> float:
    if x < 0.0 or x != np.floor(x):
        return math.gamma(x + 1.0) if x > -1.0 else np.nan
    return math.gamma(x + 1.0)


@kernel
def _unary(f: int, x: float) -> float:
    if f == F_EXP:
        return math.exp(x)
    if f == F_LN:
        return math.log(x) if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    if f == F_LOG10:
        return math.log10(x) if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    if f == F_SQRT:
        return math.sqrt(x) if x >= 0.0 else np.nan
    if f == F_ABS:
        return abs(x)
    # np.floor/np.ceil stay in float64 (math.floor goes through int64 and wraps).
    if f == F_FLOOR:
        return np.floor(x)
    if f == F_CEIL:
        return np.ceil(x)
    if f == F_FACT:
        return _factorial(x)
    if f == F_SIN:
        return math.sin(x)
    if f == F_COS:
        return math.cos(x)
    if f == F_TAN:
        return math.tan(x)
    if f == F_SEC:
        return 1.0 / math.cos(x)
    if f == F_CSC:
        return 1.0 / math.sin(x)
    if f == F_COT:
        return 1.0 / math.tan(x)
    if f == F_SINH:
        return math.sinh(x)
    if f == F_COSH:
        return math.cosh(x)
    if f == F_TANH:
        return math.tanh(x)
    if f == F_SECH:
        return 1.0 / math.cosh(x)
    if f == F_CSCH:
        return 1.0 / math.sinh(x)
    if f == F_COTH:
        return 1.0 / math.tanh(x)
    if f == F_ASIN:
        return math.asin(x) if abs(x) <= 1.0 else np.nan
    if f == F_ACOS:
        return math.acos(x) if abs(x) <= 1.0 else np.nan
    if f == F_ATAN:
        return math.atan(x)
    if f == F_ASEC:
        return math.acos(1.0 / x) if abs(x) >= 1.0 else np.nan
    if f == F_ACSC:
        return math.asin(1.0 / x) if abs(x) >= 1.0 else np.nan
    if f == F_ACOT:
        return math.atan(1.0 / x) if x != 0.0 else math.pi / 2.0
    if f == F_ASINH:
        return math.asinh(x)
    if f == F_ACOSH:
        return math.acosh(x) if x >= 1.0 else np.nan
    if f == F_ATANH:
        if abs(x) < 1.0:
            return math.atanh(x)
        return np.copysign(np.inf, x) if abs(x) == 1.0 else np.nan
    if f == F_ASECH:
        return math.acosh(1.0 / x) if 0.0 < x <= 1.0 else np.nan
    if f == F_ACSCH:
        return math.asinh(1.0 / x) if x != 0.0 else np.nan
    if f == F_ACOTH:
        return math.atanh(1.0 / x) if abs(x) > 1.0 else np.nan
    return np.nan


@kernel
def _binary(f: int, a: float, b: float) -> float:
    if f == F2_REM:
        return np.fmod(a, b) if b != 0.0 else np.nan
    if f == F2_QUOT:
        return np.trunc(a / b) if b != 0.0 else np.nan
    if f == F2_LOGB:  # logb(base=a, x=b)
        if a <= 0.0 or b < 0.0:
            return np.nan
        return math.log(b) / math.log(a)
    if f == F2_ROOT:  # root(n=a, x=b)
        return _pow(b, 1.0 / a)
    return np.nan


@kernel
def _pow(a: float, b: float) -> float:
    if a < 0.0 and b != np.floor(b):
        return np.nan
    return a**b


@kernel
def _truth(x: float) -> bool:
    return x != 0.0 and x == x


@kernel
def run(code: np.ndarray, consts: np.ndarray, v: np.ndarray, start: int, end: int,
        stack: np.ndarray) -> None:  # fmt: skip
    """Execute ``code[start:end]`` on the value array ``v``."""
    sp = 0
    pc = start
    while pc < end:
        op = code[pc]
        if op == OP_LOAD:
            stack[sp] = v[code[pc + 1]]
            sp += 1
            pc += 2
        elif op == OP_STORE:
            sp -= 1
            v[code[pc + 1]] = stack[sp]
            pc += 2
        elif op == OP_MULLOAD:
            stack[sp - 1] *= v[code[pc + 1]]
            pc += 2
        elif op == OP_LOADMUL:
            stack[sp] = v[code[pc + 1]] * v[code[pc + 2]]
            sp += 1
            pc += 3
        elif op == OP_CONST:
            stack[sp] = consts[code[pc + 1]]
            sp += 1
            pc += 2
        elif op == OP_MUL:
            sp -= 1
            stack[sp - 1] *= stack[sp]
            pc += 1
        elif op == OP_ADD:
            sp -= 1
            stack[sp - 1] += stack[sp]
            pc += 1
        elif op == OP_SUB:
            sp -= 1
            stack[sp - 1] -= stack[sp]
            pc += 1
        elif op == OP_DIV:
            sp -= 1
            stack[sp - 1] /= stack[sp]
            pc += 1
        elif op == OP_NEG:
            stack[sp - 1] = -stack[sp - 1]
            pc += 1
        elif op == OP_POW:
            sp -= 1
            stack[sp - 1] = _pow(stack[sp - 1], stack[sp])
            pc += 1
        elif op == OP_ADDN:
            n = code[pc + 1]
            acc = 0.0
            for i in range(sp - n, sp):
                acc += stack[i]
            sp -= n
            stack[sp] = acc
            sp += 1
            pc += 2
        elif op == OP_MULN:
            n = code[pc + 1]
            acc = 1.0
            for i in range(sp - n, sp):
                acc *= stack[i]
            sp -= n
            stack[sp] = acc
            sp += 1
            pc += 2
        elif op == OP_FUNC1:
            stack[sp - 1] = _unary(code[pc + 1], stack[sp - 1])
            pc += 2
        elif op == OP_FUNC2:
            sp -= 1
            stack[sp - 1] = _binary(code[pc + 1], stack[sp - 1], stack[sp])
            pc += 2
        elif op >= OP_LT and op <= OP_NE:
            sp -= 1
            a = stack[sp - 1]
            b = stack[sp]
            if op == OP_LT:
                r = a < b
            elif op == OP_LE:
                r = a <= b
            elif op == OP_GT:
                r = a > b
            elif op == OP_GE:
                r = a >= b
            elif op == OP_EQ:
                r = a == b
            else:
                r = a != b
            stack[sp - 1] = 1.0 if r else 0.0
            pc += 1
        elif op == OP_AND or op == OP_OR or op == OP_XOR:
            n = code[pc + 1]
            cnt = 0
            for i in range(sp - n, sp):
                if _truth(stack[i]):
                    cnt += 1
            sp -= n
            if op == OP_AND:
                r = cnt == n
            elif op == OP_OR:
                r = cnt > 0
            else:
                r = cnt % 2 == 1
            stack[sp] = 1.0 if r else 0.0
            sp += 1
            pc += 2
        elif op == OP_NOT:
            stack[sp - 1] = 0.0 if _truth(stack[sp - 1]) else 1.0
            pc += 1
        elif op == OP_PIECEWISE:
            n = code[pc + 1]
            base = sp - n
            res = np.nan
            found = False
            for i in range(0, n - 1, 2):
                if _truth(stack[base + i + 1]):
                    res = stack[base + i]
                    found = True
                    break
            if not found and n % 2 == 1:
                res = stack[base + n - 1]
            sp = base
            stack[sp] = res
            sp += 1
            pc += 2
        elif op == OP_MIN or op == OP_MAX:
            n = code[pc + 1]
            res = stack[sp - n]
            isnan = res != res
            for i in range(sp - n + 1, sp):
                x = stack[i]
                if x != x:
                    isnan = True
                elif op == OP_MIN:
                    if x < res:
                        res = x
                elif x > res:
                    res = x
            sp -= n
            stack[sp] = np.nan if isnan else res
            sp += 1
            pc += 2
        else:
            # Unknown opcode: poison the result rather than read garbage.
            for i in range(v.shape[0]):
                v[i] = np.nan
            return


@kernel
def load_state(K: Kernel, t: float, y: np.ndarray, v: np.ndarray) -> None:
    v[SLOT_TIME] = t
    xs = K.x_slots
    for i in range(xs.shape[0]):
        v[xs[i]] = y[i]


@kernel
def run_segment(K: Kernel, v: np.ndarray, s: int, stack: np.ndarray) -> None:
    run(K.code, K.consts, v, K.seg[s, 0], K.seg[s, 1], stack)


@kernel
def rhs(K: Kernel, t: float, y: np.ndarray, v: np.ndarray, dydt: np.ndarray,
        stack: np.ndarray) -> None:  # fmt: skip
    """dy/dt at (t, y); leaves the derived values in ``v``."""
    load_state(K, t, y, v)
    run(K.code, K.consts, v, K.seg[SEG_DERIV, 0], K.seg[SEG_DERIV, 1], stack)
    for i in range(dydt.shape[0]):
        dydt[i] = 0.0
    dst, coef, a, b = K.sop_dst, K.sop_coef, K.sop_a, K.sop_b
    for e in range(dst.shape[0]):
        dydt[dst[e]] += coef[e] * v[a[e]] * v[b[e]]


@kernel
def jac(K: Kernel, t: float, y: np.ndarray, v: np.ndarray, g: np.ndarray,
        stack: np.ndarray) -> None:  # fmt: skip
    """d(dy/dt)/dy at (t, y): ``g[:nnz]`` holds the CSR values (see ``jac_indptr``)."""
    load_state(K, t, y, v)
    run(K.code, K.consts, v, K.seg[SEG_DERIV, 0], K.seg[SEG_DERIV, 1], stack)
    run(K.code, K.consts, v, K.seg[SEG_PARTIALS, 0], K.seg[SEG_PARTIALS, 1], stack)
    for i in range(g.shape[0]):
        g[i] = 0.0
    dst, coef, w, src = K.acc_dst, K.acc_coef, K.acc_w, K.acc_src
    for e in range(dst.shape[0]):
        s = src[e]
        if s < 0:
            g[dst[e]] += coef[e] * v[w[e]]
        else:
            g[dst[e]] += coef[e] * v[w[e]] * g[s]


@kernel
def jac_dense(K: Kernel, t: float, y: np.ndarray, v: np.ndarray, g: np.ndarray,
              J: np.ndarray, stack: np.ndarray) -> None:  # fmt: skip
    """Dense d(dy/dt)/dy into ``J`` (n x n)."""
    jac(K, t, y, v, g, stack)
    J[:, :] = 0.0
    ip, ix = K.jac_indptr, K.jac_indices
    for i in range(ip.shape[0] - 1):
        for p in range(ip[i], ip[i + 1]):
            J[i, ix[p]] = g[p]


@kernel
def roots(K: Kernel, t: float, y: np.ndarray, v: np.ndarray, out: np.ndarray,
          stack: np.ndarray) -> None:  # fmt: skip
    """Root-function values at (t, y) into ``out`` (length ``len(K.root_slots)``)."""
    load_state(K, t, y, v)
    run(K.code, K.consts, v, K.seg[SEG_DERIV, 0], K.seg[SEG_DERIV, 1], stack)
    run(K.code, K.consts, v, K.seg[SEG_ROOTS, 0], K.seg[SEG_ROOTS, 1], stack)
    rs = K.root_slots
    for i in range(rs.shape[0]):
        out[i] = v[rs[i]]


@kernel
def record(K: Kernel, t: float, y: np.ndarray, v: np.ndarray, row: np.ndarray,
           stack: np.ndarray) -> None:  # fmt: skip
    """Recorded output values at (t, y) into ``row`` (length ``len(K.rec_slots)``)."""
    load_state(K, t, y, v)
    run(K.code, K.consts, v, K.seg[SEG_DERIV, 0], K.seg[SEG_DERIV, 1], stack)
    run(K.code, K.consts, v, K.seg[SEG_OUT, 0], K.seg[SEG_OUT, 1], stack)
    rs = K.rec_slots
    for i in range(rs.shape[0]):
        row[i] = v[rs[i]]


@kernel
def evaluate_all(K: Kernel, t: float, y: np.ndarray, v: np.ndarray, stack: np.ndarray) -> None:
    """Every derived value (right-hand side and output) at (t, y) into ``v``."""
    load_state(K, t, y, v)
    run(K.code, K.consts, v, K.seg[SEG_DERIV, 0], K.seg[SEG_DERIV, 1], stack)
    run(K.code, K.consts, v, K.seg[SEG_OUT, 0], K.seg[SEG_OUT, 1], stack)


@kernel
def _time_roots(K: Kernel, t: float, v: np.ndarray, g: np.ndarray, stack: np.ndarray) -> None:
    v[SLOT_TIME] = t
    run(K.code, K.consts, v, K.seg[SEG_TIME_ROOTS, 0], K.seg[SEG_TIME_ROOTS, 1], stack)
    rs = K.root_slots
    for i in range(rs.shape[0]):
        g[i] = v[rs[i]]


@kernel
def _opposite(ref: float, x: float) -> bool:
    return (ref < 0.0 and x > 0.0) or (ref > 0.0 and x < 0.0)


@kernel
def first_crossing(K: Kernel, t_lo: float, t_hi: float, n: int, v: np.ndarray,
                   mask: np.ndarray, slope: np.ndarray, g: np.ndarray,
                   stack: np.ndarray) -> float:  # fmt: skip
    """First strict sign change in (t_lo, t_hi] of the root functions of time alone (``mask``).

    Uses segment :data:`SEG_TIME_ROOTS` (these functions read no state).  A function with a
    constant ``slope`` (affine in time) crosses exactly at t_lo - g(t_lo)/slope; the others are
    sampled on ``n`` equal sub-intervals.  Returns the right end of a bracket a few ulp wide
    around the earliest crossing, where the function already has its new sign, or ``inf``.  A
    function that is zero at ``t_lo`` counts from the first point where it is not.
    """
    m = K.root_slots.shape[0]
    ref = np.zeros(m)
    _time_roots(K, t_lo, v, g, stack)
    best = np.inf
    sampled = False
    for i in range(m):
        ref[i] = g[i]
        if not mask[i]:
            continue
        if slope[i] == 0.0:
            sampled = True
            continue
        if g[i] == 0.0 or g[i] != g[i]:
            continue
        t_star = t_lo - g[i] / slope[i]
        if t_star <= t_lo or t_star > t_hi:
            continue
        # step up to the first float where the sign has changed
        tb = t_star
        for _ in range(64):
            _time_roots(K, tb, v, g, stack)
            if _opposite(ref[i], g[i]):
                break
            tb = np.nextafter(tb, np.inf)
        if tb < best:
            best = tb
    if sampled:
        prev = t_lo
        end = min(best, t_hi)
        for j in range(1, n + 1):
            t = t_lo + (end - t_lo) * j / n if j < n else end
            _time_roots(K, t, v, g, stack)
            hit = False
            for i in range(m):
                if not mask[i] or slope[i] != 0.0:
                    continue
                if ref[i] == 0.0 or ref[i] != ref[i]:
                    ref[i] = g[i]
                elif _opposite(ref[i], g[i]):
                    hit = True
            if hit:
                a, b = prev, t
                for _ in range(200):
                    mid = 0.5 * (a + b)
                    if mid <= a or mid >= b:
                        break
                    _time_roots(K, mid, v, g, stack)
                    crossed = False
                    for i in range(m):
                        if mask[i] and slope[i] == 0.0 and _opposite(ref[i], g[i]):
                            crossed = True
                    if crossed:
                        b = mid
                    else:
                        a = mid
                if b < best:
                    best = b
                break
            prev = t
    return best


def new_stack(K: Kernel) -> np.ndarray:
    return np.empty(max(K.stack_size, 1), dtype=np.float64)
