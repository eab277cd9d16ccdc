"""Conservative finite-volume diffusion: compiled stencils, boundary fluxes, sparse assembly.

Discretisation
--------------
For each species, with concentration ``c`` and diffusivity ``D`` (scalar or one value per cell),
cell P changes by the sum of the fluxes through its faces divided by its volume::

    dc_P/dt = sum_faces  T_f (c_N - c_P)  +  sum_boundary_faces (p_f - q_f c_P) / h  + ...

``T_f = D_f / h_k^2`` is the face coefficient of a face normal to axis k between P and its
neighbour N, with the harmonic mean ``D_f = 2 D_P D_N / (D_P + D_N)`` (0 when either is 0): the
exact effective diffusivity of two half-cells in series, so a jump in D is resolved without
smearing and an impermeable cell stays impermeable.  Faces between an active and an inactive cell
(masks) have ``T_f = 0``.  Boundary faces carry the influx ``p - q c_P`` of
:func:`scalebridge.space.boundary.face_coefficients`, with D on the face extrapolated linearly
from the two nearest cells (``1.5 D_P - 0.5 D_N``; D_P where that is not positive or the
neighbour is inactive), so that Neumann and Robin faces stay second order where D varies; a
periodic axis instead has an interior
face joining its two end cells.  Each interior face flux enters the two cells it separates with
opposite signs and equal magnitude, so the total amount changes only through boundary faces and
reactions -- mass balance to round-off.  The scheme is second order in space (also next to a
Dirichlet face, where the boundary value sits on the face, half a cell from the centre).

Layout
------
Kernels work on arrays of shape ``(n_species, n0, n1, n2)``: a grid of dimension d < 3 is padded
with leading axes of length 1 (1-D ``(1, 1, nx)``, 2-D ``(1, nx, ny)``), so the innermost loop runs
along the grid's last axis.  Face-coefficient arrays ``F0, F1, F2`` have one more entry along
their axis (faces ``0 .. n``, the first and last on the box; those are 0 unless the axis is
periodic, where both hold the coefficient of the face joining the end cells).  Unknowns of the
implicit systems are numbered species-major: ``s * N + flat cell index``.

The plain-NumPy reference :func:`apply_reference` (used by the tests) computes the same operator
face by face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..codegen.jit import kernel
from .boundary import AXES, BoundaryConditions, face_coefficients
from .grid import Grid

__all__ = ["DiffusionOperator", "apply_reference", "build_operator", "harmonic_mean"]


def harmonic_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``2ab/(a+b)``, 0 where ``a + b == 0``."""
    s = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, 2.0 * a * b / np.where(s > 0, s, 1.0), 0.0)


@dataclass(eq=False)
class DiffusionOperator:
    """The discretised diffusion of every species on one grid (see the module docstring).

    ``uniform`` is True when every species has one diffusivity everywhere and the grid has no
    mask: the explicit kernels then use the per-axis constants ``coef[s, k] = D_s / h_k^2``
    instead of the face arrays.  ``b_species``, ``b_index``, ``b_p``, ``b_q`` list the boundary
    faces (species, flat cell, and ``p / h``, ``q / h`` in concentration per time);
    ``q_axis[k]`` sums ``q / h`` per cell for the faces normal to (padded) axis k.
    """

    grid: Grid
    shape3: tuple[int, int, int]
    n_species: int
    uniform: bool
    coef: np.ndarray  # (ns, 3)
    F0: np.ndarray  # (ns, n0+1, n1, n2)
    F1: np.ndarray  # (ns, n0, n1+1, n2)
    F2: np.ndarray  # (ns, n0, n1, n2+1)
    periodic: np.ndarray  # (ns, 3) bool
    b_species: np.ndarray
    b_index: np.ndarray
    b_p: np.ndarray
    b_q: np.ndarray
    q_axis: tuple[np.ndarray, np.ndarray, np.ndarray]  # each (ns, n0, n1, n2)
    active: np.ndarray  # (N,) bool
    spacing3: tuple[float, float, float]

    @property
    def n_cells(self) -> int:
        return int(np.prod(self.shape3))

    @property
    def n(self) -> int:
        return self.n_species * self.n_cells

    def faces(self, k: int) -> np.ndarray:
        return (self.F0, self.F1, self.F2)[k]

    # ---------------------------------------------------------------- application
    def apply(
        self,
        u: np.ndarray,
        out: np.ndarray,
        a_diag: np.ndarray,
        alpha: float = 0.0,
        beta: float = 1.0,
        boundary: bool = True,
    ) -> np.ndarray:
        """``out = alpha u + beta (L u + a_diag u + boundary influx)``, ``u`` of shape
        ``(ns, n0, n1, n2)``; ``boundary=False`` leaves out the constant part ``p/h``."""
        if self.uniform:
            _apply_uniform(u, self.coef, self.periodic, a_diag, alpha, beta, out)
        else:
            _apply_general(u, self.F0, self.F1, self.F2, self.periodic, a_diag, alpha, beta, out)
        if self.b_index.shape[0]:
            _boundary(
                u.reshape(self.n_species, -1), self.b_species, self.b_index, self.b_p, self.b_q,
                beta, 1.0 if boundary else 0.0, out.reshape(self.n_species, -1),
            )  # fmt: skip
        return out

    # ---------------------------------------------------------------- assembly
    def matrix(self) -> sp.csr_matrix:
        """The linear part L (diffusion and the ``-q/h`` of boundary faces) as a sparse matrix
        over all cells of all species (species-major numbering), without reactions."""
        ns, N = self.n_species, self.n_cells
        idx = np.arange(N).reshape(self.shape3)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for s in range(ns):
            off = s * N
            for k in range(3):
                n_k = self.shape3[k]
                if n_k == 1:
                    continue
                F = self.faces(k)[s]
                # interior faces between cell m-1 and m, m = 1..n_k-1
                sl_lo = [slice(None)] * 3
                sl_hi = [slice(None)] * 3
                sl_f = [slice(None)] * 3
                sl_lo[k] = slice(0, n_k - 1)
                sl_hi[k] = slice(1, n_k)
                sl_f[k] = slice(1, n_k)
                pairs = [(idx[tuple(sl_lo)], idx[tuple(sl_hi)], F[tuple(sl_f)])]
                if self.periodic[s, k]:
                    last = [slice(None)] * 3
                    first = [slice(None)] * 3
                    last[k] = slice(n_k - 1, n_k)
                    first[k] = slice(0, 1)
                    pairs.append((idx[tuple(last)], idx[tuple(first)], F[tuple(first)]))
                for a, b, t in pairs:
                    a, b, t = a.ravel() + off, b.ravel() + off, t.ravel()
                    keep = t != 0.0
                    a, b, t = a[keep], b[keep], t[keep]
                    rows += [a, a, b, b]
                    cols += [b, a, a, b]
                    vals += [t, -t, t, -t]
        if self.b_index.shape[0]:
            r = self.b_species * N + self.b_index
            rows.append(r)
            cols.append(r)
            vals.append(-self.b_q)
        if rows:
            R = np.concatenate(rows)
            C = np.concatenate(cols)
            V = np.concatenate(vals)
        else:
            R = C = np.zeros(0, dtype=np.int64)
            V = np.zeros(0)
        M = sp.coo_matrix((V, (R, C)), shape=(ns * N, ns * N)).tocsr()
        M.sum_duplicates()
        M.sort_indices()
        return M

    def constant(self) -> np.ndarray:
        """The constant boundary part ``p / h`` as a vector (species-major)."""
        b = np.zeros(self.n)
        np.add.at(b, self.b_species * self.n_cells + self.b_index, self.b_p)
        return b

    def stability_bound(self, a_diag: np.ndarray) -> np.ndarray:
        """Per species, the Gershgorin bound max_P (|diag| + sum |offdiag|) of L + a_diag."""
        out = np.zeros(self.n_species)
        for s in range(self.n_species):
            tot = np.zeros(self.shape3)
            for k in range(3):
                F = self.faces(k)[s]
                sl_lo = [slice(None)] * 3
                sl_hi = [slice(None)] * 3
                sl_lo[k] = slice(0, self.shape3[k])
                sl_hi[k] = slice(1, self.shape3[k] + 1)
                tot += F[tuple(sl_lo)] + F[tuple(sl_hi)]
            q = self.q_axis[0][s] + self.q_axis[1][s] + self.q_axis[2][s]
            # |diag| = tot + q - a; radius = tot  (a <= 0 adds to the diagonal)
            row = 2.0 * tot + q + abs(float(a_diag[s]))
            out[s] = float(row.max()) if row.size else 0.0
        return out


def _pad3(grid: Grid) -> tuple[tuple[int, int, int], tuple[float, float, float], int]:
    pad = 3 - grid.ndim
    shape = (1,) * pad + grid.shape
    spacing = (1.0,) * pad + grid.spacing
    return (shape[0], shape[1], shape[2]), (spacing[0], spacing[1], spacing[2]), pad


def build_operator(
    grid: Grid,
    diffusivities: Sequence[float | np.ndarray],
    conditions: Sequence[BoundaryConditions],
) -> DiffusionOperator:
    """Face coefficients and boundary-face lists for ``diffusivities`` (one per species: a
    scalar or an array of the grid's shape) with one :class:`BoundaryConditions` per species."""
    shape3, h3, pad = _pad3(grid)
    ns = len(diffusivities)
    n0, n1, n2 = shape3
    N = n0 * n1 * n2
    act = grid.active.reshape(shape3)
    uniform = grid.mask is None and all(np.ndim(D) == 0 for D in diffusivities)
    coef = np.zeros((ns, 3))
    F0 = np.zeros((ns, n0 + 1, n1, n2))
    F1 = np.zeros((ns, n0, n1 + 1, n2))
    F2 = np.zeros((ns, n0, n1, n2 + 1))
    Fs = (F0, F1, F2)
    periodic = np.zeros((ns, 3), dtype=np.bool_)
    q_axis = tuple(np.zeros((ns, n0, n1, n2)) for _ in range(3))
    bs: list[np.ndarray] = []
    bi: list[np.ndarray] = []
    bp: list[np.ndarray] = []
    bq: list[np.ndarray] = []
    idx = np.arange(N).reshape(shape3)
    for s, (D, bc) in enumerate(zip(diffusivities, conditions, strict=True)):
        Dc = np.broadcast_to(np.asarray(D, dtype=np.float64).reshape(
            shape3 if np.ndim(D) else ()), shape3) * act  # fmt: skip
        for k in range(3):
            n_k = shape3[k]
            hk = h3[k]
            if np.ndim(D) == 0 and n_k > 1:
                coef[s, k] = float(D) / hk**2
            if n_k == 1:
                continue
            gk = k - pad  # grid axis
            per = bc.periodic(gk)
            periodic[s, k] = per
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[k] = slice(0, n_k - 1)
            hi[k] = slice(1, n_k)
            inner = [slice(None)] * 3
            inner[k] = slice(1, n_k)
            Fs[k][s][tuple(inner)] = harmonic_mean(Dc[tuple(lo)], Dc[tuple(hi)]) / hk**2
            first = [slice(None)] * 3
            last = [slice(None)] * 3
            first[k] = slice(0, 1)
            last[k] = slice(n_k - 1, n_k)
            if per:
                w = harmonic_mean(Dc[tuple(first)], Dc[tuple(last)]) / hk**2
                f0 = [slice(None)] * 3
                fn = [slice(None)] * 3
                f0[k] = slice(0, 1)
                fn[k] = slice(n_k, n_k + 1)
                Fs[k][s][tuple(f0)] = w
                Fs[k][s][tuple(fn)] = w
                continue
            second = [slice(None)] * 3
            second_last = [slice(None)] * 3
            second[k] = slice(1, 2)
            second_last[k] = slice(n_k - 2, n_k - 1)
            for side, sl, sl2 in (("-", first, second), ("+", last, second_last)):
                cond = bc[f"{AXES[gk]}{side}"]
                # D on the boundary face, extrapolated linearly from the two nearest cells
                # (second order for smooth D; the cell's own value where that is not possible)
                Dp = Dc[tuple(sl)].squeeze(axis=k)
                Dn = Dc[tuple(sl2)].squeeze(axis=k)
                ext = 1.5 * Dp - 0.5 * Dn
                Dside = np.where((Dn > 0.0) & (ext > 0.0), ext, Dp)
                p, q = face_coefficients(cond, Dside, hk)
                p = np.broadcast_to(p, Dside.shape).reshape(-1)
                q = np.broadcast_to(q, Dside.shape).reshape(-1)
                cells = idx[tuple(sl)].reshape(-1)
                on = act.reshape(-1)[cells]
                keep = on & ((p != 0.0) | (q != 0.0))
                bs.append(np.full(int(keep.sum()), s, dtype=np.int64))
                bi.append(cells[keep].astype(np.int64))
                bp.append(p[keep] / hk)
                bq.append(q[keep] / hk)
                qa = q_axis[k][s].reshape(-1)
                np.add.at(qa, cells[on], (q / hk)[on])
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt)  # noqa: E731
    return DiffusionOperator(
        grid=grid,
        shape3=shape3,
        n_species=ns,
        uniform=uniform,
        coef=coef,
        F0=F0,
        F1=F1,
        F2=F2,
        periodic=periodic,
        b_species=cat(bs, np.int64),
        b_index=cat(bi, np.int64),
        b_p=cat(bp, np.float64),
        b_q=cat(bq, np.float64),
        q_axis=(q_axis[0], q_axis[1], q_axis[2]),
        active=act.reshape(-1).copy(),
        spacing3=h3,
    )


# =============================================================================================
# Compiled kernels


@kernel
def _nb(m: int, n: int, per: bool) -> tuple[int, int]:
    """Indices of the low and high neighbours of ``m`` on an axis of ``n`` cells; a missing
    neighbour (non-periodic end) is ``m`` itself, whose face coefficient is 0."""
    lo = m - 1
    hi = m + 1
    if lo < 0:
        lo = n - 1 if per else m
    if hi >= n:
        hi = 0 if per else m
    return lo, hi


@kernel(_nrt=False)
def _apply_uniform(u: np.ndarray, coef: np.ndarray, per: np.ndarray, a: np.ndarray,
                   alpha: float, beta: float, out: np.ndarray) -> None:  # fmt: skip
    """out = alpha u + beta (sum_k c_k (u_lo + u_hi - 2u) + a u), constant coefficients."""
    ns, n0, n1, n2 = u.shape
    for s in range(ns):
        c0 = beta * coef[s, 0]
        c1 = beta * coef[s, 1]
        c2 = beta * coef[s, 2]
        d = alpha + beta * a[s] - 2.0 * (c0 + c1 + c2)
        for i in range(n0):
            im, ip = _nb(i, n0, per[s, 0])
            for j in range(n1):
                jm, jp = _nb(j, n1, per[s, 1])
                row = u[s, i, j]
                rm = u[s, im, j]
                rp = u[s, ip, j]
                qm = u[s, i, jm]
                qp = u[s, i, jp]
                o = out[s, i, j]
                if n2 == 1:
                    o[0] = (d + 2.0 * c2) * row[0] + c0 * (rm[0] + rp[0]) + c1 * (qm[0] + qp[0])
                    continue
                km, _ = _nb(0, n2, per[s, 2])
                o[0] = (d * row[0] + c0 * (rm[0] + rp[0]) + c1 * (qm[0] + qp[0])
                        + c2 * (row[km] + row[1]))  # fmt: skip
                for k in range(1, n2 - 1):
                    o[k] = (d * row[k] + c0 * (rm[k] + rp[k]) + c1 * (qm[k] + qp[k])
                            + c2 * (row[k - 1] + row[k + 1]))  # fmt: skip
                k = n2 - 1
                _, kp = _nb(k, n2, per[s, 2])
                o[k] = (d * row[k] + c0 * (rm[k] + rp[k]) + c1 * (qm[k] + qp[k])
                        + c2 * (row[k - 1] + row[kp]))  # fmt: skip


@kernel(_nrt=False)
def _apply_general(u: np.ndarray, F0: np.ndarray, F1: np.ndarray, F2: np.ndarray,
                   per: np.ndarray, a: np.ndarray, alpha: float, beta: float,
                   out: np.ndarray) -> None:  # fmt: skip
    """out = alpha u + beta (sum_faces T_f (u_N - u_P) + a u), face coefficients per face."""
    ns, n0, n1, n2 = u.shape
    for s in range(ns):
        d = alpha + beta * a[s]
        for i in range(n0):
            im, ip = _nb(i, n0, per[s, 0])
            for j in range(n1):
                jm, jp = _nb(j, n1, per[s, 1])
                row = u[s, i, j]
                rm = u[s, im, j]
                rp = u[s, ip, j]
                qm = u[s, i, jm]
                qp = u[s, i, jp]
                f0l = F0[s, i, j]
                f0h = F0[s, i + 1, j]
                f1l = F1[s, i, j]
                f1h = F1[s, i, j + 1]
                f2 = F2[s, i, j]
                o = out[s, i, j]
                for k in range(n2):
                    km = k - 1
                    kp = k + 1
                    if km < 0:
                        km = n2 - 1 if per[s, 2] else k
                    if kp >= n2:
                        kp = 0 if per[s, 2] else k
                    c = row[k]
                    acc = (f0l[k] * (rm[k] - c) + f0h[k] * (rp[k] - c)
                           + f1l[k] * (qm[k] - c) + f1h[k] * (qp[k] - c)
                           + f2[k] * (row[km] - c) + f2[k + 1] * (row[kp] - c))  # fmt: skip
                    o[k] = d * c + beta * acc


@kernel(_nrt=False)
def _boundary(u: np.ndarray, bs: np.ndarray, bi: np.ndarray, bp: np.ndarray, bq: np.ndarray,
              beta: float, pscale: float, out: np.ndarray) -> None:  # fmt: skip
    """out[s, P] += beta (pscale p - q u[s, P]) over the boundary faces."""
    for e in range(bi.shape[0]):
        s = bs[e]
        P = bi[e]
        out[s, P] += beta * (pscale * bp[e] - bq[e] * u[s, P])


@dataclass(eq=False)
class LineFactors:
    """LU factors of the tridiagonal ``I - th A_k`` of one species along one axis (arrays in the
    grid's layout; :func:`adi_axis_solve` views them axis-first, ``(n, P, R)``).

    Rows are ``lo_m x_{m-1} + b_m x_m + up_m x_{m+1}``: forward elimination
    ``y_m = (d_m - lo_m y_{m-1}) dinv_m``, back substitution ``x_m = y_m - cp_m x_{m+1}``.  A
    periodic axis is solved as a cyclic system (Sherman-Morrison): ``z`` solves the modified
    system for the rank-one vector, ``v`` and ``zfac`` give the correction
    ``x -= (x_0 + v x_{n-1}) zfac z``.
    """

    lo: np.ndarray  # (n0, n1, n2): the grid's layout
    dinv: np.ndarray
    cp: np.ndarray
    z: np.ndarray
    v: np.ndarray  # (P, R)
    zfac: np.ndarray
    periodic: bool


def line_factors(op: DiffusionOperator, k: int, s: int, th: float, ak: float) -> LineFactors:
    """Factor ``I - th (A_k + ak I)`` for species ``s`` along padded axis ``k``."""
    order = {0: (0, 1, 2), 1: (1, 0, 2), 2: (2, 0, 1)}[k]
    F = op.faces(k)[s].transpose(order)
    Q = op.q_axis[k][s].transpose(order)
    per = bool(op.periodic[s, k])
    # stored in the grid's own memory layout (viewed axis-first by the solver), so that every
    # array is traversed like the state itself
    arrays = [np.empty(op.shape3) for _ in range(4)]
    v = np.zeros(Q.shape[1:])
    zfac = np.zeros(Q.shape[1:])
    lo, dinv, cp, z = (a.transpose(order) for a in arrays)
    _line_factor(F, Q, th, ak, per, lo, dinv, cp, z, v, zfac, _block(op, k))
    return LineFactors(arrays[0], arrays[1], arrays[2], arrays[3], v, zfac, per)


@kernel(_nrt=False)
def _factor_lines(F: np.ndarray, Q: np.ndarray, th: float, ak: float, per: bool, lo: np.ndarray,
                  dinv: np.ndarray, cp: np.ndarray, z: np.ndarray, v: np.ndarray,
                  zfac: np.ndarray, p0: int, p1: int, r0: int, r1: int) -> None:  # fmt: skip
    """:func:`_line_factor` for the lines ``(p0:p1, r0:r1)``, all of them at each m."""
    n = Q.shape[0]
    for p in range(p0, p1):
        for r in range(r0, r1):
            b0 = 1.0 + th * (F[0, p, r] + F[1, p, r] + Q[0, p, r] - ak)
            lo[0, p, r] = 0.0
            if per:
                gamma = -b0
                d = 1.0 / (b0 - gamma)
                z[0, p, r] = gamma * d
                v[p, r] = -th * F[0, p, r] / gamma
            else:
                d = 1.0 / b0
                z[0, p, r] = 0.0
            dinv[0, p, r] = d
            cp[0, p, r] = -th * F[1, p, r] * d
    for m in range(1, n):
        last = m == n - 1
        for p in range(p0, p1):
            for r in range(r0, r1):
                fl = F[m, p, r]
                fh = F[m + 1, p, r]
                lm = -th * fl
                bm = 1.0 + th * (fl + fh + Q[m, p, r] - ak)
                um = -th * fh
                zr = 0.0
                if last:
                    if per:
                        b0 = 1.0 + th * (F[0, p, r] + F[1, p, r] + Q[0, p, r] - ak)
                        bm -= (-th * F[0, p, r]) * um / (-b0)
                        zr = um
                    um = 0.0
                d = 1.0 / (bm - lm * cp[m - 1, p, r])
                lo[m, p, r] = lm
                dinv[m, p, r] = d
                cp[m, p, r] = um * d
                z[m, p, r] = (zr - lm * z[m - 1, p, r]) * d
    for m in range(n - 2, -1, -1):
        for p in range(p0, p1):
            for r in range(r0, r1):
                z[m, p, r] -= cp[m, p, r] * z[m + 1, p, r]
    if per:
        for p in range(p0, p1):
            for r in range(r0, r1):
                zfac[p, r] = 1.0 / (1.0 + z[0, p, r] + v[p, r] * z[n - 1, p, r])


@kernel(_nrt=False)
def _line_factor(F: np.ndarray, Q: np.ndarray, th: float, ak: float, per: bool, lo: np.ndarray,
                 dinv: np.ndarray, cp: np.ndarray, z: np.ndarray, v: np.ndarray,
                 zfac: np.ndarray, block: int) -> None:  # fmt: skip
    """Thomas factors of rows ``lo_m x_{m-1} + b_m x_m + up_m x_{m+1}`` with
    ``lo_m = -th F[m]``, ``up_m = -th F[m+1]``, ``b_m = 1 + th (F[m] + F[m+1] + Q[m] - ak)``.
    Cyclic (``per``): gamma = -b_0, b_0 -> b_0 - gamma, b_{n-1} -> b_{n-1} - lo_0 up_{n-1} /
    gamma, and z solves the modified system for (gamma, 0, ..., 0, up_{n-1}).  ``block`` as in
    :func:`_line_solve` (0: all of P at once, plane by plane)."""
    _, P, R = Q.shape
    if block == 0:
        _factor_lines(F, Q, th, ak, per, lo, dinv, cp, z, v, zfac, 0, P, 0, R)
        return
    for p in range(P):
        for r0 in range(0, R, block):
            r1 = min(r0 + block, R)
            _factor_lines(F, Q, th, ak, per, lo, dinv, cp, z, v, zfac, p, p + 1, r0, r1)


@kernel(_nrt=False)
def _line_solve(U: np.ndarray, Y: np.ndarray, F: np.ndarray, Q: np.ndarray, th: float,
                ak: float, per: bool, lo: np.ndarray, dinv: np.ndarray, cp: np.ndarray,
                z: np.ndarray, v: np.ndarray, zfac: np.ndarray, block: int,
                out: np.ndarray) -> None:  # fmt: skip
    """Solve (I - th A) x = Y - th A U along axis 0 of (n, P, R) arrays with the factors of
    :func:`line_factors`; ``(A x)_m = F[m] (x_{m-1} - x_m) + F[m+1] (x_{m+1} - x_m)
    - (Q[m] - ak) x_m``.

    ``block == 0``: plane by plane (the axis is not the innermost in memory: every sweep reads
    whole planes in order).  ``block > 0``: lines contiguous in memory, ``block`` of them at a
    time along R (their recurrences overlap; more would let the power-of-two strides of the
    arrays evict each other from cache).
    """
    n, P, R = U.shape
    if block == 0:
        for m in range(n):
            mm = m - 1 if m > 0 else (n - 1 if per else m)
            mp = m + 1 if m < n - 1 else (0 if per else m)
            for p in range(P):
                for r in range(R):
                    c = U[m, p, r]
                    Ax = (F[m, p, r] * (U[mm, p, r] - c) + F[m + 1, p, r] * (U[mp, p, r] - c)
                          - (Q[m, p, r] - ak) * c)  # fmt: skip
                    d = Y[m, p, r] - th * Ax
                    if m > 0:
                        d -= lo[m, p, r] * out[m - 1, p, r]
                    out[m, p, r] = d * dinv[m, p, r]
        for m in range(n - 2, -1, -1):
            for p in range(P):
                for r in range(R):
                    out[m, p, r] -= cp[m, p, r] * out[m + 1, p, r]
        if per:
            for p in range(P):
                for r in range(R):
                    fact = (out[0, p, r] + v[p, r] * out[n - 1, p, r]) * zfac[p, r]
                    for m in range(n):
                        out[m, p, r] -= fact * z[m, p, r]
        return
    for p in range(P):
        for r0 in range(0, R, block):
            r1 = min(r0 + block, R)
            for m in range(n):
                mm = m - 1 if m > 0 else (n - 1 if per else m)
                mp = m + 1 if m < n - 1 else (0 if per else m)
                for r in range(r0, r1):
                    c = U[m, p, r]
                    Ax = (F[m, p, r] * (U[mm, p, r] - c) + F[m + 1, p, r] * (U[mp, p, r] - c)
                          - (Q[m, p, r] - ak) * c)  # fmt: skip
                    d = Y[m, p, r] - th * Ax
                    if m > 0:
                        d -= lo[m, p, r] * out[m - 1, p, r]
                    out[m, p, r] = d * dinv[m, p, r]
            for m in range(n - 2, -1, -1):
                for r in range(r0, r1):
                    out[m, p, r] -= cp[m, p, r] * out[m + 1, p, r]
            if per:
                for r in range(r0, r1):
                    fact = (out[0, p, r] + v[p, r] * out[n - 1, p, r]) * zfac[p, r]
                    for m in range(n):
                        out[m, p, r] -= fact * z[m, p, r]


@kernel(_nrt=False)
def euler_loop(u: np.ndarray, w: np.ndarray, uniform: bool, coef: np.ndarray, F0: np.ndarray,
               F1: np.ndarray, F2: np.ndarray, per: np.ndarray, a: np.ndarray, dt: float,
               n: int, bs: np.ndarray, bi: np.ndarray, bp: np.ndarray, bq: np.ndarray,
               src: np.ndarray, has_src: bool) -> bool:  # fmt: skip
    """``n`` forward-Euler steps of the affine part (diffusion, boundary faces, constant decay
    ``a`` and sources), alternating between ``u`` and ``w``; True when the result is in ``w``."""
    ns = u.shape[0]
    a_ = u
    b_ = w
    for _ in range(n):
        if uniform:
            _apply_uniform(a_, coef, per, a, 1.0, dt, b_)
        else:
            _apply_general(a_, F0, F1, F2, per, a, 1.0, dt, b_)
        af = a_.reshape(ns, -1)
        bf = b_.reshape(ns, -1)
        if bi.shape[0]:
            _boundary(af, bs, bi, bp, bq, dt, 1.0, bf)
        if has_src:
            for s in range(ns):
                for P in range(bf.shape[1]):
                    bf[s, P] += dt * src[s, P]
        a_, b_ = b_, a_
    return n % 2 == 1


def _block(op: DiffusionOperator, k: int) -> int:
    """How :func:`_line_solve` and :func:`_line_factor` traverse the lines of padded axis k.

    Axis 0 (and axis 1 of a 2-D grid): plane by plane (0).  Axis 1 of a 3-D grid: row by row, a
    whole row of the last axis at a time.
    Lines along the last axis are contiguous but neighbouring lines lie a row apart: a few at a
    time overlap their recurrences, more let the power-of-two strides of the arrays evict each
    other from cache (measured on 256^2 and 128^3: 4 resp. 2 lines are best).
    """
    if k == 0 or (k == 1 and op.shape3[0] == 1):
        return 0
    if k == 1:
        return op.shape3[2]
    return 4 if op.shape3[0] == 1 else 2


def adi_axis_solve(
    op: DiffusionOperator,
    k: int,
    s: int,
    u: np.ndarray,
    y: np.ndarray,
    th: float,
    ak: float,
    out: np.ndarray,
    factors: LineFactors,
) -> None:
    """One Douglas ADI sweep along padded axis ``k`` for species ``s``:
    solve ``(I - th A_k) out = y - th A_k u`` (arrays ``(n0, n1, n2)``) with ``factors`` from
    :func:`line_factors` (same ``th`` and ``ak``)."""
    order = {0: (0, 1, 2), 1: (1, 0, 2), 2: (2, 0, 1)}[k]
    F = op.faces(k)[s].transpose(order)
    Q = op.q_axis[k][s].transpose(order)
    f = factors
    block = _block(op, k)
    _line_solve(
        u.transpose(order), y.transpose(order), F, Q, th, ak, f.periodic, f.lo.transpose(order),
        f.dinv.transpose(order), f.cp.transpose(order), f.z.transpose(order), f.v, f.zfac, block,
        out.transpose(order),
    )  # fmt: skip


# =============================================================================================
# Plain NumPy reference


def apply_reference(op: DiffusionOperator, u: np.ndarray) -> np.ndarray:
    """L u (diffusion and boundary influx, ``(ns, n0, n1, n2)``) face by face, in NumPy."""
    out = np.zeros_like(u)
    ns = u.shape[0]
    for s in range(ns):
        for k in range(3):
            n_k = op.shape3[k]
            F = op.faces(k)[s]
            for m in range(1, n_k):
                a = np.take(u[s], m - 1, axis=k)
                b = np.take(u[s], m, axis=k)
                flux = np.take(F, m, axis=k) * (b - a)  # from cell m to m-1
                _add_slice(out[s], k, m - 1, flux)
                _add_slice(out[s], k, m, -flux)
            if n_k > 1 and op.periodic[s, k]:
                a = np.take(u[s], n_k - 1, axis=k)
                b = np.take(u[s], 0, axis=k)
                flux = np.take(F, 0, axis=k) * (b - a)
                _add_slice(out[s], k, n_k - 1, flux)
                _add_slice(out[s], k, 0, -flux)
    flat = out.reshape(ns, -1)
    uf = u.reshape(ns, -1)
    for e in range(op.b_index.shape[0]):
        s, P = op.b_species[e], op.b_index[e]
        flat[s, P] += op.b_p[e] - op.b_q[e] * uf[s, P]
    return out


def _add_slice(arr: np.ndarray, axis: int, m: int, values: np.ndarray) -> None:
    sl: list[slice | int] = [slice(None)] * arr.ndim
    sl[axis] = m
    arr[tuple(sl)] += values
