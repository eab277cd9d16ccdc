"""Generate the PEtab problems of the receptor-ligand binding seed example (run by hand, not by
the tests; the tests recompute the analytic values independently).

Model (one state, the complex C; the free receptor is Rtot - C; the ligand L is held constant
within an experiment and set per condition)::

    dC/dt = kon*L*(Rtot - C) - koff*C,      C(0) = 0

With constant L the solution is the relaxation to the equilibrium occupancy

    C(t)  = Ceq(L) (1 - exp(-(kon*L + koff) t)),     Ceq(L) = Rtot*L/(L + KD),  KD = koff/kon.

Problems (all parameters on log10 scale, nominal values = the generating values):

* ``binding_equilibrium.yaml`` -- dataset ``equilibrium``: C after t = 1e4 (at equilibrium to
  machine precision for every parameter in the bounds: the slowest rate is
  kon*L + koff >= 4e-3, exp(-40) ~ 4e-18) at eight ligand levels, three replicates each.
* ``binding_kinetic.yaml`` -- the same plus dataset ``kinetic``: time courses of C at three
  ligand levels.
* ``binding_cross_scale.yaml`` -- dataset ``cell``: a cell-scale readout y1 = s*C (time
  courses at three ligand levels; s is a readout scale of the measurement, a parameter of the
  observable, not of the model), and dataset ``molecular``: y2 = Rtot measured directly
  (a receptor-count assay, four replicates).

Bounds are chosen so that the directions the data do not see span the whole box: the
equilibrium data fix only KD = koff/kon, and the bounds of koff are KD times those of kon;
the cell data fix only Rtot*s, and the bounds of s are (Rtot*s) divided by those of Rtot.
Otherwise the bound of one parameter would cut the flat profile of its partner and give a
finite interval made by the bound, not by the data.

Noise: Gaussian, absolute, with the standard deviations in the observable tables; seed 20240601.
Run ``python make_data.py`` in this directory to rewrite every file.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence

import numpy as np

TRUE = {"kon": 0.5, "koff": 0.2, "Rtot": 10.0, "s": 3.0}
KD = TRUE["koff"] / TRUE["kon"]
SEED = 20240601
T_EQ = 1.0e4
EQ_LEVELS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)
EQ_REPLICATES = 3
KIN_LEVELS = (0.2, 1.0, 5.0)
KIN_TIMES = (0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0)
SIGMA = {"C_obs": 0.2, "y1": 0.5, "y2": 0.5}
MOLECULAR_REPLICATES = 4
BOUNDS = {
    "kon": (1e-2, 1e2),
    "koff": (KD * 1e-2, KD * 1e2),
    "Rtot": (1e-1, 1e3),
    "s": (TRUE["Rtot"] * TRUE["s"] / 1e3, TRUE["Rtot"] * TRUE["s"] / 1e-1),
}

ANTIMONY = """
model binding
  compartment cell = 1;
  species C in cell;
  bind: -> C; kon*L*(Rtot - C);
  unbind: C -> ; koff*C;
  C = 0;
  kon = 0.5;
  koff = 0.2;
  Rtot = 10;
  L = 1;
  C is "ligand-receptor complex";
end
"""


def complex_at(t: float, lig: float, p: dict[str, float]) -> float:
    """The analytic C(t) from C(0) = 0 at constant ligand ``lig``."""
    k = p["kon"] * lig + p["koff"]
    ceq = p["Rtot"] * p["kon"] * lig / k
    return ceq * -math.expm1(-k * t)


def _tsv(path: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    lines = ["\t".join(header)]
    for r in rows:
        lines.append("\t".join(_cell(v) for v in r))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def _cell(v: object) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _yaml(path: str, name: str) -> None:
    text = (
        "format_version: 1\n"
        f"parameter_file: parameters_{name}.tsv\n"
        "problems:\n"
        "- sbml_files:\n"
        "  - binding.xml\n"
        f"  condition_files:\n  - conditions_{name}.tsv\n"
        f"  measurement_files:\n  - measurements_{name}.tsv\n"
        f"  observable_files:\n  - observables_{name}.tsv\n"
    )
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _parameters(path: str, ids: Sequence[str]) -> None:
    rows = [(p, p, "log10", BOUNDS[p][0], BOUNDS[p][1], TRUE[p], 1) for p in ids]
    _tsv(
        path,
        [
            "parameterId",
            "parameterName",
            "parameterScale",
            "lowerBound",
            "upperBound",
            "nominalValue",
            "estimate",
        ],
        rows,
    )


def main(directory: str) -> None:
    sys.path.insert(0, os.path.join(directory, "..", "..", "..", ".."))
    import scalebridge as sb
    from scalebridge.model.sbml import write_sbml

    rng = np.random.default_rng(SEED)
    write_sbml(sb.from_antimony(ANTIMONY), os.path.join(directory, "binding.xml"))

    eq_conds = [(f"eq_{i + 1}", lig) for i, lig in enumerate(EQ_LEVELS)]
    kin_conds = [(f"kin_{i + 1}", lig) for i, lig in enumerate(KIN_LEVELS)]
    cond_header = ["conditionId", "conditionName", "L"]

    def cond_rows(conds: Sequence[tuple[str, float]]) -> list[tuple[object, ...]]:
        return [(c, f"L = {lig:g}", lig) for c, lig in conds]

    meas_header = [
        "observableId",
        "simulationConditionId",
        "measurement",
        "time",
        "datasetId",
    ]
    obs_header = [
        "observableId",
        "observableName",
        "observableFormula",
        "noiseFormula",
        "observableTransformation",
        "noiseDistribution",
    ]
    c_obs = ("C_obs", "bound receptor", "C", SIGMA["C_obs"], "lin", "normal")

    def noisy(obs: str, value: float) -> float:
        return round(value + SIGMA[obs] * float(rng.standard_normal()), 6)

    eq_rows = [
        ("C_obs", c, noisy("C_obs", complex_at(T_EQ, lig, TRUE)), T_EQ, "equilibrium")
        for c, lig in eq_conds
        for _ in range(EQ_REPLICATES)
    ]
    kin_rows = [
        ("C_obs", c, noisy("C_obs", complex_at(t, lig, TRUE)), t, "kinetic")
        for c, lig in kin_conds
        for t in KIN_TIMES
    ]
    cell_rows = [
        ("y1", c, noisy("y1", TRUE["s"] * complex_at(t, lig, TRUE)), t, "cell")
        for c, lig in kin_conds
        for t in KIN_TIMES
    ]
    mol_rows = [
        ("y2", "assay", noisy("y2", TRUE["Rtot"]), 0.0, "molecular")
        for _ in range(MOLECULAR_REPLICATES)
    ]

    d = directory
    # equilibrium
    _tsv(os.path.join(d, "conditions_equilibrium.tsv"), cond_header, cond_rows(eq_conds))
    _tsv(os.path.join(d, "observables_equilibrium.tsv"), obs_header, [c_obs])
    _tsv(os.path.join(d, "measurements_equilibrium.tsv"), meas_header, eq_rows)
    _parameters(os.path.join(d, "parameters_equilibrium.tsv"), ["kon", "koff", "Rtot"])
    _yaml(os.path.join(d, "binding_equilibrium.yaml"), "equilibrium")
    # kinetic (equilibrium + time courses)
    _tsv(
        os.path.join(d, "conditions_kinetic.tsv"),
        cond_header,
        cond_rows([*eq_conds, *kin_conds]),
    )
    _tsv(os.path.join(d, "observables_kinetic.tsv"), obs_header, [c_obs])
    _tsv(os.path.join(d, "measurements_kinetic.tsv"), meas_header, [*eq_rows, *kin_rows])
    _parameters(os.path.join(d, "parameters_kinetic.tsv"), ["kon", "koff", "Rtot"])
    _yaml(os.path.join(d, "binding_kinetic.yaml"), "kinetic")
    # cross-scale (cell readout + molecular receptor assay)
    _tsv(
        os.path.join(d, "conditions_cross_scale.tsv"),
        cond_header,
        [*cond_rows(kin_conds), ("assay", "receptor assay (no ligand)", 0.0)],
    )
    _tsv(
        os.path.join(d, "observables_cross_scale.tsv"),
        obs_header,
        [
            ("y1", "cell-scale readout", "s*C", SIGMA["y1"], "lin", "normal"),
            ("y2", "receptor total (molecular assay)", "Rtot", SIGMA["y2"], "lin", "normal"),
        ],
    )
    _tsv(os.path.join(d, "measurements_cross_scale.tsv"), meas_header, [*cell_rows, *mol_rows])
    _parameters(os.path.join(d, "parameters_cross_scale.tsv"), ["kon", "koff", "Rtot", "s"])
    _yaml(os.path.join(d, "binding_cross_scale.yaml"), "cross_scale")


if __name__ == "__main__":
    main(os.path.dirname(os.path.abspath(__file__)))
