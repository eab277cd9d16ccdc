"""Validation of the periodic cell problem against exact results, bounds and Rayleigh's series.

Measured behaviour that the assertions encode (tables in the report of issue 5):

* Laminates: exact (harmonic mean across, arithmetic along) at any resolution and contrast.
* Checkerboard ``D1 = 1, D2 = c``: the effective value approaches ``sqrt(c)`` (Keller-Dykhne)
  from below with order ``2 alpha``, ``sin(pi alpha/2) = 2 sqrt(c)/(1+c)`` (the corner
  singularity; :func:`checkerboard_order`).  Measured between 512^2 and 1024^2: 1.180 for
  ``c = 4`` (theory 1.1807) and 0.777 for ``c = 10`` (theory 0.7799).  For ``c = 100`` and
  ``1e3`` the grids up to 1024^2 are still pre-asymptotic (observed 0.18 and 0.02, below the
  theoretical 0.254 and 0.0805; 1024^2 gives 7.46 of 10 and 9.37 of 31.6): pixel
  checkerboards of high contrast converge extremely slowly.
* Square arrays of discs sampled at pixel centres: ``D_eff - Rayleigh(f_pix) = C h`` with
  ``|C|`` 0.50-0.62 for ``D_inclusion/D_matrix = 1e-3`` (from below) and 0.16-0.85 for
  ``1e3`` (from above) at ``f = 0.1-0.4`` (the staircase boundary; a fixed pixel geometry
  refined by upsampling converges with order 1.2-1.45).  A least-squares fit over 12 grids
  from 128^2 to 1024^2 extrapolates to Rayleigh's value within 1e-4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalebridge.space.homogenize import (
    checkerboard,
    checkerboard_order,
    convergence_study,
    hashin_shtrikman_bounds,
    homogenize,
    inclusion_array,
    inclusion_function,
    keller_dykhne,
    layered,
    maxwell_garnett,
    rayleigh_square_array,
    richardson,
    upsample,
)

FRACTIONS = (0.1, 0.2, 0.3, 0.4)


# --- layered media: exact ------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("contrast", [1e3, 1e-3])
def test_layered_media_harmonic_across_arithmetic_along(dim, contrast):
    values = [1.0, contrast, 0.5 * contrast + 0.2, 3.0]
    thickness = [3, 1, 4, 2]
    shape = (10, 6) if dim == 2 else (10, 5, 4)
    D = layered(values, thickness, shape, axis=0)
    w = np.array(thickness) / 10
    harmonic = float(1.0 / np.sum(w / values))
    arithmetic = float(np.sum(w * np.array(values)))
    for method in ("direct", "cg"):
        res = homogenize(D, method=method, tol=1e-12)
        expected = np.diag([harmonic] + [arithmetic] * (dim - 1))
        np.testing.assert_allclose(res.tensor, expected, rtol=1e-10, atol=1e-10 * arithmetic)


# --- checkerboard: Keller-Dykhne -----------------------------------------------------------------


@pytest.mark.parametrize("contrast", [4.0, 10.0])
def test_checkerboard_converges_to_sqrt_with_the_corner_order(contrast):
    """Orders measured here (64 -> 128 -> 256): 1.178/1.179 for c = 4, 0.767/0.772 for c = 10
    against the exact value; theory 2 alpha = 1.1807 and 0.7799."""
    exact = keller_dykhne(1.0, contrast)
    p = checkerboard_order(1.0, contrast)
    rep = convergence_study(checkerboard(2, 1.0, contrast), [64, 128, 256], reference=exact)
    assert rep.errors is not None and rep.orders_vs_reference is not None
    assert np.all(rep.errors < 0) and np.all(np.diff(np.abs(rep.errors)) < 0)
    assert rep.orders_vs_reference[-1] == pytest.approx(p, abs=0.02)
    assert rep.orders[-1] == pytest.approx(p, abs=0.04)
    # isotropic (the checkerboard has square symmetry): D_xx = D_yy, D_xy = 0
    t = rep.tensors[-1]
    assert abs(t[0, 0] - t[1, 1]) < 1e-12 * exact and abs(t[0, 1]) < 1e-12 * exact
    # Richardson with the theoretical order removes most of the error
    limit = richardson(rep.h[-2], rep.h[-1], rep.values[-2], rep.values[-1], p)
    assert abs(limit - exact) < 0.05 * abs(rep.errors[-1])


def test_checkerboard_contrast_1e3_solves_and_approaches_from_below():
    exact = keller_dykhne(1.0, 1e3)
    rep = convergence_study(checkerboard(2, 1.0, 1e3), [32, 64, 128], method="cg")
    assert np.all(rep.residuals < 1e-10) and np.all(rep.asymmetries < 1e-8)
    assert np.all(np.diff(rep.values) > 0) and rep.values[-1] < exact
    # pre-asymptotic: the observed order is far below 2 alpha = 0.0805 (module docstring)
    assert 0 < rep.orders[-1] < checkerboard_order(1.0, 1e3)


# --- square arrays of discs ----------------------------------------------------------------------


def _hs(res, D_inclusion, dim=2):
    fp = res.volume_fractions[D_inclusion]
    return fp, hashin_shtrikman_bounds(D_inclusion, 1.0, fp, dim=dim)


@pytest.mark.parametrize("D_inclusion", [1e-3, 1e3])
@pytest.mark.parametrize("f", FRACTIONS)
def test_disc_arrays_within_hashin_shtrikman_bounds_and_isotropic(f, D_inclusion):
    """The continuum tensor of a pixel microstructure lies within the HS bounds of its pixel
    volume fraction (the bounds hold for every isotropic two-phase geometry, and square
    symmetry makes the tensor isotropic).  The finite-volume value differs from that continuum
    value by the discretisation error of the fixed pixel geometry, estimated by refining it once
    (every pixel split into 2 x 2): with the measured order p >= 1.2 the remaining error is
    ``|D(h/2) - D(h)| / (2^p - 1) < |D(h/2) - D(h)|``, which is the tolerance."""
    base = inclusion_array(96, f, 1.0, D_inclusion)
    coarse = homogenize(base)
    fine = homogenize(upsample(base, 2))
    tol = abs(fine.tensor[0, 0] - coarse.tensor[0, 0])
    fp, (lo, hi) = _hs(fine, D_inclusion)
    assert fp == pytest.approx(f, abs=0.01)
    d = fine.tensor[0, 0]
    assert lo - tol <= d <= hi + tol
    # Maxwell-Garnett is the bound on the matrix's side
    mg = maxwell_garnett(1.0, D_inclusion, fp)
    assert mg == pytest.approx(hi if D_inclusion < 1 else lo, rel=1e-14)
    # square symmetry of the pixelated disc: isotropic to round-off
    assert abs(fine.tensor[1, 1] - d) < 1e-11 * d and abs(fine.tensor[0, 1]) < 1e-11 * d


@pytest.mark.parametrize("D_inclusion", [1e-3, 1e3])
def test_disc_arrays_converge_to_rayleigh_at_first_order(D_inclusion):
    """Errors against Rayleigh's series at the pixel-counted fraction shrink like C h
    (staircase boundary), with the sign of the contrast; measured |C| <= 0.65 at f = 0.3."""
    f = 0.3
    rep = convergence_study(
        inclusion_function(f, 1.0, D_inclusion),
        [64, 96, 128, 192, 256],
        reference=lambda r: rayleigh_square_array(
            r.volume_fractions[D_inclusion], 1.0, D_inclusion
        ),
    )
    assert rep.errors is not None
    sign = -1.0 if D_inclusion < 1 else 1.0
    assert np.all(sign * rep.errors > 0)
    assert np.all(np.abs(rep.errors) / rep.h < 0.8)
    slope = np.polyfit(np.log(rep.h), np.log(np.abs(rep.errors)), 1)[0]
    assert 0.8 < slope < 1.5
    assert abs(rep.errors[-1]) < 0.5 * abs(rep.errors[0])


def test_converged_disc_array_sits_inside_maxwell_garnett_by_rayleighs_gap():
    """f = 0.3, cells (D = 1e-3) in a conducting matrix: Rayleigh's series puts the array
    8.8e-4 (1.6e-3 relative) below Maxwell-Garnett, the upper HS bound.  The finite-volume
    values lie below it by the staircase error too, so the converged value is what counts:
    fitting D_eff - Rayleigh(f_pix) = e0 + C h over 128^2 .. 512^2 gives e0 = 1.8e-4 and
    C = -0.66 (other grid sets: |e0| from 9e-6 to 1.3e-4; the scatter comes from how the grid
    cuts the circle), so the converged value is inside Maxwell-Garnett by Rayleigh's gap to
    within 40 % (measured: 7.0e-4 against 8.8e-4) -- clearly off the bound itself."""
    f, Di = 0.3, 1e-3
    h, e = [], []
    for n in (128, 192, 256, 320, 384, 512):
        res = homogenize(inclusion_array(n, f, 1.0, Di))
        fp = res.volume_fractions[Di]
        assert res.tensor[0, 0] < maxwell_garnett(1.0, Di, fp)
        h.append(1 / n)
        e.append(res.tensor[0, 0] - rayleigh_square_array(fp, 1.0, Di))
    e0, _ = _fit_intercept(np.array(h), np.array(e))
    assert abs(e0) < 3.5e-4
    mg, ray = maxwell_garnett(1.0, Di, f), rayleigh_square_array(f, 1.0, Di)
    assert mg - (ray + e0) == pytest.approx(mg - ray, rel=0.4)


def test_rayleigh_gap_to_maxwell_garnett():
    """Rayleigh's series puts square arrays (1 - 1e-3 contrast) 6.1e-6, 2.0e-4, 1.6e-3 and
    7.5e-3 (relative) inside the Maxwell-Garnett bound at f = 0.1, 0.2, 0.3, 0.4: the size of
    the effect that the finite-volume values are compared with in the slow study below."""
    gaps = []
    for f in FRACTIONS:
        mg = maxwell_garnett(1.0, 1e-3, f)
        gaps.append((mg - rayleigh_square_array(f, 1.0, 1e-3)) / mg)
    np.testing.assert_allclose(gaps, [6.14e-6, 2.03e-4, 1.627e-3, 7.46e-3], rtol=0.01)
    for f in FRACTIONS:  # conducting inclusions: above the lower bound by the same amounts
        mg = maxwell_garnett(1.0, 1e3, f)
        assert rayleigh_square_array(f, 1.0, 1e3) > mg


# --- 3D ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("D_inclusion", [1e-3, 1e3])
def test_spheres_in_a_cubic_array_within_bounds_near_maxwell_garnett(D_inclusion):
    """Balls on a simple cubic lattice, f = 0.2: isotropic (cubic symmetry), within the HS
    bounds of the voxel fraction (tolerance as in 2D: one upsampling of the 16^3 geometry), and
    approaching Maxwell-Garnett as the staircase shrinks (16^3 -> 32^3 sampled: measured
    2.3 % -> 1.2 % for conducting balls, 4.0 % -> 1.9 % for cells in a conducting matrix).  The
    array's own correction to Maxwell-Garnett is O(f^(10/3)) (Rayleigh 1892), smaller still."""
    base = inclusion_array(16, 0.2, 1.0, D_inclusion, dim=3)
    coarse = homogenize(base)
    fine = homogenize(upsample(base, 2), method="cg", tol=1e-11)
    tol = abs(fine.tensor[0, 0] - coarse.tensor[0, 0])
    fp, (lo, hi) = _hs(fine, D_inclusion, dim=3)
    diag = np.diag(fine.tensor)
    assert np.ptp(diag) < 1e-8 * diag[0]
    assert np.max(np.abs(fine.tensor - np.diag(diag))) < 1e-8 * diag[0]
    assert np.all(lo - tol <= diag) and np.all(diag <= hi + tol)
    sampled = homogenize(inclusion_array(32, 0.2, 1.0, D_inclusion, dim=3), tol=1e-11)
    dev = []
    for res in (coarse, sampled):
        fp = res.volume_fractions[D_inclusion]
        mg = maxwell_garnett(1.0, D_inclusion, fp, dim=3)
        dev.append(abs(res.tensor[0, 0] - mg) / mg)
    assert dev[1] < 0.6 * dev[0] and dev[1] < 0.025


# --- slow, exhaustive convergence studies (make test-slow) ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("contrast", "tol"), [(4.0, 0.005), (10.0, 0.01), (100.0, None), (1000.0, None)]
)
def test_slow_checkerboard_study(contrast, tol):
    exact = keller_dykhne(1.0, contrast)
    p = checkerboard_order(1.0, contrast)
    rep = convergence_study(
        checkerboard(2, 1.0, contrast), [32, 64, 128, 256, 512, 1024], reference=exact
    )
    assert rep.errors is not None and rep.orders_vs_reference is not None
    assert np.all(rep.errors < 0) and np.all(np.diff(np.abs(rep.errors)) < 0)
    if tol is not None:
        assert rep.orders_vs_reference[-1] == pytest.approx(p, abs=tol)
        limit = richardson(rep.h[-2], rep.h[-1], rep.values[-2], rep.values[-1], p)
        assert abs(limit - exact) < 0.01 * abs(rep.errors[-1])
    else:
        # pre-asymptotic: orders rise towards 2 alpha from below
        assert np.all(np.diff(rep.orders_vs_reference) > 0)
        assert rep.orders_vs_reference[-1] < p


def _fit_intercept(h, e):
    A = np.vstack([np.ones_like(h), h]).T
    coef, *_ = np.linalg.lstsq(A, e, rcond=None)
    r = e - A @ coef
    cov = (r @ r) / (len(e) - 2) * np.linalg.inv(A.T @ A)
    return float(coef[0]), float(math.sqrt(cov[0, 0]))


@pytest.mark.slow
@pytest.mark.parametrize("D_inclusion", [1e-3, 1e3])
@pytest.mark.parametrize("f", [0.2, 0.3, 0.4])
def test_slow_disc_arrays_converge_to_rayleigh_inside_maxwell_garnett(f, D_inclusion):
    """Least-squares fit of D_eff - Rayleigh(f_pix) = e0 + C h over grids 128^2 .. 1024^2:
    e0 is zero within 3 standard errors (and within 3e-4), and the converged value
    Rayleigh(f) + e0 lies inside the Maxwell-Garnett bound by the amount Rayleigh's series
    predicts (1.6e-3 at f = 0.3) within the fit's uncertainty."""
    ns = [128, 160, 192, 256, 320, 384, 512, 640, 768, 1024]
    h, e = [], []
    for n in ns:
        res = homogenize(inclusion_array(n, f, 1.0, D_inclusion))
        fp, (lo, hi) = _hs(res, D_inclusion)
        assert lo <= res.tensor[0, 0] <= hi
        h.append(1 / n)
        e.append(res.tensor[0, 0] - rayleigh_square_array(fp, 1.0, D_inclusion))
    e0, se = _fit_intercept(np.array(h), np.array(e))
    assert abs(e0) < max(3 * se, 1e-5) and abs(e0) < 3e-4
    ray = rayleigh_square_array(f, 1.0, D_inclusion)
    mg = maxwell_garnett(1.0, D_inclusion, f)
    converged = ray + e0
    inside = abs(mg - converged) / mg
    assert inside == pytest.approx(abs(mg - ray) / mg, abs=3 * se / mg + 1e-5)
    assert (converged < mg) if D_inclusion < 1 else (converged > mg)


@pytest.mark.slow
@pytest.mark.parametrize("D_inclusion", [1e-3, 1e3])
def test_slow_spheres_study(D_inclusion):
    """Balls at f = 0.1-0.3 on grids 16^3 .. 64^3 (multigrid CG, 11-12 iterations): inside the
    HS bounds of the voxel fraction at every grid, isotropic, and approaching Maxwell-Garnett:
    measured 0.5-1.7 % at 64^3 (2.6 % for conducting balls at f = 0.3, where the array's own
    correction to Maxwell-Garnett is largest), against 0.7-5.4 % at 16^3."""
    for f in (0.1, 0.2, 0.3):
        dev = {}
        for n in (16, 24, 32, 48, 64):
            res = homogenize(inclusion_array(n, f, 1.0, D_inclusion, dim=3), tol=1e-11)
            fp, (lo, hi) = _hs(res, D_inclusion, dim=3)
            diag = np.diag(res.tensor)
            assert lo <= diag.min() and diag.max() <= hi
            assert np.ptp(diag) < 1e-8 * diag[0]
            mg = maxwell_garnett(1.0, D_inclusion, fp, dim=3)
            dev[n] = abs(diag[0] - mg) / mg
        assert dev[64] < 0.6 * dev[16]
        assert max(dev[32], dev[48], dev[64]) < 0.05
