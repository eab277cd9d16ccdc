"""SBML event semantics through ``scalebridge.simulate(net, "ode", ...)``.

Small models with exact answers for what the SBML Test Suite cases do not pin down on their own:
delays, persistence, priorities that change while events execute, useValuesFromTriggerTime,
initialValue, triggers that re-arm, compartment resizing (amounts conserved), cascades at one
time, and events that execute exactly at an output time (the output shows post-event values).
References: SBML Level 3 Version 2 Core, section 4.12 (Events).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import scalebridge as sb
from scalebridge.errors import SolverError
from scalebridge.model import (
    Compartment,
    Event,
    EventAssignment,
    Parameter,
    RateRule,
    Reaction,
    ReactionNetwork,
    Species,
    SpeciesRef,
    parse_expr,
)

P = parse_expr


def run(model: str | ReactionNetwork, times: list[float], *names: str, units: str = "model"
        ) -> dict[str, np.ndarray]:  # fmt: skip
    """Values of ``names`` at ``times`` (the first is the initial time), integrated tightly."""
    net = sb.from_antimony(model) if isinstance(model, str) else model
    res = sb.simulate(
        net, "ode", times=times, vars=list(names), units=units, rtol=1e-10, atol=1e-12
    )
    return {n: np.asarray(res[n].values) for n in names}


def test_delay() -> None:
    out = run("x = 0\nE1: at 0.5 after time > 1: x = x + 1", [0, 1.2, 1.45, 1.55, 3], "x")
    assert out["x"].tolist() == [0, 0, 0, 1, 1]


def test_delay_is_evaluated_at_the_trigger_time() -> None:
    # d changes to 10 before E1 executes; E1 was scheduled with d = 0.5 when it fired at t = 1.
    out = run(
        """
        x = 0; d = 0.5
        E1: at d after time > 1: x = 1
        E2: at time > 1.2: d = 10
        """,
        [0, 1.4, 1.6, 20],
        "x",
    )
    assert out["x"].tolist() == [0, 0, 1, 1]


def test_use_values_from_trigger_time() -> None:
    out = run(
        """
        x = 0; x' = 1
        y = 0; z = 0
        Ey: at 1 after time > 1, fromTrigger=true: y = x
        Ez: at 1 after time > 1, fromTrigger=false: z = x
        """,
        [0, 1.9, 2.5],
        "y",
        "z",
    )
    assert out["y"] == pytest.approx([0, 0, 1.0], abs=1e-9)  # x at firing (t = 1)
    assert out["z"] == pytest.approx([0, 0, 2.0], abs=1e-9)  # x at execution (t = 2)


@pytest.mark.parametrize(("persistent", "expected"), [("true", 1.0), ("false", 0.0)])
def test_persistence(persistent: str, expected: float) -> None:
    # The trigger is true on (1, 1.5) only; execution is due at 2.
    out = run(
        f"x = 0\nE1: at 1 after (time > 1 && time < 1.5), persistent={persistent}: x = x + 1",
        [0, 1.9, 2.1, 4],
        "x",
    )
    assert out["x"].tolist() == [0, 0, expected, expected]


@pytest.mark.parametrize(("persistent", "expected"), [("true", 1.0), ("false", 0.0)])
def test_non_persistent_event_cancelled_by_a_simultaneous_event(
    persistent: str, expected: float
) -> None:
    # Both fire at t = 1; E1 (higher priority) executes first and makes E2's trigger false.
    out = run(
        f"""
        flag = 1; x = 0
        E1: at time > 1, priority=2: flag = 0
        E2: at (time > 1 && flag > 0.5), priority=1, persistent={persistent}: x = 1
        """,
        [0, 2],
        "x",
        "flag",
    )
    assert out["flag"].tolist() == [1, 0]
    assert out["x"].tolist() == [0, expected]


@pytest.mark.parametrize(("pa", "pb", "expected"), [(2, 1, 3.0), (1, 2, 4.0)])
def test_priorities_order_simultaneous_events(pa: int, pb: int, expected: float) -> None:
    # Executed in descending priority, values computed at execution: 2*1 + 1 or (1 + 1)*2.
    out = run(
        f"""
        x = 1
        Ea: at time > 1, priority={pa}, fromTrigger=false: x = 2*x
        Eb: at time > 1, priority={pb}, fromTrigger=false: x = x + 1
        """,
        [0, 2],
        "x",
    )
    assert out["x"].tolist() == [1, expected]


def test_values_from_trigger_time_of_simultaneous_events() -> None:
    # Both values are computed when the events fire (x = 1): 2*x = 2 and x + 1 = 2.
    out = run(
        """
        x = 1
        Ea: at time > 1, priority=2: x = 2*x
        Eb: at time > 1, priority=1: x = x + 1
        """,
        [0, 2],
        "x",
    )
    assert out["x"].tolist() == [1, 2]


def test_priority_changes_as_earlier_events_execute() -> None:
    # E1 (priority 5) runs first and sets p = 0, so E3 (1) now runs before E2 (p): x = 3 then
    # 10*3 + 2 = 32.  With priorities frozen at firing E2 (3) would run first: 23.
    out = run(
        """
        p = 3; x = 0
        E1: at time > 1, priority=5: p = 0
        E2: at time > 1, priority=p, fromTrigger=false: x = 10*x + 2
        E3: at time > 1, priority=1, fromTrigger=false: x = 10*x + 3
        """,
        [0, 2],
        "x",
    )
    assert out["x"].tolist() == [0, 32]


def test_initial_value_false_fires_at_t0() -> None:
    out = run(
        """
        x = 0; y = 0
        E1: at time >= 0, t0=false: x = x + 1
        E2: at time >= 0, t0=true: y = y + 1
        """,
        [0, 1],
        "x",
        "y",
    )
    assert out["x"].tolist() == [1, 1]  # fired at t0, shown at t0
    assert out["y"].tolist() == [0, 0]  # true from the start: no transition, never fires


def test_trigger_that_rearms_fires_each_time() -> None:
    # y = sin(pi t / 2) > 0.5 on (1/3, 5/3), (13/3, 17/3), (25/3, 29/3): three rising edges.
    res = sb.simulate(
        sb.from_antimony("x = 0; y = 0\ny' = pi/2*cos(pi*time/2)\nE1: at y > 0.5: x = x + 1"),
        "ode",
        times=[0, 0.3, 0.4, 4.3, 4.4, 8.3, 8.4, 10],
        vars=["x"],
        rtol=1e-8,
    )
    assert res["x"].values.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert res.stats["events"] == 3


def test_time_only_trigger_that_rearms_over_a_long_horizon() -> None:
    res = sb.simulate(
        sb.from_antimony("x = 0\nE1: at sin(pi*time/2) > 0.5: x = x + 1"),
        "ode",
        times=[0, 100],
        vars=["x"],
    )
    assert res["x"].values.tolist() == [0, 25]


def test_compartment_resize_conserves_amounts() -> None:
    net = ReactionNetwork(
        compartments=(Compartment("C", 2.0, constant=False),),
        species=(
            Species("S", "C", initial_concentration=3.0),  # a rate-rule state (concentration)
            Species("T", "C", initial_concentration=1.0),  # fixed amount
            Species("U", "C", initial_amount=5.0, has_only_substance_units=True),
            Species("A", "C", initial_concentration=4.0),  # changed by a reaction
        ),
        parameters=(Parameter("k", 0.0),),
        reactions=(Reaction("r", (SpeciesRef("A"),), rate=P("k*A")),),
        rate_rules=(RateRule("S", P("0")),),
        events=(
            Event("E1", P("time > 1"), (EventAssignment("C", P("4")),)),
            # resize and assign a concentration at once: stored amount = 7 * (new size 8)
            Event(
                "E2", P("time > 2"), (EventAssignment("C", P("8")), EventAssignment("T", P("7")))
            ),
        ),
    )
    t = [0, 1.5, 3]
    conc = run(net, t, "S", "T", "U", "A", "C")
    assert conc["C"].tolist() == [2, 4, 8]
    assert conc["S"] == pytest.approx([3, 1.5, 0.75], rel=1e-12)
    assert conc["T"] == pytest.approx([1, 0.5, 7], rel=1e-12)
    assert conc["A"] == pytest.approx([4, 2, 1], rel=1e-12)
    assert conc["U"].tolist() == [5, 5, 5]  # hasOnlySubstanceUnits: the symbol is the amount
    amount = run(net, t, "S", "T", "U", "A", units="amount")
    assert amount["S"] == pytest.approx([6, 6, 6], rel=1e-12)
    assert amount["T"] == pytest.approx([2, 2, 56], rel=1e-12)
    assert amount["A"] == pytest.approx([8, 8, 8], rel=1e-12)
    assert amount["U"].tolist() == [5, 5, 5]


def test_assigning_a_species_that_reactions_change() -> None:
    # A decays; at t = 1 its concentration is set to 5 in a compartment of size 2.
    net = sb.from_antimony(
        """
        compartment C = 2; species A in C; A = 1; k = 0.3
        J: A -> ; k*A
        E1: at time > 1: A = 5
        """
    )
    # d[A]/dt = -k [A] / C (the rate is in amount per time), so [A] decays at k / C = 0.15.
    out = run(net, [0, 0.5, 2, 4], "A")
    assert out["A"] == pytest.approx(
        [1, math.exp(-0.075), 5 * math.exp(-0.15), 5 * math.exp(-0.45)], rel=1e-8
    )
    amount = run(net, [0, 0.5, 2], "A", units="amount")
    assert amount["A"] == pytest.approx([2, 2 * math.exp(-0.075), 10 * math.exp(-0.15)], rel=1e-8)


def test_cascade_at_one_time() -> None:
    # E1 makes x > 0.5 true, which fires E2 at the same time; E2 makes y > 0 true, firing E3.
    out = run(
        """
        x = 0; y = 0; z = 0
        E1: at time > 1: x = 1
        E2: at x > 0.5: y = time
        E3: at y > 0: z = y + 10*x
        """,
        [0, 0.99, 1.01, 2],
        "x",
        "y",
        "z",
    )
    assert out["x"].tolist() == [0, 0, 1, 1]
    assert out["y"] == pytest.approx([0, 0, 1, 1], abs=1e-12)
    assert out["z"] == pytest.approx([0, 0, 11, 11], abs=1e-12)


def test_execution_exactly_at_an_output_time_shows_post_event_values() -> None:
    # E1 fires at t0 exactly and executes at 1.0; E2 fires then (x jumps) and executes at 1.25.
    out = run(
        """
        x = 0
        E1: at 1 after time >= 0, t0=false: x = x + 1
        E2: at 0.25 after x > 0.5: x = x + 10
        """,
        [0, 0.5, 1.0, 1.25, 2],
        "x",
    )
    assert out["x"].tolist() == [0, 0, 1, 11, 11]


def test_trigger_true_exactly_at_an_output_time() -> None:
    out = run("x = 0\nE1: at time >= 1: x = x + 1", [0, 0.5, 1, 2], "x")
    assert out["x"].tolist() == [0, 0, 1, 1]


def test_negative_delay_is_a_solver_error() -> None:
    with pytest.raises(SolverError, match="negative delay"):
        run("x = 0; d = -1\nE1: at d after time > 1: x = 1", [0, 2], "x")
