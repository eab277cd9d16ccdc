"""PEtab objective and gradient benchmark: scalebridge beside libRoadRunner and finite differences.

For every PEtab benchmark model in ``tests/data/petab-benchmark`` (one process, same work):

1. **objective**: one evaluation of the negative log-likelihood at the nominal parameters,
   ``PetabProblem.evaluate(x)`` (every (preequilibration, simulation) condition simulated to the
   measurement times, observables, noise and likelihood), median of repeats after a warm-up.
2. **libRoadRunner, same conditions**: the SBML model loaded once; per condition
   ``resetAll()``, then the nominal parameter-table values and the condition table's values
   set as current values, and every species set to its initial value under that condition
   (computed beforehand, outside the timed call: setting ``init(...)`` values makes
   libRoadRunner regenerate code, ~40 ms each), for a preequilibration first the
   preequilibration condition's values and ``steadyState()`` (then the simulation
   condition's parameters and re-set species), and
   ``simulate(times=...)`` at the same output times (0 and the distinct measurement times),
   with CVODE at the problem's tolerances (rtol 1e-10, atol 1e-12).  Only simulation: no
   observables or likelihood, which favours libRoadRunner.
3. **gradient**: ``PetabGradient(pb).gradient(x)`` (forward sensitivities), median of repeats.
4. **central finite differences**: ``2 n`` objective evaluations at ``x +- h e_i``, timed as
   one call (this is what an optimizer would pay without sensitivities).

Targets (issue 6): objective <= 2x libRoadRunner; gradient <= 0.5x the central-difference
gradient.  Timings interleave the calls (``_common.time_interleaved``) so that machine load
affects all alike.

Run ``.venv/bin/python benchmarks/petab.py [--quick] [--models a,b] [--json FILE]``.  The
last lines are the targets, one per line, ``target <name>: measured <value> <unit>; goal <op>
<value>; met|missed``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from _common import REPO, Target, environment, fmt, save_json, table, time_interleaved

# This file's name shadows the ``petab`` package for imports from its folder (the first entry
# of sys.path when run as a script): drop the folder now that ``_common`` is imported.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from scalebridge.errors import ScalebridgeError  # noqa: E402

DATA = REPO / "tests" / "data" / "petab-benchmark"
OBJECTIVE_GOAL = 2.0
GRADIENT_GOAL = 0.5


def models() -> list[str]:
    return sorted(d.name for d in DATA.iterdir() if d.is_dir() and (d / f"{d.name}.yaml").exists())


class RoadRunnerConditions:
    """libRoadRunner simulating every condition of a PEtab problem (see the module docstring)."""

    def __init__(self, pb: Any):
        import roadrunner

        self.pb = pb
        sbml = next(Path(pb.source).parent.glob("model_*.xml"))
        self.rr = roadrunner.RoadRunner(str(sbml))
        integ = self.rr.getIntegrator()
        integ.relative_tolerance = pb.rtol
        integ.absolute_tolerance = pb.atol
        integ.maximum_num_steps = 1_000_000
        self.pars = pb.parameter_values(pb.x_nominal)
        self.base = pb._model_parameter_values(self.pars)
        self.groups = pb._plan()
        sm = pb.network.species_map
        self.names = pb._output_names()
        self.selections = ["time"] + [
            (n if sm[n].has_only_substance_units else f"[{n}]") if n in sm else n
            for n in self.names
        ]
        self.starts = self._starts()

    def _now_key(self, k: str) -> str:
        s = self.pb.network.species_map.get(k)
        if s is None or s.has_only_substance_units:
            return k
        return f"[{k}]"

    def _starts(self) -> list[tuple[dict[str, float], dict[str, float]]]:
        """Per group: (parameter values, species values at t = 0) to set before simulating.

        Setting ``init(...)`` values through ``setValue`` makes libRoadRunner regenerate its
        initial-value code (~40 ms per value here), which would dominate its time.  Instead the
        current values are set: parameters as the condition gives them, and every species at
        its initial value under that condition (initial assignments evaluated beforehand, by
        scalebridge, outside the timed call) -- less work than libRoadRunner would otherwise do.
        """
        pb = self.pb
        net = pb.network
        species = [s.id for s in net.species]
        ruled = {r.variable for r in net.assignment_rules} | {r.variable for r in net.rate_rules}
        species = [sid for sid in species if sid not in ruled]
        out = []
        for g in self.groups:
            first = g.preeq if g.preeq is not None else g.condition
            p_c, _ = pb._condition_values(first, self.pars)
            params = {k: v for k, v in {**self.base, **p_c}.items() if net.kind_of(k) != "species"}
            init = pb._simulate_condition(None, first, np.array([0.0]), self.pars, species)
            out.append((params, {k: float(v[0]) for k, v in init.items()}))
        return out

    def _start(self, params: dict[str, float], species: dict[str, float]) -> None:
        rr = self.rr
        rr.resetAll()
        for k, v in params.items():
            rr.setValue(k, v)
        for k, v in species.items():
            rr.setValue(self._now_key(k), v)

    def run(self) -> list[np.ndarray]:
        out = []
        rr, pb = self.rr, self.pb
        for g, (params, species) in zip(self.groups, self.starts, strict=True):
            self._start(params, species)
            if g.preeq is not None:
                rr.steadyState()
                p_sim, s_sim = pb._condition_values(g.condition, self.pars)
                for k, v in {**self.base, **p_sim}.items():
                    if pb.network.kind_of(k) != "species":
                        rr.setValue(k, v)
                for k, v in s_sim.items():
                    rr.setValue(self._now_key(k), v)
            out.append(np.asarray(rr.simulate(times=g.grid, selections=self.selections)))
        return out


def measure(name: str, quick: bool) -> dict[str, Any]:
    from scalebridge.infer.petab_gradient import PetabGradient
    from scalebridge.infer.petab_problem import load_petab

    pb = load_petab(DATA / name / f"{name}.yaml")
    x = pb.x_nominal
    n = len(x)
    r: dict[str, Any] = {"name": name, "parameters": n, "conditions": len(pb._plan())}
    r["measurements"] = len(pb.problem.measurement_df)
    h = 1e-4

    def fd(step: float = h, prob: Any = pb) -> np.ndarray:
        out = np.zeros(n)
        for i in range(n):
            e = np.zeros(n)
            e[i] = step
            out[i] = (prob.evaluate(x + e).nllh - prob.evaluate(x - e).nllh) / (2 * step)
        return out

    fns: dict[str, Any] = {"objective": lambda: pb.evaluate(x)}
    try:
        rrc = RoadRunnerConditions(pb)
        sims = rrc.run()
        # the same trajectories: compare with scalebridge's simulation of the first condition
        g0 = rrc.groups[0]
        ours = pb._simulate_condition(g0.preeq, g0.condition, g0.grid, rrc.pars, rrc.names)
        theirs = sims[0][:, 1:]
        ref = np.stack([ours[k] for k in rrc.names], axis=1)
        r["rr_max_rel_diff"] = float(
            np.max(np.abs(theirs - ref) / (np.abs(ref) + 1e-6)) if ref.size else 0.0
        )
        fns["roadrunner"] = rrc.run
    except (RuntimeError, ValueError, StopIteration) as exc:
        r["rr_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    try:
        grad = PetabGradient(pb)
        _, g = grad.gradient(x)
        fns["gradient"] = lambda: grad.gradient(x)
        # accuracy reference: central differences at h and 2h, Richardson-extrapolated (the
        # plain difference at h = 1e-4 is off by ~1e-3 where third derivatives are ~1e5: Zheng)
        # (at rtol 1e-12, as in tests/validation/test_petab_gradient.py)
        fine = load_petab(DATA / name / f"{name}.yaml", rtol=1e-12, atol=1e-14)
        g_fd = (4.0 * fd(h, fine) - fd(2 * h, fine)) / 3.0
        r["gradient_vs_fd"] = float(
            np.max(np.abs(g - g_fd) / (1e-3 * np.abs(g_fd) + 1e-3 * np.abs(g_fd).max()))
        )
    except ScalebridgeError as exc:
        r["gradient_error"] = str(exc)
    timings = time_interleaved(fns, min_rounds=3 if quick else 7, budget_s=0.5 if quick else 3.0)
    r.update({k: t.as_dict() for k, t in timings.items()})
    if "gradient" in fns:
        fd_t = time_interleaved(
            {"fd": fd}, min_rounds=1 if quick else 3, max_rounds=5, budget_s=0.5 if quick else 2.0
        )["fd"]
        r["fd"] = fd_t.as_dict()
    return r


def ms(x: float) -> str:
    return fmt(1e3 * x)


def print_model(r: dict[str, Any]) -> None:
    print(
        f"\n== {r['name']}: {r['parameters']} estimated parameters, {r['conditions']} "
        f"condition(s), {r['measurements']} measurements =="
    )
    rows = [["objective evaluation (ms)", ms(r["objective"]["median_s"]), ""]]
    if "roadrunner" in r:
        ratio = r["objective"]["median_s"] / r["roadrunner"]["median_s"]
        rows.append(
            [
                "libRoadRunner, same conditions (ms)",
                ms(r["roadrunner"]["median_s"]),
                f"objective/rr {fmt(ratio)}",
            ]
        )
    else:
        rows.append(["libRoadRunner, same conditions", "n/a", r.get("rr_error", "")])
    if "gradient" in r:
        ratio = r["gradient"]["median_s"] / r["fd"]["median_s"]
        rows.append(["sensitivity gradient (ms)", ms(r["gradient"]["median_s"]), ""])
        rows.append(
            [
                f"central differences, {2 * r['parameters']} evaluations (ms)",
                ms(r["fd"]["median_s"]),
                f"gradient/fd {fmt(ratio)}",
            ]
        )
    else:
        rows.append(["sensitivity gradient", "n/a", r.get("gradient_error", "")])
    print(table(["per call", "median", "ratio"], rows))
    if "rr_max_rel_diff" in r:
        print(
            f"  first condition: max relative difference scalebridge vs libRoadRunner "
            f"{fmt(r['rr_max_rel_diff'])}"
        )
    if "gradient_vs_fd" in r:
        print(
            "  gradient vs extrapolated central differences (h=1e-4, 2e-4): "
            "worst |g-fd| / (1e-3 |fd| + 1e-3 max|fd|) "
            f"{fmt(r['gradient_vs_fd'])} (<= 1: within the test's criterion)"
        )


def targets(results: Sequence[dict[str, Any]]) -> list[Target]:
    out = []
    for r in results:
        if "error" in r:
            continue
        if "roadrunner" in r:
            out.append(
                Target(
                    f"petab objective {r['name']} vs libRoadRunner",
                    r["objective"]["median_s"] / r["roadrunner"]["median_s"],
                    "x",
                    "<=",
                    OBJECTIVE_GOAL,
                )
            )
        if "gradient" in r:
            out.append(
                Target(
                    f"petab gradient {r['name']} vs central differences",
                    r["gradient"]["median_s"] / r["fd"]["median_s"],
                    "x",
                    "<=",
                    GRADIENT_GOAL,
                )
            )
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    ap.add_argument("--models", help="comma-separated model names (default: all)")
    ap.add_argument("--json", help="write the measurements to this JSON file")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = models()
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in names]
        if unknown:
            print(f"unknown model(s): {', '.join(unknown)}; choose from {', '.join(names)}")
            return 2
        names = wanted
    env = environment(["scalebridge", "libroadrunner", "numba", "numpy", "petab"])
    t_run = time.perf_counter()
    print("PEtab benchmark: objective and gradient, beside libRoadRunner and finite differences")
    print(
        f"  {env['platform']}, {env['cpus']} CPUs, load average {env['load_average']}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    )
    print("  tolerances rtol=1e-10, atol=1e-12 for every simulation (the problems' defaults)")
    results: list[dict[str, Any]] = []
    for name in names:
        try:
            r = measure(name, args.quick)
        except (ScalebridgeError, RuntimeError) as exc:
            print(f"\n== {name}: FAILED: {exc}")
            results.append({"name": name, "error": str(exc)})
            continue
        results.append(r)
        print_model(r)
    tg = targets(results)
    print(f"\n(total {fmt(time.perf_counter() - t_run)} s)")
    for t in tg:
        print(t.line())
    if args.json:
        save_json(args.json, {"environment": env, "results": results,
                              "targets": [t.as_dict() for t in tg]})  # fmt: skip
    return 0 if all(t.met for t in tg) and math.isfinite(len(tg)) else 1


if __name__ == "__main__":
    sys.exit(main())
