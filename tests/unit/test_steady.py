"""Steady states against closed-form solutions, conservation laws and stability theory."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

import scalebridge as sb
from scalebridge.errors import UnsupportedFeatureError
from scalebridge.wellmixed.steady import steady_state


def test_birth_death_steady_state_is_k_over_gamma() -> None:
    net = sb.from_antimony(
        "model m\n species X = 3\n J1: -> X; k\n J2: X -> ; g*X\n k = 7; g = 0.35\nend"
    )
    ss = steady_state(net)
    assert ss.values["X"] == pytest.approx(7 / 0.35, rel=1e-10)
    assert ss.stable
    assert ss.eigenvalues.real == pytest.approx([-0.35], rel=1e-12)
    assert ss.method == "newton"


def test_reversible_conversion_respects_the_conservation_law() -> None:
    # A <-> B with A + B = T: A* = T kr / (kf + kr); the Jacobian alone is singular.
    net = sb.from_antimony(
        "model m\n compartment c = 2\n species A in c = 3, B in c = 1\n"
        " J: A -> B; c*(kf*A - kr*B)\n kf = 0.4; kr = 0.1\nend"
    )
    ss = steady_state(net)
    total = 3 + 1  # concentrations, same compartment
    assert ss.values["A"] == pytest.approx(total * 0.1 / 0.5, rel=1e-10)
    assert ss.values["B"] == pytest.approx(total * 0.4 / 0.5, rel=1e-10)
    assert ss.conservation_laws == ["A + B"]
    # one eigenvalue on the surface A + B = T: -(kf + kr)
    assert ss.eigenvalues.real == pytest.approx([-0.5], rel=1e-10)


def test_enzyme_binding_equilibrium_has_two_conservation_laws() -> None:
    # E + S <-> ES with E + ES = Et, S + ES = St: ES solves kf (Et - x)(St - x) = kr x.
    net = sb.from_antimony(
        "model m\n species E = 2, S = 5, ES = 0\n J: E + S -> ES; kf*E*S - kr*ES\n"
        " kf = 1.3; kr = 0.7\nend"
    )
    ss = steady_state(net)
    x = brentq(lambda x: 1.3 * (2 - x) * (5 - x) - 0.7 * x, 0, 2)
    assert ss.values["ES"] == pytest.approx(x, rel=1e-10)
    assert ss.values["E"] == pytest.approx(2 - x, rel=1e-10)
    assert ss.values["S"] == pytest.approx(5 - x, rel=1e-10)
    assert len(ss.conservation_laws) == 2
    assert ss.stable


def test_autorepressor_fixed_point() -> None:
    net = sb.load(_data("gene_feedback.ant"))
    ss = steady_state(net)
    km, gm, kp, gp, K, n = 2.0, 0.2, 1.0, 0.05, 20.0, 4.0
    p = brentq(lambda p: p - (kp / gp) * (km / gm) / (1 + (p / K) ** n), 0, 1e3)
    assert ss.values["P"] == pytest.approx(p, rel=1e-9)
    assert ss.stable
    # the demo's damped overshoot: complex pair on the fixed point
    assert np.any(np.abs(ss.eigenvalues.imag) > 0)


def test_unstable_steady_state_is_flagged() -> None:
    # dx/dt = x(x - 1)(2 - x) from x0 = 0.99: Newton lands on x* = 1, which is unstable.
    net = sb.from_antimony("model m\n species x = 0.99\n J: -> x; x*(x - 1)*(2 - x)\nend")
    ss = steady_state(net)
    assert ss.values["x"] == pytest.approx(1.0, abs=1e-10)
    assert not ss.stable
    assert ss.eigenvalues.real == pytest.approx([1.0], rel=1e-8)


def test_simulation_fallback_when_newton_cannot_start() -> None:
    # dx/dt = 1 - x^2 from x0 = 0: the Jacobian -2x is singular at the start, so Newton cannot
    # take a step; integrating forward reaches the stable root x* = 1 and Newton polishes it.
    net = sb.from_antimony("model m\n species x = 0\n J: -> x; 1 - x*x\nend")
    ss = steady_state(net)
    assert ss.method == "simulation+newton"
    assert ss.simulated_time > 0
    assert ss.values["x"] == pytest.approx(1.0, rel=1e-10)
    assert ss.stable


def test_newton_alone_finds_the_nearest_root_of_a_bistable_switch() -> None:
    # dx/dt = a x^2/(1 + x^2) - b x + s has three roots for these values; from a start near the
    # low root Newton returns it, and it is stable.
    net = sb.from_antimony(
        "model m\n species x = 1e-9, y = 0\n J1: -> x; a*x*x/(1 + x*x) - b*x + s\n"
        " J2: -> y; 1e-3*(x - y)\n a = 3; b = 1; s = 0.01\nend"
    )
    ss = steady_state(net)
    f = lambda x: 3 * x * x / (1 + x * x) - x + 0.01  # noqa: E731
    x_low = brentq(f, 0.0, 0.2)
    assert ss.values["x"] == pytest.approx(x_low, rel=1e-8)
    assert ss.values["y"] == pytest.approx(x_low, rel=1e-8)
    assert ss.stable


def test_models_with_events_or_time_are_refused() -> None:
    net = sb.from_antimony("model m\n species x = 1\n J: x -> ; x\n E: at (time > 1): x = 2\nend")
    with pytest.raises(UnsupportedFeatureError, match="events"):
        steady_state(net)
    net = sb.from_antimony("model m\n species x = 1\n J: x -> ; x*sin(time)\nend")
    with pytest.raises(UnsupportedFeatureError, match="time"):
        steady_state(net)


def _data(name: str) -> str:
    from importlib.resources import files

    return str(files("scalebridge") / "data" / name)
