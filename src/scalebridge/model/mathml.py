"""Conversion between MathML (libSBML ``ASTNode`` trees) and scalebridge expression trees.

Both directions work node by node; no formula text is parsed or produced on the way.

Reading (:func:`ast_to_expr`) maps the SBML Level 3 Version 2 MathML subset onto the whitelist
:data:`scalebridge.model.expr.OPS`:

==========================================  ===============================================
MathML                                      expression
==========================================  ===============================================
``cn`` integer, real, e-notation, rational  ``Num`` (e-notation ``m<sep/>e`` is read as the
                                            decimal text ``m``\\ e\\ ``e``, so it is exact;
                                            ``p<sep/>q`` is p/q)
``ci``                                      ``Sym`` (a user function in ``apply``: ``FunCall``)
csymbol time / avogadro                     ``Call('time')`` / ``Call('avogadro')``
csymbol rateOf                              ``Call('rateOf', (Sym,))``
pi, exponentiale, true, false               the constants of the same name
infinity, notanumber                        ``Call('inf')``, ``Call('nan')``
plus, times (any number of arguments)       ``add``, ``mul`` (none: 0 and 1 when evaluated;
                                            libSBML stores three or more arguments as a
                                            left-nested chain of binary nodes, read back
                                            as one n-ary node)
minus (one / two arguments)                 ``neg`` / ``sub``
divide, power, rem, quotient, implies       ``div``, ``pow``, ``rem``, ``quotient``, ``implies``
root with degree n (default 2)              ``root(n, x)``
log with logbase b (default 10)             ``log10(x)`` when b is the number 10, else
                                            ``logb(b, x)``
ln, exp, abs, floor, ceiling, factorial,    the function of the same name
trigonometric, hyperbolic and arc functions
piecewise / piece / otherwise               ``piecewise(v1, c1, ..., [otherwise])``; an empty
                                            piecewise is ``Call('nan')``
lt, leq, gt, geq, eq (n-ary)                ``a < b < c`` becomes ``and(a < b, b < c)``; with
                                            fewer than two arguments the relation holds
                                            vacuously (``Call('true')``)
neq (binary)                                ``ne``
and, or, xor (any number), not              ``and``, ``or``, ``xor``, ``not``
min, max (at least one argument)            ``min``, ``max``
==========================================  ===============================================

Everything else is refused (see :func:`_refuse_unsupported` and :meth:`_Reader.convert`) with
:class:`~scalebridge.errors.UnsupportedFeatureError` naming the construct and the element:
the ``delay`` csymbol, ``lambda`` outside a function definition, ``semantics`` annotations,
package functions (``distrib``) and every other MathML element.  ``cn`` units
(``sbml:units``) carry no simulation semantics and are not kept.

Writing (:func:`expr_to_element`, :func:`expr_to_mathml`, :func:`expr_to_ast`) is the inverse.
Numbers are written as ``<cn>`` with :func:`repr` digits (integers below 2**31 as
``type="integer"``), so a value read back is the same double; this is why the SBML writer builds
its own XML rather than using libSBML's writer, which keeps only 15 significant digits.
``sqrt(x)`` is written as ``root`` without a degree (read back as ``root(2, x)``), a nested
``add(add(a, b), c)`` is read back as ``add(a, b, c)`` (likewise ``mul``), and a non-finite
``Num`` as ``infinity`` / ``notanumber`` (read back as the constants); trees read
from MathML are written back to the same trees.
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import libsbml

from ..errors import ModelError, UnsupportedFeatureError
from .expr import Call, Expr, FunCall, Num, Sym

__all__ = [
    "MATHML_NS",
    "ast_to_expr",
    "ast_to_lambda",
    "expr_to_ast",
    "expr_to_element",
    "expr_to_mathml",
]

MATHML_NS = "http://www.w3.org/1998/Math/MathML"
_SYMBOLS = "http://www.sbml.org/sbml/symbols/"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_CONSTANTS: dict[int, str] = {
    libsbml.AST_CONSTANT_PI: "pi",
    libsbml.AST_CONSTANT_E: "exponentiale",
    libsbml.AST_CONSTANT_TRUE: "true",
    libsbml.AST_CONSTANT_FALSE: "false",
    libsbml.AST_NAME_TIME: "time",
    libsbml.AST_NAME_AVOGADRO: "avogadro",
}
_UNARY: dict[int, str] = {
    libsbml.AST_FUNCTION_EXP: "exp",
    libsbml.AST_FUNCTION_LN: "ln",
    libsbml.AST_FUNCTION_ABS: "abs",
    libsbml.AST_FUNCTION_FLOOR: "floor",
    libsbml.AST_FUNCTION_CEILING: "ceiling",
    libsbml.AST_FUNCTION_FACTORIAL: "factorial",
    libsbml.AST_LOGICAL_NOT: "not",
}
_UNARY.update(
    {
        getattr(libsbml, f"AST_FUNCTION_{name.upper()}"): name
        for name in (
            "sin", "cos", "tan", "sec", "csc", "cot", "sinh", "cosh", "tanh", "sech", "csch",
            "coth", "arcsin", "arccos", "arctan", "arcsec", "arccsc", "arccot", "arcsinh",
            "arccosh", "arctanh", "arcsech", "arccsch", "arccoth",
        )
    }
)  # fmt: skip
_NARY: dict[int, str] = {
    libsbml.AST_PLUS: "add",
    libsbml.AST_TIMES: "mul",
    libsbml.AST_LOGICAL_AND: "and",
    libsbml.AST_LOGICAL_OR: "or",
    libsbml.AST_LOGICAL_XOR: "xor",
    libsbml.AST_FUNCTION_MIN: "min",
    libsbml.AST_FUNCTION_MAX: "max",
}
_BINARY: dict[int, str] = {
    libsbml.AST_DIVIDE: "div",
    libsbml.AST_POWER: "pow",
    libsbml.AST_FUNCTION_POWER: "pow",
    libsbml.AST_FUNCTION_REM: "rem",
    libsbml.AST_FUNCTION_QUOTIENT: "quotient",
    libsbml.AST_LOGICAL_IMPLIES: "implies",
}
_RELATIONAL: dict[int, str] = {
    libsbml.AST_RELATIONAL_LT: "lt",
    libsbml.AST_RELATIONAL_LEQ: "le",
    libsbml.AST_RELATIONAL_GT: "gt",
    libsbml.AST_RELATIONAL_GEQ: "ge",
    libsbml.AST_RELATIONAL_EQ: "eq",
    libsbml.AST_RELATIONAL_NEQ: "ne",
}
_AST_NAMES = {getattr(libsbml, k): k[4:].lower() for k in dir(libsbml) if k.startswith("AST_")}
# Valid MathML that scalebridge refuses, with the name used in the error message.
_REFUSED: dict[int, str] = {
    libsbml.AST_FUNCTION_DELAY: "MathML 'delay' csymbol",
    libsbml.AST_LAMBDA: "MathML 'lambda' outside a function definition",
}


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
class _Reader:
    """Converts one math element; ``element`` and ``source`` go into every error."""

    def __init__(self, element: str | None, source: str | None):
        self.element = element
        self.source = source

    def error(self, message: str) -> ModelError:
        where = f" in '{self.element}'" if self.element else ""
        return ModelError(f"{message}{where}", element=self.element, source=self.source)

    def call(self, op: str, args: Sequence[Expr]) -> Expr:
        try:
            return Call(op, tuple(args))
        except ModelError as e:  # wrong number of arguments
            raise self.error(f"MathML: {e}") from None

    def children(self, node: Any) -> list[Expr]:
        return [self.convert(node.getChild(i)) for i in range(node.getNumChildren())]

    def nary_children(self, node: Any) -> list[Expr]:
        """Operands of an n-ary plus or times, which libSBML stores as a left-nested chain of
        binary nodes: read back as one n-ary node (and without deep recursion)."""
        t = node.getType()
        rights = []
        while node.getNumChildren() == 2 and node.getChild(0).getType() == t:
            _refuse_unsupported(node, self.element, self.source)
            rights.append(node.getChild(1))
            node = node.getChild(0)
        _refuse_unsupported(node, self.element, self.source)
        operands = [node.getChild(i) for i in range(node.getNumChildren())]
        return [self.convert(n) for n in (*operands, *reversed(rights))]

    def convert(self, node: Any) -> Expr:
        if node is None:
            raise self.error("missing MathML operand")
        _refuse_unsupported(node, self.element, self.source)
        t = node.getType()
        if t in _CONSTANTS:
            return Call(_CONSTANTS[t])
        if t in (libsbml.AST_INTEGER, libsbml.AST_REAL, libsbml.AST_REAL_E, libsbml.AST_RATIONAL):
            return self.number(node)
        if t == libsbml.AST_NAME:
            return Sym(self.identifier(node.getName()))
        if t == libsbml.AST_FUNCTION:
            return FunCall(self.identifier(node.getName()), tuple(self.children(node)))
        if t in (libsbml.AST_PLUS, libsbml.AST_TIMES):
            return self.call(_NARY[t], self.nary_children(node))
        if t in _UNARY or t in _NARY or t in _BINARY:
            op = _UNARY.get(t) or _NARY.get(t) or _BINARY[t]
            return self.call(op, self.children(node))
        if t in _RELATIONAL:
            return self.relational(_RELATIONAL[t], self.children(node))
        if t == libsbml.AST_MINUS:
            args = self.children(node)
            return self.call("neg" if len(args) == 1 else "sub", args)
        if t == libsbml.AST_FUNCTION_ROOT:
            return self.with_qualifier("root", self.children(node), 2.0)
        if t == libsbml.AST_FUNCTION_LOG:
            return self.with_qualifier("logb", self.children(node), 10.0)
        if t == libsbml.AST_FUNCTION_PIECEWISE:
            args = self.children(node)
            return self.call("piecewise", args) if args else Call("nan")
        if t == libsbml.AST_FUNCTION_RATE_OF:
            args = self.children(node)
            if len(args) != 1 or not isinstance(args[0], Sym):
                raise self.error("MathML rateOf must have exactly one <ci> argument")
            return Call("rateOf", (args[0],))
        raise UnsupportedFeatureError(
            f"MathML construct '{node.getName() or _AST_NAMES.get(t, t)}'",
            element=self.element,
            source=self.source,
        )

    def identifier(self, name: str | None) -> str:
        # The one line of defence for names that reach generated code: plain identifiers only.
        if not name or not _IDENT.match(name):
            raise self.error(f"MathML name {name!r} is not a valid identifier")
        return name

    def number(self, node: Any) -> Expr:
        t = node.getType()
        if t == libsbml.AST_INTEGER:
            return Num(float(node.getInteger()))
        if t == libsbml.AST_RATIONAL:
            den = node.getDenominator()
            if den == 0:
                raise self.error("MathML rational number with denominator 0")
            return Num(node.getNumerator() / den)
        if t == libsbml.AST_REAL_E:
            # m * 10**e in floating point can differ from the decimal m e e; read the decimal.
            value = float(f"{node.getMantissa()!r}e{node.getExponent()}")
        else:
            value = node.getReal()
        if math.isnan(value):
            return Call("nan")
        if math.isinf(value):
            return Call("inf") if value > 0 else Call("neg", (Call("inf"),))
        return Num(value)

    def relational(self, op: str, args: list[Expr]) -> Expr:
        if op == "ne" or len(args) == 2:
            return self.call(op, args)
        if len(args) < 2:  # a chain of fewer than two terms holds vacuously (MathML n-ary)
            return Call("true")
        return Call("and", tuple(Call(op, pair) for pair in itertools.pairwise(args)))

    def with_qualifier(self, op: str, args: list[Expr], default: float) -> Expr:
        # libSBML puts the degree / logbase first (inserting the default when absent).
        if len(args) == 1:
            args = [Num(default), args[0]]
        if len(args) != 2:
            raise self.error(f"MathML {'root' if op == 'root' else 'log'} takes one argument")
        if op == "logb" and args[0] == Num(10.0):
            return Call("log10", (args[1],))
        return Call(op, tuple(args))


def _refuse_unsupported(node: Any, element: str | None, source: str | None) -> None:
    """The MathML constructs scalebridge refuses (checked on every node)."""
    t = node.getType()
    if t in _REFUSED:
        raise UnsupportedFeatureError(_REFUSED[t], element=element, source=source)
    if node.getNumSemanticsAnnotations() > 0:
        raise UnsupportedFeatureError("MathML 'semantics'", element=element, source=source)


def ast_to_expr(node: Any, *, element: str | None = None, source: str | None = None) -> Expr:
    """The expression tree of a libSBML ``ASTNode`` (see the module docstring for the mapping).

    Raises :class:`ModelError` for malformed math (wrong number of arguments, a name that is not
    an identifier) and :class:`UnsupportedFeatureError` for constructs outside the whitelist;
    both name ``element`` and ``source``.
    """
    reader = _Reader(element, source)
    try:
        return reader.convert(node)
    except RecursionError:
        raise reader.error("MathML is nested too deeply") from None


def ast_to_lambda(
    node: Any, *, element: str | None = None, source: str | None = None
) -> tuple[tuple[str, ...], Expr]:
    """``(argument names, body)`` of the ``lambda`` of a function definition."""
    reader = _Reader(element, source)
    if node is None or node.getType() != libsbml.AST_LAMBDA:
        raise reader.error("function definition math is not a <lambda>")
    if node.getNumSemanticsAnnotations() > 0:
        raise UnsupportedFeatureError("MathML 'semantics'", element=element, source=source)
    n_args = node.getNumBvars()
    if node.getNumChildren() != n_args + 1:
        raise reader.error("function definition <lambda> has no body")
    args = []
    for i in range(n_args):
        bvar = node.getChild(i)
        if bvar.getType() != libsbml.AST_NAME:
            raise reader.error("function definition argument is not a <ci>")
        args.append(reader.identifier(bvar.getName()))
    return tuple(args), reader.convert(node.getChild(n_args))


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
_TAG = {
    "add": "plus", "mul": "times", "sub": "minus", "neg": "minus", "div": "divide",
    "pow": "power", "le": "leq", "ge": "geq", "ne": "neq", "log10": "log", "logb": "log",
    "root": "root", "sqrt": "root",
}  # fmt: skip
_EMPTY = {
    "pi": "pi",
    "exponentiale": "exponentiale",
    "true": "true",
    "false": "false",
    "inf": "infinity",
    "nan": "notanumber",
}
_CSYMBOLS = ("time", "avogadro")
_MAX_INTEGER = 2**31  # libSBML reads type="integer" into a C long; keep to 32 bits


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _number(parent: ET.Element, v: float) -> None:
    if math.isnan(v):
        _sub(parent, "notanumber")
        return
    if math.isinf(v):
        if v > 0:
            _sub(parent, "infinity")
        else:
            app = _sub(parent, "apply")
            _sub(app, "minus")
            _sub(app, "infinity")
        return
    if v == int(v) and abs(v) < _MAX_INTEGER:
        _sub(parent, "cn", str(int(v))).set("type", "integer")
        return
    # repr() is the shortest text that reads back as the same double.  libSBML reads <cn> with
    # a correctly rounded conversion but not the mantissa of type="e-notation", so never use it.
    _sub(parent, "cn", repr(v))


def _csymbol(parent: ET.Element, name: str) -> None:
    cs = _sub(parent, "csymbol", name)
    cs.set("encoding", "text")
    cs.set("definitionURL", _SYMBOLS + name)


def _write(parent: ET.Element, e: Expr) -> None:
    if isinstance(e, Num):
        _number(parent, e.value)
    elif isinstance(e, Sym):
        _sub(parent, "ci", e.name)
    elif isinstance(e, FunCall):
        app = _sub(parent, "apply")
        _sub(app, "ci", e.name)
        for a in e.args:
            _write(app, a)
    elif isinstance(e, Call):
        _write_call(parent, e)
    else:
        raise ModelError(f"cannot write {type(e).__name__} as MathML")


def _write_call(parent: ET.Element, e: Call) -> None:
    op, args = e.op, e.args
    if op in _EMPTY:
        _sub(parent, _EMPTY[op])
        return
    if op in _CSYMBOLS:
        _csymbol(parent, op)
        return
    if op == "piecewise":
        pw = _sub(parent, "piecewise")
        for i in range(0, len(args) - 1, 2):
            piece = _sub(pw, "piece")
            _write(piece, args[i])
            _write(piece, args[i + 1])
        if len(args) % 2 == 1:
            _write(_sub(pw, "otherwise"), args[-1])
        return
    app = _sub(parent, "apply")
    if op == "rateOf":
        _csymbol(app, "rateOf")
    else:
        _sub(app, _TAG.get(op, op))
    if op in ("root", "logb"):
        _write(_sub(app, "degree" if op == "root" else "logbase"), args[0])
        args = args[1:]
    for a in args:
        _write(app, a)


def expr_to_element(e: Expr, *, args: Sequence[str] | None = None) -> ET.Element:
    """A ``<math>`` element (MathML namespace) for ``e``; with ``args``, the ``lambda`` of a
    function definition ``args -> e``."""
    root = ET.Element("math", {"xmlns": MATHML_NS})
    if args is None:
        _write(root, e)
        return root
    lam = _sub(root, "lambda")
    for a in args:
        _sub(_sub(lam, "bvar"), "ci", a)
    _write(lam, e)
    return root


def expr_to_mathml(e: Expr, *, args: Sequence[str] | None = None) -> str:
    """MathML text ``<math xmlns="...">...</math>`` of ``e`` (see :func:`expr_to_element`)."""
    return ET.tostring(expr_to_element(e, args=args), encoding="unicode")


def expr_to_ast(e: Expr, *, args: Sequence[str] | None = None) -> Any:
    """A libSBML ``ASTNode`` for ``e``, read by libSBML from :func:`expr_to_mathml` (exact)."""
    node = libsbml.readMathMLFromString(expr_to_mathml(e, args=args))
    if node is None:
        raise ModelError(f"libSBML could not read the MathML written for {e!r}")
    return node
