"""Grids, fields, masks, boundary conditions and model validation (errors that name the side,
species or symbol at fault)."""

from __future__ import annotations

import numpy as np
import pytest

from scalebridge.errors import ModelError
from scalebridge.space import (
    BoundaryConditions,
    Dirichlet,
    Field,
    Flux,
    Grid,
    Neumann,
    Periodic,
    ReactionDiffusion,
    Robin,
    condition_from_spec,
)
from scalebridge.space.boundary import face_coefficients


def test_box_geometry() -> None:
    g = Grid.box((2.0, 1.0), (4, 5), origin=(-1.0, 0.5))
    assert g.shape == (4, 5) and g.ndim == 2 and g.axes == ("x", "y")
    assert g.spacing == (0.5, 0.2)
    np.testing.assert_allclose(g.coordinate("x"), [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(g.faces(1), [0.5, 0.7, 0.9, 1.1, 1.3, 1.5])
    x, y = g.centres()
    assert x.shape == (4, 5) and x[2, 3] == 0.25 and np.isclose(y[2, 3], 1.2)
    assert np.isclose(g.cell_volume, 0.1) and np.isclose(g.volume, 2.0)
    g3 = Grid((3, 4, 5), 0.1)
    assert g3.spacing == (0.1, 0.1, 0.1) and g3.lengths == pytest.approx((0.3, 0.4, 0.5))


def test_mask_from_function_and_integrals() -> None:
    g = Grid.box((1.0, 1.0), (10, 10), mask=lambda x, y: x < 0.5)
    assert g.n_active == 50
    assert np.isclose(g.volume, 0.5)
    f = Field("c", g, 2.0)
    assert np.isclose(f.total(), 1.0)  # inactive cells do not count
    da = f.to_xarray()
    assert np.isnan(da.values[9, 0]) and da.values[0, 0] == 2.0
    # an all-active mask is dropped
    assert Grid.box(1.0, 4, mask=np.ones(4, dtype=bool)).mask is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (0, 3), "spacing": 1.0}, "positive integers"),
        ({"shape": (2, 2, 2, 2), "spacing": 1.0}, "1, 2 or 3 axes"),
        ({"shape": (3,), "spacing": -1.0}, "spacing must be positive"),
        ({"shape": (3, 2), "spacing": (1.0,)}, "spacing needs 2 entries"),
        ({"shape": (3,), "spacing": 1.0, "mask": np.ones(4, bool)}, "mask has shape"),
        ({"shape": (3,), "spacing": 1.0, "mask": np.zeros(3, bool)}, "no active cell"),
    ],
)
def test_grid_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        Grid(**kwargs)


def test_field_shape_error_names_the_field() -> None:
    with pytest.raises(ModelError, match="'rho' has shape"):
        Field("rho", Grid.box(1.0, 5), np.ones(4))


def test_boundary_defaults_aliases_and_axis_keys() -> None:
    g = Grid.box((1.0, 1.0), (4, 3))
    bc = BoundaryConditions(g, {"left": Dirichlet(1.0), "y": Periodic(), "*": Flux(0.5)})
    assert isinstance(bc["x-"], Dirichlet) and bc["x-"].value == 1.0
    assert isinstance(bc["x+"], Flux)
    assert bc.periodic(1) and not bc.periodic(0)
    assert isinstance(BoundaryConditions(g)["y+"], Neumann)
    assert condition_from_spec({"dirichlet": 2.0}).value == 2.0  # type: ignore[attr-defined]
    assert isinstance(condition_from_spec("periodic"), Periodic)
    r = condition_from_spec({"type": "robin", "a": 1, "b": 2, "g": 3})
    assert isinstance(r, Robin) and (r.a, r.b, r.g) == (1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            {"w-": Dirichlet(1.0)},
            r"side 'w-' does not exist on a 2-D grid \(sides: x-, x\+, y-, y\+\)",
        ),
        ({"x-": Periodic()}, r"side 'x-' is periodic but side 'x\+' is neumann"),
        ({"y+": Robin(-1.0, 1.0)}, r"side 'y\+': Robin .* needs a >= 0"),
        (
            {"y-": Dirichlet(np.ones(3))},
            r"side 'y-': dirichlet value has shape \(3,\), the side has \(4,\)",
        ),
        ({"x": Dirichlet(1.0), "x+": Neumann()}, r"side 'x\+' is given twice"),
        ({"x-": "sticky"}, r"side 'x-': unknown boundary condition 'sticky'"),
        ({"x-": {"robin": {"a": 1}}}, r"side 'x-': robin condition needs 'b'"),
    ],
)
def test_boundary_errors_name_the_side(spec: dict, match: str) -> None:
    g = Grid.box((1.0, 1.0), (4, 3))
    with pytest.raises(ModelError, match=match):
        BoundaryConditions(g, spec, species="u")


def test_periodic_axis_needs_three_cells() -> None:
    with pytest.raises(ModelError, match="periodic axis 'x' needs at least 3 cells"):
        BoundaryConditions(Grid.box(1.0, 2), {"x": Periodic()})


def test_face_coefficients_reduce_to_each_other() -> None:
    # influx p - q c_P; Robin(1, 0, g) is Dirichlet(g); Robin(0, 1, g) is Neumann(g)
    D, h, c = np.array([0.7, 1.3]), 0.1, np.array([0.4, 2.0])
    pd, qd = face_coefficients(Dirichlet(1.5), D, h)
    np.testing.assert_allclose(pd - qd * c, 2 * D / h * (1.5 - c))
    pr, qr = face_coefficients(Robin(1.0, 0.0, 1.5), D, h)
    np.testing.assert_allclose(pr - qr * c, pd - qd * c)
    pn, qn = face_coefficients(Neumann(0.3), D, h)
    np.testing.assert_allclose(pn - qn * c, D * 0.3)
    pr, qr = face_coefficients(Robin(0.0, 1.0, 0.3), D, h)
    np.testing.assert_allclose(pr - qr * c, D * 0.3)
    pf, qf = face_coefficients(Flux(0.25), D, h)
    np.testing.assert_allclose(pf - qf * c, 0.25)
    # mass transfer -D dc/dn = kappa (c - c_out): Robin(kappa, D, kappa c_out), face value
    # c_f = (g + 2b/h c_P)/(a + 2b/h), influx = -(outward flux) = kappa (c_out - c_f)
    kappa, cout = 3.0, 0.5
    pr, qr = face_coefficients(Robin(kappa, D, kappa * cout), D, h)
    cf = (kappa * cout + 2 * D / h * c) / (kappa + 2 * D / h)
    np.testing.assert_allclose(pr - qr * c, kappa * (cout - cf))


def _grid2() -> Grid:
    return Grid.box((1.0, 1.0), (4, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"diffusivity": {"u": 1.0}, "reactions": {"u": "-q*u"}},
            "unknown symbol 'q' in the reaction term of 'u'",
        ),
        (
            {"diffusivity": {"u": 1.0}, "reactions": {"v": "1"}},
            "reaction term for unknown species 'v'",
        ),
        ({"diffusivity": {"x": 1.0}}, "'x' is reserved"),
        ({"diffusivity": {"u": -1.0}}, "diffusivity of 'u' must be finite and >= 0"),
        ({"diffusivity": {"u": np.ones(3)}}, r"diffusivity of 'u' has shape \(3,\)"),
        ({"diffusivity": {"u": 1.0}, "parameters": {"k": 1.0}}, "parameter 'k' is used by no"),
        ({"diffusivity": {"u": 1.0}, "reactions": {"u": "u*("}}, "cannot parse"),
        ({"diffusivity": {"u": 1.0}, "reactions": {"u": "f(u)"}}, "unknown function 'f'"),
        (
            {"diffusivity": {"u": 1.0}, "boundary": {"u": {"q+": Dirichlet(1)}}},
            "species 'u', boundary side 'q\\+'",
        ),
        (
            {"diffusivity": {"u": 1.0}, "boundary": {"v": Dirichlet(1)}},
            "boundary key 'v' is neither",
        ),
        ({"diffusivity": {"u": "1 + w"}}, "unknown symbol 'w' in the diffusivity of 'u'"),
    ],
)
def test_model_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        ReactionDiffusion(_grid2(), **kwargs)


def test_model_fields_from_text_and_per_species_boundaries() -> None:
    g = _grid2()
    m = ReactionDiffusion(
        g, {"u": "1 + a*x", "v": 0.0}, reactions={"v": "u - v"}, parameters={"a": 2.0},
        boundary={"x-": Dirichlet(1.0), "v": {"left": Neumann()}},
    )  # fmt: skip
    x, _ = g.centres()
    np.testing.assert_allclose(m.diffusivities[0], 1 + 2 * x)
    assert m.species == ("u", "v")
    assert isinstance(m.conditions("u")["x-"], Dirichlet)
    assert isinstance(m.conditions("v")["x-"], Neumann)


def test_time_in_a_diffusivity_or_parameter_is_refused() -> None:
    # these are evaluated once; a time dependence would be frozen at t = 0 without a word
    from scalebridge.errors import UnsupportedFeatureError
    from scalebridge.space import Grid, ReactionDiffusion

    grid = Grid.box(1.0, 10)
    with pytest.raises(UnsupportedFeatureError, match="diffusivity of 'c'"):
        ReactionDiffusion(grid, {"c": "0.1*(1 + time)"})
    with pytest.raises(UnsupportedFeatureError, match="value of 'k'"):
        ReactionDiffusion(grid, {"c": 0.1}, parameters={"k": "1 + time"}, reactions={"c": "-k*c"})
