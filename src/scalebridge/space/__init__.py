"""Tissue-scale fields: grids, boundary conditions and reaction-diffusion solvers.

* :class:`Grid` (uniform Cartesian, 1-3-D, optional mask for an irregular domain) and
  :class:`Field` (named values at cell centres);
* boundary conditions per side: :class:`Dirichlet`, :class:`Neumann`, :class:`Flux`,
  :class:`Robin`, :class:`Periodic`, collected and validated by :class:`BoundaryConditions`;
* :class:`ReactionDiffusion`, the model (grid, species, diffusivities -- scalar or field --,
  local reaction terms as expressions and/or a reaction network, boundary conditions,
  parameters), discretised by conservative finite volumes (:func:`discretize`);
* :func:`solve` with the methods ``explicit``, ``backward-euler``, ``crank-nicolson``, ``imex``
  (``euler``, ``sbdf2``, ``linearized``) and ``adi``, and :func:`steady_state`;
* :func:`homogenize`: the effective diffusion tensor of a periodic microstructure from its cell
  problem, with convergence studies and the classical bounds and formulas to compare with;
* YAML tissue scenarios (:func:`load_scenario`, :func:`run_scenario`; ``scalebridge run``).
"""

from .boundary import (
    BoundaryConditions,
    Dirichlet,
    Flux,
    Neumann,
    Periodic,
    Robin,
    condition_from_spec,
)
from .grid import Field, Grid
from .homogenize import (
    ConvergenceReport,
    HomogenizationResult,
    checkerboard,
    convergence_study,
    hashin_shtrikman_bounds,
    homogenize,
    inclusion_array,
    inclusion_function,
    keller_dykhne,
    layered,
    maxwell_garnett,
    rayleigh_closed_form,
    rayleigh_square_array,
    sample_microstructure,
    upsample,
    wiener_bounds,
)
from .problem import Discretization, ReactionDiffusion, discretize
from .scenario import Scenario, ScenarioReport, load_scenario, run_scenario
from .steady import SteadyField, steady_state
from .stepping import (
    ADI,
    IMEX,
    METHODS,
    BackwardEuler,
    CrankNicolson,
    ExplicitEuler,
    SpaceMethod,
    explicit_limit,
    get_space_method,
    solve,
    step_states,
)

__all__ = [
    "ADI",
    "IMEX",
    "METHODS",
    "BackwardEuler",
    "BoundaryConditions",
    "ConvergenceReport",
    "CrankNicolson",
    "Dirichlet",
    "Discretization",
    "ExplicitEuler",
    "Field",
    "Flux",
    "Grid",
    "HomogenizationResult",
    "Neumann",
    "Periodic",
    "ReactionDiffusion",
    "Robin",
    "Scenario",
    "ScenarioReport",
    "SpaceMethod",
    "SteadyField",
    "checkerboard",
    "condition_from_spec",
    "convergence_study",
    "discretize",
    "explicit_limit",
    "get_space_method",
    "hashin_shtrikman_bounds",
    "homogenize",
    "inclusion_array",
    "inclusion_function",
    "keller_dykhne",
    "layered",
    "load_scenario",
    "maxwell_garnett",
    "rayleigh_closed_form",
    "rayleigh_square_array",
    "run_scenario",
    "sample_microstructure",
    "solve",
    "steady_state",
    "step_states",
    "upsample",
    "wiener_bounds",
]
