"""The whitelist infix parser (scalebridge.model.parse).

References: the usual mathematical conventions (``-x^2 = -(x^2)``, ``^`` right-associative,
``-`` and ``/`` left-associative, comparisons looser than arithmetic, ``&&`` tighter than ``||``),
checked by value as well as by tree; the function and constant names of SBML's L3 infix syntax;
and the round trip ``parse_expr(to_infix(e)) == e`` on seeded random trees.
"""

from __future__ import annotations

import math
import random
import re

import pytest

from scalebridge.errors import ModelError
from scalebridge.model.expr import Call, FunCall, Num, Sym, evaluate, to_infix
from scalebridge.model.parse import parse_expr, parse_number

from .test_expr import TREE_NAMES, random_tree, same_value

x, y, z = Sym("x"), Sym("y"), Sym("z")


def value(text: str, time: float = 0.0, **env: float) -> float:
    return evaluate(parse_expr(text), env, time=time)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-2^2", -4.0),
        ("2^-1", 0.5),
        ("2^3^2", 512.0),  # 2^(3^2), not (2^3)^2 = 64
        ("2**3**2", 512.0),
        ("(2^3)^2", 64.0),
        ("-2^-2", -0.25),
        ("2^-3^2", 2.0**-9),
        ("10-4-3", 3.0),  # (10-4)-3
        ("64/8/2", 4.0),  # (64/8)/2
        ("2*3/4*5", 7.5),
        ("1-2+3", 2.0),
        ("1+2*3^2", 19.0),
        ("-3*2", -6.0),
        ("2*-3", -6.0),
        ("- -3", 3.0),
        ("+-+3", -3.0),
        ("1 + (2 < 3)", 2.0),
        ("1 < 2 && 3 < 2 || 1", 1.0),  # (1<2 && 3<2) || 1
        ("0 && 1 || 1", 1.0),
        ("1 || 1 && 0", 1.0),  # || looser than &&: 1 || (1 && 0)
        ("!0 && !1", 0.0),
        ("!(1 > 2)", 1.0),
        ("2 >= 2", 1.0),
        ("2 != 2", 0.0),
        ("3 <= 2", 0.0),
    ],
)
def test_precedence_by_value(text: str, expected: float) -> None:
    assert value(text) == expected


def test_precedence_by_tree() -> None:
    assert parse_expr("-x^2") == Call("neg", (Call("pow", (x, Num(2.0))),))
    assert parse_expr("x-y-z") == Call("sub", (Call("sub", (x, y)), z))
    assert parse_expr("x/y/z") == Call("div", (Call("div", (x, y)), z))
    assert parse_expr("x^y^z") == Call("pow", (x, Call("pow", (y, z))))
    assert parse_expr("x + y + z") == Call("add", (x, y, z))
    assert parse_expr("x * y * z") == Call("mul", (x, y, z))
    assert parse_expr("x + y - z") == Call("sub", (Call("add", (x, y)), z))
    assert parse_expr("x - y + z") == Call("add", (Call("sub", (x, y)), z))
    assert parse_expr("x < y && y < z || !x") == Call(
        "or",
        (Call("and", (Call("lt", (x, y)), Call("lt", (y, z)))), Call("not", (x,))),
    )
    assert parse_expr("-2") == Num(-2.0)
    assert parse_expr("-x") == Call("neg", (x,))


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("log(x)", Call("ln", (x,))),
        ("ln(x)", Call("ln", (x,))),
        ("log(2, x)", Call("logb", (Num(2.0), x))),  # base first, as in SBML's L3 syntax
        ("log2(x)", Call("logb", (Num(2.0), x))),
        ("log10(x)", Call("log10", (x,))),
        ("ceil(x)", Call("ceiling", (x,))),
        ("ceiling(x)", Call("ceiling", (x,))),
        ("asin(x)", Call("arcsin", (x,))),
        ("acos(x)", Call("arccos", (x,))),
        ("atan(x)", Call("arctan", (x,))),
        ("asinh(x)", Call("arcsinh", (x,))),
        ("acoth(x)", Call("arccoth", (x,))),
        ("power(x, y)", Call("pow", (x, y))),
        ("pow(x, y)", Call("pow", (x, y))),
        ("root(3, x)", Call("root", (Num(3.0), x))),
        ("geq(x, y)", Call("ge", (x, y))),
        ("neq(x, y)", Call("ne", (x, y))),
        ("leq(x, y)", Call("le", (x, y))),
        ("and(x, y, z)", Call("and", (x, y, z))),
        ("xor(x)", Call("xor", (x,))),
        ("min(x, y, z)", Call("min", (x, y, z))),
        ("piecewise(x, y > 0, z)", Call("piecewise", (x, Call("gt", (y, Num(0.0))), z))),
        ("rateOf(x)", Call("rateOf", (x,))),
        ("myfun(x, 2)", FunCall("myfun", (x, Num(2.0)))),
        ("nofun()", FunCall("nofun", ())),
    ],
)
def test_functions_and_aliases(text: str, tree: object) -> None:
    assert parse_expr(text) == tree


def test_function_values() -> None:
    assert value("log(8)") == math.log(8.0)
    assert value("log(2, 8)") == pytest.approx(3.0, rel=1e-15)
    assert value("log2(1024)") == pytest.approx(10.0, rel=1e-15)
    assert value("ceil(-1.5)") == -1.0
    assert value("asin(1)") == math.pi / 2


def test_constants_time_and_shadowing() -> None:
    for name, op in (("pi", "pi"), ("exponentiale", "exponentiale"), ("avogadro", "avogadro"),
                     ("true", "true"), ("false", "false"), ("INF", "inf"), ("inf", "inf"),
                     ("infinity", "inf"), ("NaN", "nan"), ("notanumber", "nan")):  # fmt: skip
        assert parse_expr(name) == Call(op), name
        assert parse_expr(name, shadow={name}) == Sym(name)
    assert value("pi") == math.pi
    assert parse_expr("time") == Call("time")
    assert parse_expr("t") == Sym("t")
    assert parse_expr("t + time", time_names=("t",)) == Call("add", (Call("time"), Sym("time")))
    assert parse_expr("t", time_names=("t",), shadow={"t"}) == Sym("t")
    assert value("2*time", time=1.5) == 3.0
    # A model function shadows a built-in function of the same name, aliases included.
    assert parse_expr("sin(x)", shadow={"sin"}) == FunCall("sin", (x,))
    assert parse_expr("ceil(x)", shadow={"ceil"}) == FunCall("ceil", (x,))
    assert parse_expr("ceil(x)", shadow={"ceiling"}) == Call("ceiling", (x,))


@pytest.mark.parametrize(
    ("text", "v"),
    [(".5", 0.5), ("5.", 5.0), ("1e-3", 1e-3), ("1E+3", 1e3), ("2.5e2", 250.0), ("007", 7.0),
     ("1.e2", 100.0), ("0.000", 0.0), ("1e308", 1e308), ("  42  ", 42.0)],
)  # fmt: skip
def test_numbers(text: str, v: float) -> None:
    assert parse_expr(text) == Num(v)


KEYWORDS = ["lambda", "if", "def", "class", "import", "None", "True", "not", "is", "in", "yield",
            "_x1", "__init__", "print", "eval"]  # fmt: skip


@pytest.mark.parametrize("name", KEYWORDS)
def test_python_keywords_and_builtins_are_plain_names(name: str) -> None:
    assert parse_expr(name) == Sym(name)
    assert parse_expr(f"2*{name}") == Call("mul", (Num(2.0), Sym(name)))


@pytest.mark.parametrize(
    ("text", "column", "why"),
    [
        ("'a'", 1, "unexpected character"),
        ('x + "y"', 5, "unexpected character"),
        ("a.b", 2, "unexpected character '.'"),
        ("a[0]", 2, "unexpected character '\\['"),
        ("a = 1", 3, "unexpected character '='"),
        ("a=1", 2, "unexpected character '='"),
        ("__import__('os')", 12, "unexpected character"),
        ("lambda x: x", 9, "unexpected character ':'"),
        ("lambda: 1", 7, "unexpected character ':'"),
        ("a $ b", 3, "unexpected character '\\$'"),
        ("a; b", 2, "unexpected character ';'"),
        ("a @ b", 3, "unexpected character '@'"),
        ("a & b", 3, "unexpected character '&'"),
        ("(a", 3, "expected '\\)'"),
        ("a)", 2, "unexpected '\\)'"),
        ("((a)", 5, "expected '\\)'"),
        ("f(a,", 5, "unexpected 'end of text'"),
        ("", 1, "empty expression"),
        ("   ", 1, "empty expression"),
        ("a < b < c", 7, "chained comparison"),
        ("a == b != c", 8, "chained comparison"),
        ("sin(a, b)", 1, "sin takes 1 arguments, got 2"),
        ("exp()", 1, "exp takes 1 arguments, got 0"),
        ("log(a, b, c)", 1, "log takes 1 or 2 arguments"),
        ("log2(a, b)", 1, "log2 takes 1 argument"),
        ("root(a)", 1, "root takes 2 arguments"),
        ("min()", 1, "min takes 1\\+ arguments"),
        ("piecewise()", 1, "piecewise takes 1\\+ arguments"),
        ("rateOf(2*x)", 1, "rateOf takes one symbol"),
        ("a b", 3, "unexpected 'b'"),
        ("1 2", 3, "unexpected '2'"),
        ("2x", 2, "unexpected 'x'"),
        ("1e", 2, "unexpected 'e'"),
        ("a ! b", 3, "unexpected '!'"),
        ("a <> b", 4, "unexpected '>'"),
        ("x +", 4, "unexpected 'end of text'"),
        ("*x", 1, "unexpected '\\*'"),
        ("a,b", 2, "unexpected ','"),
        ("()", 2, "unexpected '\\)'"),
        ("x ^", 4, "unexpected 'end of text'"),
    ],
)
def test_rejections_name_the_column(text: str, column: int, why: str) -> None:
    with pytest.raises(ModelError) as ei:
        parse_expr(text, element="r7", source="model.xml")
    msg = str(ei.value)
    assert f"at column {column}:" in msg, msg
    assert re.search(why, msg), msg
    assert ei.value.element == "r7" and ei.value.source == "model.xml"
    assert "model.xml" in msg and "r7" in msg


def test_deep_nesting_is_a_model_error() -> None:
    text = "(" * 2000 + "x" + ")" * 2000
    with pytest.raises(ModelError, match="nested too deeply"):
        parse_expr(text)
    assert parse_expr("(" * 50 + "x" + ")" * 50) == x


def test_non_text_is_refused() -> None:
    with pytest.raises(ModelError, match="expected text"):
        parse_expr(3.0)  # type: ignore[arg-type]


def test_parse_number() -> None:
    assert parse_number("2.5") == 2.5
    assert parse_number("-1e-3") == -1e-3
    for bad in ("nan", "1+1", "x", ""):
        with pytest.raises(ModelError, match="not a number"):
            parse_number(bad, element="k")


def test_round_trip_of_random_trees() -> None:
    """``to_infix`` then ``parse_expr`` gives back the same tree (hence the same value)."""
    rng = random.Random(2024)
    shadow = set(TREE_NAMES)
    for _ in range(3000):
        e = random_tree(rng, rng.randint(1, 6))
        text = to_infix(e)
        back = parse_expr(text, shadow=shadow)
        assert back == e, f"{e!r}\n{text}\n{back!r}"
        env = {n: rng.choice((-1.5, 0.0, 0.5, 2.0, 3.0)) for n in TREE_NAMES}
        assert same_value(evaluate(back, env, time=0.3), evaluate(e, env, time=0.3))


@pytest.mark.parametrize(
    "tree",
    [
        Call("add", (x, Call("sub", (y, z)))),  # x + (y - z), not (x + y) - z
        Call("add", (Call("add", (x, y)), z)),  # a nested sum stays nested
        Call("mul", (x, Call("div", (y, z)))),
        Call("mul", (Call("mul", (x, y)), z)),
        Call("sub", (x, Call("sub", (y, z)))),
        Call("div", (x, Call("mul", (y, z)))),
        Call("pow", (Call("pow", (x, y)), z)),
        Call("pow", (Call("neg", (x,)), Num(2.0))),
        Call("neg", (Call("pow", (x, Num(2.0))),)),
        Call("pow", (Num(-2.0), x)),
        Call("pow", (x, Num(-0.5))),
        Call("lt", (Call("lt", (x, y)), z)),
        Call("and", (Call("and", (x, y)), z)),
        Call("or", (Call("and", (x, y)), Call("or", (y, z)))),
        Call("not", (Call("and", (x, y)),)),
        Call("mul", (Num(2.0), Call("neg", (x,)))),
        Call("sub", (x, Num(-3.0))),
        Call("logb", (Num(10.0), x)),
        Call("add", (Num(1e-300), Num(2.5e16), Num(0.1))),
    ],
)
def test_round_trip_of_tricky_trees(tree: Call) -> None:
    assert parse_expr(to_infix(tree)) == tree, to_infix(tree)
