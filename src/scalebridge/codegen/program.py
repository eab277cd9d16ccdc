"""Expression trees -> stack-machine bytecode for :mod:`scalebridge.codegen.vm`.

Only validated trees are compiled; symbols are resolved to value-array slots by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import UnsupportedFeatureError
from ..model.expr import CONSTANT_VALUES, Call, Expr, FunCall, Num, Sym
from . import vm

_BINARY = {"sub": vm.OP_SUB, "div": vm.OP_DIV, "pow": vm.OP_POW}
_REL = {"lt": vm.OP_LT, "le": vm.OP_LE, "gt": vm.OP_GT, "ge": vm.OP_GE, "eq": vm.OP_EQ,
        "ne": vm.OP_NE}  # fmt: skip
_NARY = {"and": vm.OP_AND, "or": vm.OP_OR, "xor": vm.OP_XOR, "min": vm.OP_MIN,
         "max": vm.OP_MAX, "piecewise": vm.OP_PIECEWISE}  # fmt: skip


class Assembler:
    """Accumulates bytecode and a constant pool; tracks the stack depth needed."""

    def __init__(self) -> None:
        self.code: list[int] = []
        self.consts: list[float] = []
        self._const_index: dict[object, int] = {}
        self.max_depth = 0
        self._depth = 0

    def _push(self, n: int = 1) -> None:
        self._depth += n
        self.max_depth = max(self.max_depth, self._depth)

    def _pop(self, n: int = 1) -> None:
        self._depth -= n

    def pos(self) -> int:
        return len(self.code)

    def const(self, value: float) -> None:
        v = float(value)
        key: object = (v, math.copysign(1.0, v)) if v == v else "nan"
        k = self._const_index.get(key)
        if k is None:
            k = len(self.consts)
            self.consts.append(v)
            self._const_index[key] = k
        self.code += [vm.OP_CONST, k]
        self._push()

    def load(self, slot: int) -> None:
        self.code += [vm.OP_LOAD, slot]
        self._push()

    def store(self, slot: int) -> None:
        self.code += [vm.OP_STORE, slot]
        self._pop()

    def expr(self, e: Expr, slot_of: Callable[[str], int]) -> None:
        """Emit code that pushes the value of ``e``."""
        if isinstance(e, Num):
            self.const(e.value)
            return
        if isinstance(e, Sym):
            self.load(slot_of(e.name))
            return
        if isinstance(e, FunCall):
            raise UnsupportedFeatureError(
                "user function call in compiled code", detail=f"'{e.name}' was not expanded"
            )
        assert isinstance(e, Call)
        op, args = e.op, e.args
        if op == "time":
            self.load(vm.SLOT_TIME)
        elif op in CONSTANT_VALUES:
            self.const(CONSTANT_VALUES[op])
        elif op in ("add", "mul"):
            if not args:
                self.const(0.0 if op == "add" else 1.0)
                return
            binop = vm.OP_ADD if op == "add" else vm.OP_MUL
            first, rest = args[0], args[1:]
            if op == "mul" and isinstance(first, Sym) and rest and isinstance(rest[0], Sym):
                self.code += [vm.OP_LOADMUL, slot_of(first.name), slot_of(rest[0].name)]
                self._push()
                rest = rest[1:]
            else:
                self.expr(first, slot_of)
            for a in rest:
                if op == "mul" and isinstance(a, Sym):
                    self.code += [vm.OP_MULLOAD, slot_of(a.name)]
                else:
                    self.expr(a, slot_of)
                    self.code.append(binop)
                    self._pop()
        elif op in _BINARY:
            self.expr(args[0], slot_of)
            self.expr(args[1], slot_of)
            self.code.append(_BINARY[op])
            self._pop()
        elif op == "neg":
            self.expr(args[0], slot_of)
            self.code.append(vm.OP_NEG)
        elif op in vm.UNARY_CODES:
            self.expr(args[0], slot_of)
            self.code += [vm.OP_FUNC1, vm.UNARY_CODES[op]]
        elif op in vm.BINARY_CODES:
            self.expr(args[0], slot_of)
            self.expr(args[1], slot_of)
            self.code += [vm.OP_FUNC2, vm.BINARY_CODES[op]]
            self._pop()
        elif op in _REL:
            self.expr(args[0], slot_of)
            self.expr(args[1], slot_of)
            self.code.append(_REL[op])
            self._pop()
        elif op == "not":
            self.expr(args[0], slot_of)
            self.code.append(vm.OP_NOT)
        elif op == "implies":
            # a => b  ==  (not a) or b
            self.expr(Call("or", (Call("not", (args[0],)), args[1])), slot_of)
        elif op in _NARY:
            if not args:
                self.const(1.0 if op == "and" else 0.0)
                return
            for a in args:
                self.expr(a, slot_of)
            self.code += [_NARY[op], len(args)]
            self._pop(len(args) - 1)
        elif op == "rateOf":
            raise UnsupportedFeatureError("rateOf", detail="not resolved before compilation")
        else:
            raise UnsupportedFeatureError(f"operation '{op}' in compiled code")

    def assign(self, e: Expr, slot: int, slot_of: Callable[[str], int]) -> None:
        """Emit ``v[slot] = e``."""
        self.expr(e, slot_of)
        self.store(slot)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.code, dtype=np.int32), np.asarray(self.consts, dtype=np.float64)
