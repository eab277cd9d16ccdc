"""The ODE text format: parsing, validation errors with line numbers, and conversion to networks.

References: the vendored identifiability benchmark files and their answer files (which name the
parameters and states), and right-hand sides written out by hand from the files' equations.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scalebridge.errors import ModelError
from scalebridge.model import ReactionNetwork
from scalebridge.model.expr import Call, Expr, evaluate
from scalebridge.model.odetext import OdeModel, parse_ode_text, read_ode_text

DATA = Path(__file__).resolve().parents[1] / "data" / "identifiability"
FILES = sorted(DATA.glob("*.txt"))


def ev(e: Expr, env: dict[str, float], t: float = 0.0) -> float:
    return evaluate(e, env, time=t)


# ---------------------------------------------------------------------------------------------
# The benchmark files
# ---------------------------------------------------------------------------------------------
def test_the_benchmark_files_are_there():
    assert len(FILES) >= 17


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_benchmark_file_matches_its_answer(path):
    m = read_ode_text(path)
    answer = json.loads(path.with_suffix("").with_suffix(".answer.json").read_text())
    # The answer files classify exactly the unknown constant parameters ...
    assert set(m.parameters) == set(answer["parameters"])
    # ... and, where given, the initial conditions of exactly the states.
    if "initial_conditions" in answer:
        assert set(m.states) == set(answer["initial_conditions"])
    assert m.source == str(path)
    assert m.outputs, "every benchmark has an output"
    assert not m.initial, "no benchmark declares known initial conditions"
    assert m.unknown_initial == m.states
    # states, outputs and declared names are disjoint and cover every symbol used
    used = set().union(*(_syms(e) for e in [*m.equations.values(), *m.outputs.values()]))
    assert used <= set(m.symbols)
    net = m.to_network()
    assert isinstance(net, ReactionNetwork)
    assert [s.id for s in net.species] == list(m.states)


def _syms(e: Expr) -> set[str]:
    from scalebridge.model.expr import symbols

    return symbols(e)


EXPECTED_SHAPES = {
    # file: (states, inputs, outputs), read off the files by hand
    "PK1": (("x1", "x2", "x3", "x4"), ("u1",), ("y1", "y2")),
    "C2M_a_u_known_input": (("x1", "x2"), ("u",), ("y1",)),
    "C2M_b_u_unknown_constant": (("x1", "x2"), (), ("y1",)),
    "seir_two_outputs": (("S", "E", "In", "N"), (), ("y1", "y2")),
    "binding_equilibrium": (("z",), ("L",), ("y",)),
    "Ruminal_lipolysis": (("x1", "x2", "x3", "x4", "x5"), (), ("y1", "y2", "y3")),
}


@pytest.mark.parametrize("stem", sorted(EXPECTED_SHAPES))
def test_states_inputs_outputs(stem):
    m = read_ode_text(DATA / f"{stem}.txt")
    states, inputs, outputs = EXPECTED_SHAPES[stem]
    assert m.states == states
    assert m.inputs == inputs
    assert tuple(m.outputs) == outputs
    assert m.unknown_inputs == ()
    assert m.known == {}


def test_equations_evaluate_to_the_hand_written_right_hand_sides():
    m = read_ode_text(DATA / "Ruminal_lipolysis.txt")
    env = {"x1": 0.7, "x2": 1.3, "x3": 0.4, "x4": 2.2, "x5": 0.9, "k2": 0.3, "k3": 1.7, "k4": 0.6}
    x1, x2, x3, x5, k2, k3, k4 = (env[k] for k in ("x1", "x2", "x3", "x5", "k2", "k3", "k4"))
    expected = {
        "x1": -x1 * x5 / (k2 + x1),
        "x2": -k4 * x2 + 2 * x1 * x5 / (3 * k2 + 3 * x1),
        "x3": k4 * x2 / 2 - k4 * x3,
        "x4": k4 * x2 / 2 + k4 * x3 + x1 * x5 / (3 * k2 + 3 * x1),
        "x5": -k3 * x5,
    }
    for s, value in expected.items():
        assert ev(m.equations[s], env) == pytest.approx(value, rel=1e-14)
    assert ev(m.outputs["y2"], env) == pytest.approx(x2 + x3)

    m = read_ode_text(DATA / "cholera_single_output.txt")
    env = dict(mu=0.1, bi=0.2, bw=0.3, a=0.05, xi=0.7, gam=0.4, k=2.0, S=0.8, I=0.1, W=0.3, R=0.1)
    S, I, W, R = env["S"], env["I"], env["W"], env["R"]
    dI = env["bw"] * S * W + env["bi"] * S * I - (env["gam"] + env["mu"]) * I
    assert ev(m.equations["I"], env) == pytest.approx(dI, rel=1e-14)
    dR = env["gam"] * I - (env["mu"] + env["a"]) * R
    assert ev(m.equations["R"], env) == pytest.approx(dR, rel=1e-14)
    assert ev(m.outputs["y"], env) == pytest.approx(env["k"] * I)


# ---------------------------------------------------------------------------------------------
# Format features
# ---------------------------------------------------------------------------------------------
FULL = """\
# a model using every section
parameters: k1, k2, V, x0_tot   # trailing comment
known: a, b = 1/2, c = 2^3
inputs: u
unknown_inputs: w
initial: x2 = 0, x3 = known, x4 = x0_tot * b, x5
dx1/dt = -k1*x1 + u + w
d(x2)/dt = k1*x1 - k2*x2
dx3/dt = a*x2
dx4/dt = -x4
dx5/dt = b ** 2 * x5 - c
y1 = x2 / V
y2 = x1 + x3
"""


def test_every_section():
    m = parse_ode_text(FULL)
    assert m.states == ("x1", "x2", "x3", "x4", "x5")
    assert m.parameters == ("k1", "k2", "V", "x0_tot")
    assert m.known == {"a": None, "b": 0.5, "c": 8.0}
    assert m.inputs == ("u",) and m.unknown_inputs == ("w",)
    assert tuple(m.outputs) == ("y1", "y2")
    assert m.initial["x2"] == 0.0
    assert m.initial["x3"] is None and m.initial["x5"] is None  # known, generic
    assert isinstance(m.initial["x4"], Expr)
    assert ev(m.initial["x4"], {"x0_tot": 3.0, "b": 0.5}) == 1.5
    assert m.unknown_initial == ("x1",)
    env = {"x5": 2.0, "b": 0.5, "c": 8.0}
    assert ev(m.equations["x5"], env) == pytest.approx(0.25 * 2.0 - 8.0)
    assert m.kind_of("w") == "unknown input" and m.kind_of("y1") == "output"


def test_caret_and_double_star_are_both_power():
    a = parse_ode_text("parameters: k\ndx/dt = k*x^2\ny = x")
    b = parse_ode_text("parameters: k\ndx/dt = k*x**2\ny = x")
    assert a.equations == b.equations
    assert ev(a.equations["x"], {"k": 3.0, "x": 2.0}) == 12.0


def test_python_keywords_are_plain_names():
    m = parse_ode_text("parameters: lambda, def\ndclass/dt = -lambda*class + def\nif = class")
    assert m.parameters == ("lambda", "def")
    assert m.states == ("class",)
    assert ev(m.equations["class"], {"lambda": 2.0, "class": 3.0, "def": 1.0}) == -5.0
    assert ev(m.outputs["if"], {"class": 3.0}) == 3.0


def test_t_is_time_unless_declared():
    m = parse_ode_text("parameters: k\ndx/dt = -k*x + sin(t)\ny = x")
    assert m.time_name == "t"
    assert ev(m.equations["x"], {"k": 1.0, "x": 0.0}, t=math.pi / 2) == pytest.approx(1.0)
    m = parse_ode_text("parameters: k, t\ndx/dt = -k*x + t\ny = x*time")
    assert "t" in m.parameters and m.time_name == "time"
    assert ev(m.equations["x"], {"k": 1.0, "x": 0.0, "t": 5.0}, t=99.0) == 5.0
    assert ev(m.outputs["y"], {"x": 2.0}, t=3.0) == 6.0
    # a state named t
    m = parse_ode_text("dt/dt = 1\ny = t")
    assert m.states == ("t",)
    assert ev(m.outputs["y"], {"t": 4.0}, t=0.0) == 4.0


def test_declared_names_shadow_builtin_constants():
    m = parse_ode_text("parameters: pi\ndx/dt = pi*x\ny = x")
    assert ev(m.equations["x"], {"pi": 2.0, "x": 1.0}) == 2.0
    m = parse_ode_text("parameters: k\ndx/dt = pi*x\ny = x")
    assert ev(m.equations["x"], {"x": 1.0}) == pytest.approx(math.pi)


def test_repeated_sections_accumulate():
    m = parse_ode_text("parameters: a\nparameters: b\ndx/dt = -a*x + b\ny = x")
    assert m.parameters == ("a", "b")


def test_round_trip_through_text():
    m = parse_ode_text(FULL, source="full.txt")
    again = parse_ode_text(m.to_text())
    assert again == m
    # time is written back with the model's own time name
    m = parse_ode_text("parameters: t\ndx/dt = t*x + time\ny = x")
    assert parse_ode_text(m.to_text()) == m


def test_direct_construction_is_checked():
    x = parse_ode_text("parameters: k\ndx/dt = -k*x\ny = x")
    assert OdeModel(states=("x",), equations=dict(x.equations), parameters=("k",)) is not None
    with pytest.raises(ModelError, match="unknown symbol 'k'"):
        OdeModel(states=("x",), equations=dict(x.equations))
    with pytest.raises(ModelError, match="not a state"):
        x.replace(initial={"k": 1.0})
    with pytest.raises(ModelError, match="not listed in states"):
        x.replace(equations={**x.equations, "z": x.equations["x"]})
    with pytest.raises(ModelError, match="declared as a state and as a parameter"):
        x.replace(parameters=("k", "x"))


# ---------------------------------------------------------------------------------------------
# to_network
# ---------------------------------------------------------------------------------------------
def test_to_network_structure_and_values():
    m = parse_ode_text(FULL, source="models/full model.txt")
    net = m.to_network({"k1": 2.0, "x1": 1.5, "a": 4.0, "u": 0.25})
    assert net.id == "full_model"
    assert [c.id for c in net.compartments] == ["default"]
    assert net.compartments[0].size == 1.0
    sp = net.species_map
    assert all(s.has_only_substance_units and s.compartment == "default" for s in net.species)
    assert sp["x1"].initial_amount == 1.5  # from values
    assert sp["x2"].initial_amount == 0.0  # from initial:
    assert sp["x3"].initial_amount is None  # known but generic
    assert sp["x4"].initial_amount is None and "x4" in net.initial_assignment_map
    assert {r.variable for r in net.rate_rules} == set(m.states)
    p = net.parameter_map
    assert p["k1"].value == 2.0 and p["k1"].constant
    assert p["k2"].value is None and p["k2"].constant
    assert p["a"].value == 4.0 and p["b"].value == 0.5 and p["b"].constant
    assert p["u"].value == 0.25 and not p["u"].constant
    assert p["w"].value is None and not p["w"].constant
    assert not p["y1"].constant and net.assignment_rule_map["y1"].math == m.outputs["y1"]
    # the network's rate rules evaluate like the model's equations
    env = {"k1": 2.0, "k2": 0.3, "x1": 1.5, "x2": 0.2, "u": 0.25, "w": -0.1}
    for rr in net.rate_rules[:2]:
        assert ev(rr.math, env) == ev(m.equations[rr.variable], env)


def test_to_network_avoids_a_taken_compartment_name():
    m = parse_ode_text("parameters: default\ndx/dt = -default*x\ny = x")
    assert m.to_network().compartments[0].id == "default_"


def test_to_network_rejects_unknown_values():
    m = parse_ode_text("parameters: k\ndx/dt = -k*x\ny = x")
    with pytest.raises(ModelError, match=r"'y'.*output"):
        m.to_network({"y": 1.0})
    with pytest.raises(ModelError, match="'q'"):
        m.to_network({"q": 1.0})


# ---------------------------------------------------------------------------------------------
# Errors: file, line number, element
# ---------------------------------------------------------------------------------------------
ERRORS = [
    ("parameters: k\ndx/dt = -k*x + q\ny = x", 2, "x", "unknown symbol 'q'"),
    ("parameters: k\ndx/dt = -k*x\ny = x + z", 3, "y", "unknown symbol 'z'"),
    ("parameters: k\ndx/dt = -k*x\ny1 = x\ny2 = y1", 4, "y2", "outputs cannot refer"),
    ("parameters: k, k\ndx/dt = -k*x\ny = x", 1, "k", "already declared as a parameter"),
    ("parameters: k\nknown: k\ndx/dt = -k*x\ny = x", 2, "k", "already declared"),
    ("parameters: k\ndx/dt = -k*x\ndx/dt = x\ny = x", 3, "x", "second equation"),
    ("dx/dt = -x\nparameters: x\ny = x", 2, "x", "already declared as a state"),
    ("parameters: k\ndx/dt = -k*x\nx = 2*k", 3, "x", "name of a state"),
    ("parameters: k\ndx/dt = -k*x\nk = 2", 3, "k", "name of a parameter"),
    ("parameters: k\ndx/dt = -k*x\ny = x\ny = 2*x", 4, "y", "defined twice"),
    ("parameters: k\ninitial: k = 1\ndx/dt = -k*x\ny = x", 2, "k", "not a state"),
    ("initial: z = 1\ndx/dt = -x\ny = x", 1, "z", "not a state"),
    ("parameters: k\ninitial: x = u\ninputs: u\ndx/dt = -k*x\ny = x", 2, "x", "input"),
    ("initial: x = 1, x = 2\ndx/dt = -x\ny = x", 1, "x", "second initial condition"),
    ("initial: x = sin(t)\ndx/dt = -x\ny = x", 1, "x", "depends on time"),
    ("parameters: k = 2\ndx/dt = -k*x\ny = x", 1, "k", "names only"),
    ("parameters: a, , b\ndx/dt = -a*x\ny = x", 1, None, "empty entry"),
    ("known: c = k\nparameters: k\ndx/dt = -c*x\ny = x", 1, "c", "constant expression"),
    ("known: c = 1/0\ndx/dt = -c*x\ny = x", 1, "c", "not a finite number"),
    ("parameters: k\ndx/dt = -k*x\nthis line is wrong", 3, None, "cannot read"),
    ("parameters: k\ndx/dt = -k*x\ny == x", 3, None, "cannot read"),
    ("parameters: k\ndx/dt = -k*x +\ny = x", 2, "x", "cannot parse"),
    ("parameters: k\ndx/dt = f(x)\ny = x", 2, "x", "unknown function 'f'"),
    ("parameters: k\ndx/dt = rateOf(x)\ny = x", 2, "x", "rateOf"),
    ("parameters: k\n\n# only a comment\ny = k", None, None, "no state equations"),
]


@pytest.mark.parametrize(("text", "line", "element", "message"), ERRORS)
def test_errors_name_file_line_and_element(text, line, element, message):
    with pytest.raises(ModelError) as ei:
        parse_ode_text(text, source="model.txt")
    err = ei.value
    msg = str(err)
    assert message in msg
    assert msg.startswith("model.txt: ")
    assert err.source == "model.txt"
    if line is not None:
        assert f"line {line}:" in msg
    if element is not None:
        assert err.element == element


def test_injection_attempt_is_a_parse_error_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned"
    text = f"dx/dt = __import__('os').system('touch {target}')\ny = x\n"
    path = tmp_path / "evil.txt"
    path.write_text(text)
    with pytest.raises(ModelError) as ei:
        read_ode_text(path)
    assert "line 1" in str(ei.value) and str(path) in str(ei.value)
    assert not target.exists()
    for attempt in ("dx/dt = x.__class__", "dx/dt = x[0]", "dx/dt = (lambda: 1)()"):
        with pytest.raises(ModelError):
            parse_ode_text(attempt + "\ny = x")
    assert not target.exists()


def test_read_missing_file_names_it(tmp_path):
    with pytest.raises(ModelError, match=r"nope\.txt"):
        read_ode_text(tmp_path / "nope.txt")


def test_time_call_in_parsed_equations_is_the_time_node():
    m = parse_ode_text("dx/dt = t\ny = x")
    assert m.equations["x"] == Call("time")
