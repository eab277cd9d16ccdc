"""The compiled stack machine (scalebridge.codegen.vm) and its assembler (codegen.program).

Reference: the plain-Python evaluator ``scalebridge.model.expr.evaluate``.  The compiled value of
a tree must equal it exactly (NaN where it is NaN) -- both follow IEEE 754 and C libm, and both
add left to right -- except ``factorial``, computed as Gamma(x + 1) by the kernel (a few ulp).
Stack use is checked black-box: the stack array is longer than the assembler's declared depth
and filled with a sentinel, which must survive beyond the declared depth.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from scalebridge.codegen import vm
from scalebridge.codegen.build import compile_network
from scalebridge.codegen.program import Assembler
from scalebridge.errors import UnsupportedFeatureError
from scalebridge.model import (
    AssignmentRule,
    Call,
    Compartment,
    Expr,
    FunCall,
    Num,
    Parameter,
    ReactionNetwork,
    Sym,
)
from scalebridge.model.expr import CONSTANTS, OPS, UNARY_FUNCS, evaluate, fold
from scalebridge.model.parse import parse_expr

from .test_expr import TREE_NAMES, random_tree, same_value

INF, NAN = math.inf, math.nan
SENTINEL = 1234.5678
SPARE = 64


def run_compiled(e: Expr, env: dict[str, float], t: float = 0.0) -> tuple[float, int]:
    """Value of ``e`` run on the stack machine, and the declared stack depth (checked)."""
    names = sorted(env)
    slot = {n: 2 + i for i, n in enumerate(names)}
    out = 2 + len(names)
    asm = Assembler()
    asm.assign(e, out, lambda n: slot[n])
    code, consts = asm.arrays()
    v = np.zeros(out + 1)
    v[vm.SLOT_TIME], v[vm.SLOT_ONE] = t, 1.0
    for n in names:
        v[slot[n]] = env[n]
    stack = np.full(asm.max_depth + SPARE, SENTINEL)
    vm.run(code, consts, v, 0, code.shape[0], stack)
    assert np.all(stack[asm.max_depth :] == SENTINEL), "stack used beyond the declared depth"
    assert asm._depth == 0  # the store consumed the value
    return float(v[out]), asm.max_depth


def assert_same(got: float, want: float, what: object) -> None:
    assert same_value(got, want), (what, got, want)
    if got == 0.0 or math.isinf(got):
        assert math.copysign(1.0, got) == math.copysign(1.0, want), (what, got, want)


SPECIAL = (0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.7, 170.0, 710.0, -1000.0, 1e300, -1e300,
           INF, -INF, NAN)  # fmt: skip


@pytest.mark.parametrize("op", [*UNARY_FUNCS, "neg", "not"])
def test_unary_ops_at_special_values(op: str) -> None:
    for x in SPECIAL:
        e = Call(op, (Sym("x"),))
        got, _ = run_compiled(e, {"x": x})
        want = evaluate(e, {"x": x})
        if op == "factorial" and math.isfinite(want) and want != 0.0:
            assert got == pytest.approx(want, rel=1e-13), x
        else:
            assert_same(got, want, (op, x))


BINARY = ["add", "mul", "sub", "div", "pow", "root", "logb", "rem", "quotient", "min", "max",
          "lt", "le", "gt", "ge", "eq", "ne", "and", "or", "xor", "implies",
          "piecewise"]  # fmt: skip


@pytest.mark.parametrize("op", BINARY)
def test_binary_ops_at_special_values(op: str) -> None:
    for a in SPECIAL:
        for b in SPECIAL:
            e = Call(op, (Sym("a"), Sym("b")))
            env = {"a": a, "b": b}
            got, _ = run_compiled(e, env)
            assert_same(got, evaluate(e, env), (op, a, b))


def test_every_op_is_compiled() -> None:
    covered = set(UNARY_FUNCS) | set(BINARY) | {"neg", "not"} | set(CONSTANTS) | {"rateOf"}
    assert covered == set(OPS)
    for c in CONSTANTS:
        got, depth = run_compiled(Call(c), {}, t=2.5)
        assert_same(got, evaluate(Call(c), {}, time=2.5), c)
        assert depth == 1


def test_factorial_is_gamma_within_ulps() -> None:
    for x in [float(n) for n in range(0, 171)] + [0.5, 2.5, -0.5, 7.25, 100.5]:
        got, _ = run_compiled(Call("factorial", (Sym("x"),)), {"x": x})
        assert got == pytest.approx(math.gamma(x + 1.0), rel=4e-14), x
    for n in (0, 1, 5, 10, 20):  # small factorials are exact
        got, _ = run_compiled(Call("factorial", (Num(float(n)),)), {})
        assert got == math.factorial(n)


@pytest.mark.parametrize("seed", range(4))
def test_random_trees_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    values = (0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 0.25, 7.0, 1e-3, 40.0, 710.0, 1e300,
              -1e300, INF, -INF, NAN)  # fmt: skip
    n_nan = 0
    for _ in range(1500):
        e = random_tree(rng, rng.randint(1, 7), exclude=frozenset({"factorial"}), max_args=8)
        env = {n: rng.choice(values) for n in TREE_NAMES}
        t = rng.choice((0.0, 1.5, -2.0))
        got, _ = run_compiled(e, env, t)
        want = evaluate(e, env, time=t)
        assert_same(got, want, e)
        n_nan += math.isnan(want)
    assert n_nan < 1200  # most trees have a finite value: the comparison is not vacuous


def _depth_of(e: Expr) -> int:
    """Stack depth of plain left-to-right evaluation of ``e`` (the assembler may need less:
    it multiplies symbols straight from their slots)."""
    if isinstance(e, Num | Sym) or (isinstance(e, Call) and not e.args):
        return 1
    assert isinstance(e, Call)
    if e.op in ("add", "mul"):
        return max(_depth_of(a) + (1 if i else 0) for i, a in enumerate(e.args))
    if e.op == "implies":
        return _depth_of(Call("or", (Call("not", (e.args[0],)), e.args[1])))
    return max(_depth_of(a) + i for i, a in enumerate(e.args))


def test_deep_right_nested_trees() -> None:
    # x - (x - (x - ...)) needs one stack slot per level.
    n = 300
    e: Expr = Sym("x")
    for i in range(n):
        e = Call("sub", (Num(float(i)), e))
    got, depth = run_compiled(e, {"x": 0.5})
    assert got == evaluate(e, {"x": 0.5})
    assert depth == n + 1 == _depth_of(e)
    # Right-nested power towers, piecewise and logic, each level adding to the stack.
    p: Expr = Sym("x")
    for i in range(60):
        cond = Call("lt", (Sym("x"), Num(float(i % 3))))
        p = Call("pow", (Num(1.01), Call("piecewise", (Sym("y"), cond, p))))
        p = Call("or", (Num(0.0), Call("xor", (Sym("y"), Num(0.0), Call("max", (Sym("x"), p))))))
    env = {"x": 0.3, "y": 1.0}
    got, depth = run_compiled(p, env)
    assert got == evaluate(p, env) and depth == _depth_of(p) > 200  # (no products here)


def test_wide_nary_operations() -> None:
    rng = random.Random(7)
    args = tuple(Sym(f"s{i}") for i in range(250))
    env = {f"s{i}": rng.choice((-2.0, -0.5, 0.0, 0.25, 1.0, 3.0)) for i in range(250)}
    for op in ("add", "mul", "and", "or", "xor", "min", "max", "piecewise"):
        e = Call(op, args)
        got, depth = run_compiled(e, env)
        assert_same(got, evaluate(e, env), op)
        assert depth <= _depth_of(e)
    # A piecewise whose first true condition is far down the list, with and without otherwise.
    pieces: list[Expr] = []
    for i in range(100):
        pieces += [Num(float(i)), Call("gt", (Sym("x"), Num(float(99 - i))))]
    got, _ = run_compiled(Call("piecewise", tuple(pieces)), {"x": 0.5})
    assert got == 99.0
    got, _ = run_compiled(Call("piecewise", tuple(pieces)), {"x": -0.5})
    assert math.isnan(got)
    got, _ = run_compiled(Call("piecewise", (*pieces, Num(-1.0))), {"x": -0.5})
    assert got == -1.0


def test_assembler_refuses_what_it_cannot_compile() -> None:
    asm = Assembler()
    with pytest.raises(UnsupportedFeatureError, match="'f' was not expanded"):
        asm.expr(FunCall("f", (Num(1.0),)), lambda n: 2)
    with pytest.raises(UnsupportedFeatureError, match="rateOf"):
        asm.expr(parse_expr("rateOf(x)"), lambda n: 2)


def test_constant_pool_keeps_signed_zero_and_nan() -> None:
    asm = Assembler()
    for c in (0.0, -0.0, NAN, NAN, 0.0, 1.0):
        asm.const(c)
    assert len(asm.consts) == 4
    got, _ = run_compiled(Call("div", (Num(1.0), Num(-0.0))), {})
    assert got == -INF


def test_hand_written_bytecode() -> None:
    """ADDN / MULN (not emitted by the assembler) and the poisoning of unknown opcodes."""
    consts = np.array([2.0, 3.0, 4.0])
    code = np.array([vm.OP_CONST, 0, vm.OP_CONST, 1, vm.OP_CONST, 2, vm.OP_ADDN, 3, vm.OP_STORE, 2,
                     vm.OP_CONST, 0, vm.OP_CONST, 1, vm.OP_CONST, 2, vm.OP_MULN, 3, vm.OP_STORE, 3],
                    dtype=np.int32)  # fmt: skip
    v = np.zeros(4)
    vm.run(code, consts, v, 0, code.shape[0], np.zeros(4))
    assert (v[2], v[3]) == (9.0, 24.0)
    vm.run(np.array([99], dtype=np.int32), consts, v, 0, 1, np.zeros(4))
    assert np.all(np.isnan(v))


def _rule_network(e: Expr) -> ReactionNetwork:
    return ReactionNetwork(
        compartments=(Compartment("c", 1.0),),
        parameters=(
            *(Parameter(n, 1.0) for n in TREE_NAMES),
            Parameter("out", None, constant=False),
        ),
        assignment_rules=(AssignmentRule("out", e),),
    )


def test_compiled_networks_match_the_reference() -> None:
    """The same trees as assignment rules of a network compiled by ``compile_network`` (which
    folds constants: the reference is the folded tree)."""
    rng = random.Random(99)
    values = (0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 0.25, 7.0, 1e-3, INF, NAN)
    for _ in range(120):
        e = random_tree(rng, rng.randint(1, 6), exclude=frozenset({"factorial"}))
        cm = compile_network(_rule_network(e))
        env = {n: rng.choice(values) for n in TREE_NAMES}
        y, v = cm.initial(env)
        K = cm.kernel
        stack = np.full(K.stack_size + SPARE, SENTINEL)
        t = rng.choice((0.0, 2.0))
        vm.evaluate_all(K, t, y, v, stack)
        assert np.all(stack[K.stack_size :] == SENTINEL)
        assert_same(float(v[cm.slot_of("out")]), evaluate(fold(e), env, time=t), e)
