"""Unit tests of the periodic cell problem (scalebridge.space.homogenize).

Every expected value is mathematics: exact laminate means, invariances of the cell problem
(scaling, translation, permutation of the axes), the discrete Wiener bounds and symmetry that
the finite-volume scheme satisfies exactly, closed forms of the lattice sums, and the limits of
Rayleigh's series.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import gamma

from scalebridge.errors import ModelError, OptionError
from scalebridge.space import cell_problem as cp
from scalebridge.space.homogenize import (
    checkerboard,
    checkerboard_order,
    convergence_study,
    hashin_shtrikman_bounds,
    homogenize,
    inclusion_array,
    keller_dykhne,
    layered,
    maxwell_garnett,
    observed_order,
    rayleigh_closed_form,
    rayleigh_square_array,
    richardson,
    sample_microstructure,
    square_lattice_sum,
    upsample,
    wiener_bounds,
)

# --- exact cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["direct", "cg"])
@pytest.mark.parametrize("shape", [(8, 8), (5, 7), (6, 4, 5), (1, 9)])
def test_homogeneous_medium_is_exact(method, shape):
    res = homogenize(np.full(shape, 2.5), method=method)
    np.testing.assert_allclose(res.tensor, 2.5 * np.eye(len(shape)), rtol=0, atol=1e-13)
    assert res.volume_fractions == {2.5: 1.0}


@pytest.mark.parametrize("method", ["direct", "cg"])
@pytest.mark.parametrize("axis", [0, 1])
def test_layers_2d_harmonic_across_arithmetic_along(method, axis):
    rng = np.random.default_rng(3)
    values = 10.0 ** rng.uniform(-3, 1, size=6)  # contrast up to 1e4
    thickness = rng.integers(1, 6, size=6)
    n = int(thickness.sum())
    shape = (n, 11) if axis == 0 else (11, n)
    D = layered(values, thickness, shape, axis=axis)
    res = homogenize(D, method=method, tol=1e-12)
    w = thickness / n
    harmonic = 1.0 / np.sum(w / values)
    arithmetic = float(np.sum(w * values))
    other = 1 - axis
    assert res.tensor[axis, axis] == pytest.approx(harmonic, rel=1e-10)
    assert res.tensor[other, other] == pytest.approx(arithmetic, rel=1e-10)
    assert abs(res.tensor[0, 1]) <= 1e-12 * arithmetic
    # The Wiener bounds are attained: the laminate is the extremal microstructure.
    assert res.harmonic_mean == pytest.approx(harmonic, rel=1e-13)
    assert res.arithmetic_mean == pytest.approx(arithmetic, rel=1e-13)


@pytest.mark.parametrize("method", ["direct", "cg"])
def test_layers_3d_and_anisotropic_cell(method):
    values, thickness = [1.0, 1e-3, 0.3, 5.0], [2, 3, 1, 4]
    D = layered(values, thickness, (6, 5, 10), axis=2)
    sizes = (2.0, 0.7, 3.0)  # pixel widths differ per axis; layers stay exact
    res = homogenize(D, cell_size=sizes, method=method, tol=1e-12)
    w = np.array(thickness) / 10
    harmonic = 1.0 / np.sum(w / np.array(values))
    arithmetic = float(np.sum(w * np.array(values)))
    np.testing.assert_allclose(
        np.diag(res.tensor), [arithmetic, arithmetic, harmonic], rtol=1e-10, atol=0
    )
    off = res.tensor - np.diag(np.diag(res.tensor))
    assert np.max(np.abs(off)) <= 1e-12 * arithmetic


def test_upsampling_keeps_laminate_exact_and_sampling_uses_pixel_centres():
    D = layered([1.0, 50.0], [1, 2], (3, 2), axis=0)
    fine = upsample(D, 4)
    assert fine.shape == (12, 8)
    res = homogenize(fine)
    assert res.tensor[0, 0] == pytest.approx(1 / (1 / 3 + 2 / 150), rel=1e-12)
    # y < 1/3 at the centres (i + 1/2)/12 for i = 0..3 only
    sampled = sample_microstructure(lambda x, y: np.where(x < 1 / 3, 1.0, 50.0), (12, 8))
    np.testing.assert_array_equal(sampled, fine)


# --- exact properties of the discrete scheme -----------------------------------------------------


def _random_two_phase(shape, contrast, seed, fraction=0.4):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(shape) < fraction, 1.0, contrast)


@pytest.mark.parametrize("shape", [(24, 18), (10, 9, 8)])
def test_symmetric_positive_within_wiener_bounds(shape):
    D = _random_two_phase(shape, 1e3, seed=7)
    res = homogenize(D, method="direct")
    lo, hi = wiener_bounds(D)
    assert res.asymmetry < 1e-12
    assert np.all(res.eigenvalues > 0)
    diag = np.diag(res.tensor)
    assert np.all(diag >= lo * (1 - 1e-12))
    assert np.all(diag <= hi * (1 + 1e-12))
    fr = res.volume_fractions
    assert fr is not None and sum(fr.values()) == pytest.approx(1.0, abs=1e-15)
    assert fr[1.0] == pytest.approx(np.mean(D == 1.0), abs=0)


@pytest.mark.parametrize("shape", [(45, 30), (13, 11, 9)])
def test_cg_agrees_with_direct_on_odd_grids(shape):
    D = _random_two_phase(shape, 1e-3, seed=11)
    a = homogenize(D, method="direct")
    b = homogenize(D, method="cg", tol=1e-11)
    np.testing.assert_allclose(b.tensor, a.tensor, rtol=0, atol=1e-8 * np.max(a.tensor))
    assert b.residual < 1e-10
    assert b.asymmetry < 1e-8


def test_invariances_scaling_translation_axis_permutation():
    D = _random_two_phase((16, 12), 20.0, seed=5)
    base = homogenize(D).tensor
    np.testing.assert_allclose(homogenize(7.0 * D).tensor, 7.0 * base, rtol=1e-12)
    shifted = np.roll(np.roll(D, 5, axis=0), -3, axis=1)
    np.testing.assert_allclose(homogenize(shifted).tensor, base, rtol=1e-11, atol=1e-13)
    P = np.array([[0, 1], [1, 0]])
    np.testing.assert_allclose(homogenize(D.T).tensor, P @ base @ P, rtol=1e-11, atol=1e-13)
    # mirror y -> -y flips the sign of the off-diagonal entry
    mirrored = homogenize(D[:, ::-1]).tensor
    np.testing.assert_allclose(mirrored, base * np.array([[1, -1], [-1, 1]]), atol=1e-12)


def test_contrast_1e3_multigrid_iterations_stay_small():
    # The preconditioner must make CG independent of the grid and of the contrast.
    iters = []
    for n in (32, 64):
        res = homogenize(inclusion_array(n, 0.3, 1.0, 1e-3), method="cg")
        iters.append(max(res.iterations))
        assert res.residual < 1e-10
    res3 = homogenize(inclusion_array(16, 0.2, 1.0, 1e3, dim=3), method="cg")
    assert res3.residual < 1e-10
    assert max(iters) <= 20 and max(res3.iterations) <= 20
    assert res3.multigrid_levels >= 2


def test_solver_residual_and_fluxes_satisfy_discrete_equations():
    D = _random_two_phase((12, 10), 4.0, seed=2)
    res = homogenize(D, keep_correctors=True)
    op = cp.assemble(D, (1 / 12, 1 / 10))
    assert res.correctors is not None
    for k in range(2):
        chi = res.correctors[k]
        assert abs(chi.mean()) < 1e-14
        r = op.matrix @ chi.ravel() - op.rhs(k)
        assert np.linalg.norm(r) <= 1e-12 * np.linalg.norm(op.rhs(k))
    # D_eff_jk equals the energy form E(w_j, w_k) (module docstring of cell_problem)
    energy = np.zeros((2, 2))
    h = (1 / 12, 1 / 10)
    for i in range(2):
        t = op.transmissibility[i]
        grads = []
        for k in range(2):
            g = np.roll(res.correctors[k], -1, axis=i) - res.correctors[k]
            grads.append(g + (h[i] if i == k else 0.0))
        for j in range(2):
            for k in range(2):
                energy[j, k] += float(np.sum(t * grads[j] * grads[k]))
    np.testing.assert_allclose(energy, res.tensor, rtol=1e-11)


# --- results -------------------------------------------------------------------------------------


def test_result_to_dict_is_json_and_summary_reports():
    res = homogenize(checkerboard(8, 1.0, 4.0))
    d = json.loads(json.dumps(res.to_dict()))
    assert d["shape"] == [8, 8]
    assert d["volume_fractions"] == [{"D": 1.0, "fraction": 0.5}, {"D": 4.0, "fraction": 0.5}]
    assert d["method"] == "direct"
    text = res.summary()
    assert "effective diffusion tensor" in text and "D=4: 0.500000" in text
    assert "residual" in text and "asymmetry" in text
    many = homogenize(np.linspace(1, 2, 40).reshape(8, 5))
    assert many.volume_fractions is None and many.n_phases == 40
    assert "40 distinct diffusivities" in many.summary()


# --- validation of input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("D", "match"),
    [
        (
            np.array([[1.0, -1.0], [1.0, 1.0]]),
            r"positive: 1 value\(s\) <= 0, the first at index \(0, 1\)",
        ),
        (np.array([[1.0, 0.0]]), "positive"),
        (
            np.array([[1.0, np.nan]]),
            r"finite: 1 non-finite value\(s\), the first at index \(0, 1\)",
        ),
        (np.array([[np.inf, 1.0]]), "finite"),
        (np.ones((2, 2, 2, 2)), "1, 2 or 3 dimensions"),
        (np.float64(3.0), "1, 2 or 3 dimensions"),
        (np.ones((0, 3)), "empty"),
        ([["a", "b"]], "array of numbers"),
    ],
)
def test_bad_microstructure_is_rejected(D, match):
    with pytest.raises(ModelError, match=match) as info:
        homogenize(D, source="cells.npy")
    assert "cells.npy" in str(info.value)


def test_bad_options_are_rejected():
    D = np.ones((4, 4))
    with pytest.raises(OptionError, match="unknown cell-problem method"):
        homogenize(D, method="lu")
    with pytest.raises(OptionError, match="tol"):
        homogenize(D, tol=0.0)
    with pytest.raises(OptionError, match="cell_size has 3 entries"):
        homogenize(D, cell_size=(1, 1, 1))
    with pytest.raises(OptionError, match="positive"):
        homogenize(D, cell_size=(1, -1))
    with pytest.raises(OptionError, match="multiple"):
        convergence_study(np.ones((3, 3)), [3, 7])
    with pytest.raises(OptionError, match="coarse to fine"):
        convergence_study(np.ones((2, 2)), [4, 2])
    with pytest.raises(OptionError, match="component"):
        convergence_study(np.ones((2, 2)), [2, 4], component="zz")
    with pytest.raises(OptionError, match="even"):
        checkerboard(5, 1, 2)
    with pytest.raises(OptionError, match="layer axis 2"):
        layered([1.0, 2.0], [1, 1], (2, 2), axis=2)
    with pytest.raises(OptionError, match="sum to"):
        layered([1.0, 2.0], [1, 2], (2, 2))
    with pytest.raises(ModelError, match="positive"):
        layered([1.0, -2.0], [1, 1], (2, 2))
    with pytest.raises(OptionError, match="touching"):
        inclusion_array(16, 0.8, 1, 2)
    with pytest.raises(OptionError, match="pi/4"):
        rayleigh_square_array(0.79, 1, 2)


# --- convergence tools ---------------------------------------------------------------------------


def test_observed_order_and_richardson_recover_a_power_law():
    h = np.array([0.1, 0.05, 0.03])  # non-constant ratio on purpose
    v = 2.0 + 3.0 * h**1.5
    p = observed_order(h, v)
    assert p == pytest.approx(1.5, abs=1e-9)
    assert richardson(h[1], h[2], v[1], v[2], p) == pytest.approx(2.0, abs=1e-12)
    assert math.isnan(observed_order([0.1, 0.05, 0.025], [1.0, 1.1, 1.05]))  # not monotone
    assert math.isnan(observed_order([0.1, 0.05, 0.025], [1.0, 1.0, 1.0]))


def test_convergence_study_on_a_fixed_geometry():
    base = checkerboard(2, 1.0, 4.0)
    rep = convergence_study(base, [8, 16, 32, 64], reference=2.0, component="xx")
    assert rep.component == "D_xx"
    assert rep.shapes[-1] == (64, 64)
    assert rep.errors is not None and np.all(np.diff(np.abs(rep.errors)) < 0)
    assert np.all(np.isfinite(rep.orders))
    # Richardson removes most of the error of the finest grid
    assert abs(rep.extrapolated - 2.0) < 0.2 * abs(rep.errors[-1])
    d = json.loads(json.dumps(rep.to_dict()))
    assert len(d["values"]) == 4 and d["references"] == [2.0] * 4
    assert "| 64x64 |" in rep.summary()
    per_level = convergence_study(
        lambda x, y: np.where(x < 0.5, 1.0, 3.0), [4, 8], reference=lambda r: r.harmonic_mean
    )
    assert per_level.errors is not None
    np.testing.assert_allclose(per_level.tensors[:, 0, 0], 1.5, rtol=1e-12)
    np.testing.assert_allclose(per_level.errors, [0.25, 0.25], rtol=1e-12)  # (1.5+2)/2 - 1.5


# --- reference formulae --------------------------------------------------------------------------


def test_square_lattice_sums():
    assert square_lattice_sum(2) == math.pi
    assert square_lattice_sum(6) == 0.0 and square_lattice_sum(10) == 0.0
    assert square_lattice_sum(4) == pytest.approx(gamma(0.25) ** 8 / (960 * math.pi**2), rel=1e-14)
    # direct sums converge absolutely for n >= 8 (tail ~ R^(2-n))
    m = np.arange(-60, 61)
    z = (m[:, None] + 1j * m[None, :]).ravel()
    z = z[z != 0]
    for n in (8, 12, 16):
        direct = float(np.sum(z ** (-float(n))).real)
        assert square_lattice_sum(n) == pytest.approx(direct, rel=1e-10)
    assert square_lattice_sum(200) == pytest.approx(4.0, abs=1e-12)  # nearest neighbours


def test_rayleigh_series_limits_and_reciprocity():
    for e in (1e-3, 0.25, 4.0, 1e3):
        for f in (0.05, 0.3):
            mg = maxwell_garnett(1.0, e, f)
            # one multipole is Maxwell-Garnett; the first correction is O(f^5)
            assert rayleigh_square_array(f, 1.0, e, multipoles=1) == pytest.approx(mg, rel=1e-14)
            full = rayleigh_square_array(f, 1.0, e)
            T = (1 + e) / (1 - e)
            c4 = 3 * square_lattice_sum(4) ** 2 / math.pi**4
            first = -2 * f * c4 * f**4 / T / (T + f) ** 2  # d(1 - 2f/(T+f-x))/dx * x
            assert full - mg == pytest.approx(first, rel=0.05 if f < 0.1 else 0.3)
        # Keller's phase interchange: D(1, e) D(1, 1/e) = 1 for the exact series
        for f in (0.2, 0.6, 0.75):
            prod = rayleigh_square_array(f, 1.0, e) * rayleigh_square_array(f, 1.0, 1 / e)
            assert prod == pytest.approx(1.0, abs=1e-12)
    assert 0.3058 < 3 * square_lattice_sum(4) ** 2 / math.pi**4 < 0.30583
    # closed form vs the converged series (its documented accuracy)
    for e in (1e-3, 1e3):
        for f, tol in ((0.1, 1e-10), (0.3, 2e-8), (0.5, 5e-5)):
            assert rayleigh_closed_form(f, 1.0, e) == pytest.approx(
                rayleigh_square_array(f, 1.0, e), abs=tol
            )
    assert rayleigh_square_array(0.3, 2.0, 2.0) == 2.0


def test_bounds_and_their_relations():
    for d in (2, 3):
        for f in (0.0, 0.1, 0.5, 1.0):
            lo, hi = hashin_shtrikman_bounds(1e-3, 1.0, f, dim=d)
            w_lo = 1 / (f / 1e-3 + (1 - f) / 1.0)
            w_hi = f * 1e-3 + (1 - f)
            assert w_lo - 1e-15 <= lo <= hi <= w_hi + 1e-15
            # Maxwell-Garnett is the bound on the matrix's side
            if 0 < f < 1:
                assert maxwell_garnett(1.0, 1e-3, f, dim=d) == pytest.approx(hi, rel=1e-14)
                assert maxwell_garnett(1e-3, 1.0, 1 - f, dim=d) == pytest.approx(lo, rel=1e-14)
        assert hashin_shtrikman_bounds(1.0, 1e-3, 0.3, dim=d) == pytest.approx(
            hashin_shtrikman_bounds(1e-3, 1.0, 0.7, dim=d), rel=1e-15
        )
    # 2D, equal fractions: Keller-Dykhne lies between the bounds
    lo, hi = hashin_shtrikman_bounds(1.0, 10.0, 0.5, dim=2)
    assert lo < keller_dykhne(1, 10) < hi


def test_checkerboard_order_formula():
    assert checkerboard_order(1, 1) == pytest.approx(2.0)
    assert checkerboard_order(1, 10) == pytest.approx(checkerboard_order(10, 1))
    assert checkerboard_order(1, 4) == pytest.approx(4 / math.pi * math.asin(0.8))
    assert checkerboard_order(1, 1e3) == pytest.approx(0.0805, abs=1e-4)
