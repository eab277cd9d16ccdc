"""The QSSA reduction error falls linearly with eps (singular perturbation, first order).

Receptor binding and internalization (``data/receptor_uptake.ant``) with the receptor cycle
made ``s`` times faster -- k_on, k_off, k_int multiplied by ``s`` -- and the receptor pool
``s`` times smaller, which keeps V_max = k_int R_T and K_m = (k_off + k_int)/k_on fixed: the
reduced model is the same Michaelis-Menten uptake for every ``s``, and both the eigenvalue
ratio eps and the sQSSA parameter R_T/(K_m + L) fall like 1/s.  Tikhonov's theorem gives an
error O(eps) after the initial layer; the first-order term does not vanish here (free ligand
differs from total ligand by the bound share C = O(eps)), so the log-log slope of error against
eps is 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from scalebridge.reduce import receptor_uptake, reduce

BASE = {"k_on": 0.001, "k_off": 0.1, "k_int": 0.2, "R_T": 10.0}


def _reduce(s: float):
    values = {k: (v / s if k == "R_T" else v * s) for k, v in BASE.items()}
    return reduce(receptor_uptake(), ["R", "C"], t_end=1200, n_points=121, params=values)


def test_error_falls_linearly_with_eps_over_three_decades():
    eps, err_L, err_Li = [], [], []
    for s in (1.0, 10.0, 100.0, 1000.0):
        red = _reduce(s)
        (mm,) = red.michaelis_menten
        assert mm.V_max_value == pytest.approx(2.0, rel=1e-12)
        assert mm.K_m_value == pytest.approx(300.0, rel=1e-12)
        e = red.error
        assert e is not None
        assert e.layer_end <= 10.0  # measured from the first sample after the layer
        eps.append(e.eps_max)
        err_L.append(e.max_rel["L"])
        err_Li.append(e.max_rel["Li"])
    eps_a = np.array(eps)
    assert eps_a[0] / eps_a[-1] > 1e3 * 0.95  # three decades of eps
    for err in (err_L, err_Li):
        slope, _ = np.polyfit(np.log(eps_a), np.log(err), 1)
        assert 0.9 <= slope <= 1.1, (slope, eps, err)
        # and the error is O(eps) with a constant of order one
        ratio = np.array(err) / eps_a
        assert np.all((ratio > 0.05) & (ratio < 5)), ratio
