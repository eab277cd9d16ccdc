"""The Result type: layout, run statistics, CSV / NetCDF round trips, atomic saving, figures."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection

from scalebridge.errors import InputError, OptionError
from scalebridge.provenance import package_versions
from scalebridge.results import Result

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DSMTS = Path(__file__).resolve().parents[1] / "data" / "dsmts"

# Doubles whose shortest decimal form needs all 17 digits, extremes, a subnormal, signed zero.
TRICKY = np.array(
    [
        0.1,
        1 / 3,
        2 / 3,
        math.pi,
        -math.e,
        1e-300,
        5e-324,
        1.7976931348623157e308,
        -0.0,
        0.30000000000000004,
        123456789.12345679,
        np.nextafter(1.0, 2.0),
    ]
)


def deterministic(n_time: int = 12) -> Result:
    t = np.linspace(0.0, 2.0, n_time)
    return Result.from_arrays(
        t,
        {"S1": np.exp(-t), "S2": TRICKY[:n_time], "n": np.arange(n_time) * 7},
        runs=False,
        units={"S1": "mole / litre", "S2": None},
        kinds={"S1": "species", "S2": "species", "n": "parameter"},
        quantities={"S1": "concentration", "S2": "amount"},
        stats={"method": "ode", "options": {"rtol": 1e-10, "atol": 1e-12}, "steps": 57},
    )


def arithmetic_ensemble(n_runs: int = 5, n_time: int = 4) -> Result:
    """x_r(t) = c(t) + r for r = 0..R-1: mean c + (R-1)/2, sample variance R(R+1)/12."""
    t = np.arange(n_time, dtype=float)
    r = np.arange(n_runs)[:, None]
    return Result.from_arrays(
        t,
        {"A": 10.0 * t[None, :] + r, "B": -(t[None, :] ** 2) + 3 * r},
        runs=True,
        stats={"method": "ssa", "seed": 7, "events": 1234},
    )


# ---------------------------------------------------------------------- layout
def test_from_arrays_layout_attrs_and_stats():
    res = deterministic()
    assert res.variables == ["S1", "S2", "n"]
    assert len(res) == 3 and list(res) == ["S1", "S2", "n"] and "S1" in res
    assert res.n_runs is None
    assert res["S1"].dims == ("time",)
    np.testing.assert_array_equal(res.time, np.linspace(0.0, 2.0, 12))
    assert res["S1"].attrs == {
        "units": "mole / litre",
        "kind": "species",
        "quantity": "concentration",
    }
    assert res["S2"].attrs == {"kind": "species", "quantity": "amount"}  # None unit: unknown
    assert res["n"].dtype == np.int64
    assert res.data.attrs == {"method": "ode", "seed": None}
    assert res.stats["method"] == "ode" and res.stats["seed"] is None
    assert res.stats["options"] == {"rtol": 1e-10, "atol": 1e-12}
    assert res.stats["versions"] == package_versions()
    assert res.stats["wall_time_s"] is None and res.stats["steps"] == 57


def test_stacked_array_input_matches_dict_input():
    rng = np.random.default_rng(3)
    t = np.linspace(0, 1, 6)
    block = rng.normal(size=(4, 6, 3))
    stacked = Result.from_arrays(t, (["a", "b", "c"], block), runs=True, stats={"seed": 1})
    as_dict = Result.from_arrays(
        t, {k: block[..., i] for i, k in enumerate("abc")}, runs=True, stats={"seed": 1}
    )
    assert stacked.data.identical(as_dict.data)
    assert stacked["b"].dims == ("run", "time") and stacked.n_runs == 4
    np.testing.assert_array_equal(stacked.data["run"], np.arange(4))
    block[0, 0, 0] = 99.0  # the result holds copies
    assert stacked["a"].values[0, 0] != 99.0


@pytest.mark.parametrize(
    ("time", "values", "runs", "kwargs", "match"),
    [
        ([0, 1, 2], {"A": [1.0, 2.0]}, False, {}, "'A'"),
        ([0, 1], {"A": [[1.0, 2.0]]}, False, {}, "'A'"),
        ([0, 1], {"A": [[1, 2]], "B": [[1, 2], [3, 4]]}, True, {}, "numbers of runs"),
        ([0, 1], (["A", "B"], np.zeros((2, 3))), False, {}, "var=2"),
        ([0, 1], (["A", "A"], np.zeros((2, 2))), False, {}, "duplicate"),
        ([1, 0], {"A": [1.0, 2.0]}, False, {}, "non-decreasing"),
        ([0, np.nan], {"A": [1.0, 2.0]}, False, {}, "non-finite"),
        ([0, 1], {"time": [1.0, 2.0]}, False, {}, "reserved"),
        ([0, 1], {"A": [1.0, 2.0]}, False, {"units": {"Z": "s"}}, "'Z'"),
        ([0, 1], {"A": [1.0, 2.0]}, False, {"quantities": {"A": "moles"}}, "quantity of 'A'"),
    ],
)
def test_from_arrays_rejects_bad_input(time, values, runs, kwargs, match):
    with pytest.raises(OptionError, match=match):
        Result.from_arrays(time, values, runs=runs, **kwargs)


def test_constructor_checks():
    good = deterministic().data
    with pytest.raises(OptionError, match="time"):
        Result(xr.Dataset({"A": ("t", [1.0, 2.0])}))
    with pytest.raises(OptionError, match="method"):
        Result(good, {"method": "ssa"})  # data attrs say "ode"
    # Missing required stats are filled in; data attrs follow stats.
    res = Result(good.drop_attrs(), {"method": "cle", "seed": 3})
    assert res.data.attrs == {"method": "cle", "seed": 3}
    assert set(res.stats) >= {"method", "options", "seed", "versions", "wall_time_s"}


def test_getitem_and_sel_vars():
    res = deterministic()
    sub = res.sel_vars(["n", "S1"])
    assert sub.variables == ["n", "S1"]
    assert sub["S1"].identical(res["S1"])
    assert sub.stats == res.stats and sub.stats is not res.stats
    assert res.sel_vars("S2").variables == ["S2"]
    with pytest.raises(OptionError, match="'nope'"):
        res.sel_vars(["S1", "nope"])
    with pytest.raises(OptionError, match="'missing'"):
        res["missing"]


# ---------------------------------------------------------------------- statistics
def test_mean_and_sd_of_arithmetic_runs():
    R = 5
    res = arithmetic_ensemble(n_runs=R)
    t = res.time
    mean, sd = res.mean(), res.sd()
    assert mean["A"].dims == ("time",) and sd["A"].dims == ("time",)
    np.testing.assert_allclose(mean["A"], 10 * t + (R - 1) / 2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mean["B"], -(t**2) + 3 * (R - 1) / 2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sd["A"], np.sqrt(R * (R + 1) / 12), rtol=1e-14)
    np.testing.assert_allclose(sd["B"], 3 * np.sqrt(R * (R + 1) / 12), rtol=1e-14)


def test_mean_and_sd_match_numpy_and_propagate_nan():
    rng = np.random.default_rng(11)
    block = rng.poisson(20.0, size=(50, 9, 2))
    res = Result.from_arrays(np.arange(9.0), (["X", "Y"], block), runs=True)
    np.testing.assert_allclose(res.mean()["Y"], block[..., 1].mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(res.sd()["X"], block[..., 0].std(axis=0, ddof=1), rtol=1e-14)
    floats = block.astype(float)
    floats[3, 4, 0] = np.nan
    with_nan = Result.from_arrays(np.arange(9.0), (["X", "Y"], floats), runs=True)
    assert np.isnan(with_nan.mean()["X"][4]) and np.isnan(with_nan.sd()["X"][4])
    assert np.isfinite(with_nan.mean()["X"][3])


def test_single_trajectory_mean_is_data_and_sd_is_zero():
    res = deterministic()
    assert res.mean().identical(res.data)
    sd = res.sd()
    assert all((sd[v] == 0).all() and sd[v].dtype == np.float64 for v in res.variables)
    assert sd["S1"].attrs["units"] == "mole / litre"
    one = Result.from_arrays([0.0, 1.0], {"X": [[4, 5]]}, runs=True)
    assert one.n_runs == 1
    np.testing.assert_array_equal(one.mean()["X"], [4, 5])
    assert one.mean()["X"].dims == ("time",)
    np.testing.assert_array_equal(one.sd()["X"], [0.0, 0.0])


# ---------------------------------------------------------------------- CSV
def read_csv_independently(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array([[float(x) for x in row] for row in rows[1:]])


def test_csv_deterministic_round_trip_is_exact(tmp_path):
    res = deterministic()
    path = tmp_path / "det.csv"
    res.to_csv(path)
    header, table = read_csv_independently(path)
    assert header == ["time", "S1", "S2", "n"]
    # Every double survives the text form bit for bit (repr-level precision).
    for j, name in enumerate(["S1", "S2", "n"], start=1):
        assert table[:, j].tobytes() == res[name].values.astype(float).tobytes(), name
    assert table[:, 0].tobytes() == res.time.tobytes()
    back = Result.from_csv(path)
    assert back.variables == res.variables
    for name in res.variables:
        assert back[name].values.tobytes() == res[name].values.tobytes()
        assert back[name].dtype == res[name].dtype
    assert back.stats["source"] == str(path) and back.stats["method"] is None


def test_csv_non_finite_values(tmp_path):
    res = Result.from_arrays([0.0, 1.0, 2.0], {"X": [np.nan, np.inf, -np.inf]}, runs=False)
    res.to_csv(tmp_path / "nf.csv")
    back = Result.from_csv(tmp_path / "nf.csv")
    x = back["X"].values
    assert np.isnan(x[0]) and x[1] == np.inf and x[2] == -np.inf


def test_csv_ensemble_uses_dsmts_layout(tmp_path):
    rng = np.random.default_rng(5)
    block = rng.normal(3.0, 2.0, size=(40, 7, 2))
    res = Result.from_arrays(np.linspace(0, 6, 7), (["X", "Sink"], block), runs=True)
    path = tmp_path / "ens.csv"
    res.to_csv(path)
    header, table = read_csv_independently(path)
    assert header == ["time", "X-mean", "Sink-mean", "X-sd", "Sink-sd"]
    np.testing.assert_array_equal(table[:, 0], np.linspace(0, 6, 7))
    np.testing.assert_allclose(table[:, 1], block[..., 0].mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(table[:, 2], block[..., 1].mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(table[:, 3], block[..., 0].std(axis=0, ddof=1), rtol=1e-13)
    np.testing.assert_allclose(table[:, 4], block[..., 1].std(axis=0, ddof=1), rtol=1e-13)
    assert list(res.to_dataframe().columns) == header


def test_csv_of_one_run_is_the_trajectory(tmp_path):
    res = Result.from_arrays([0.0, 0.5, 1.0], {"X": [[3, 1, 4]], "Y": [[2, 7, 1]]}, runs=True)
    res.to_csv(tmp_path / "one.csv")
    header, table = read_csv_independently(tmp_path / "one.csv")
    assert header == ["time", "X", "Y"]
    np.testing.assert_array_equal(table[:, 1:], [[3, 2], [1, 7], [4, 1]])


def test_from_csv_reads_dsmts_reference_file():
    """DSMTS 00001, birth-death X -> 2X (lambda = 0.1), X -> 0 (mu = 0.11), X(0) = 100.

    With g = e^{(lambda-mu) t}: E[X] = X0 g, Var X = X0 (lambda+mu)/(lambda-mu) g (g - 1).
    The file gives mean and sd to five decimals."""
    res = Result.from_csv(DSMTS / "00001" / "00001-results.csv")
    assert res.variables == ["X-mean", "X-sd"]
    t = res.time
    assert t.dtype == np.float64 and t[0] == 0.0 and t[-1] == 50.0
    g = np.exp(-0.01 * t)
    np.testing.assert_allclose(res["X-mean"], 100 * g, rtol=0, atol=6e-6)
    np.testing.assert_allclose(res["X-sd"], np.sqrt(100 * 0.21 / -0.01 * g * (g - 1)), atol=6e-6)


def test_from_csv_errors(tmp_path):
    with pytest.raises(InputError, match=r"missing\.csv"):
        Result.from_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("t,X\n0,1\n")
    with pytest.raises(InputError, match="first column"):
        Result.from_csv(bad)
    bad.write_text("time,X\n0,a\n")
    with pytest.raises(InputError, match="'X'"):
        Result.from_csv(bad)


# ---------------------------------------------------------------------- NetCDF
def test_netcdf_round_trip_restores_data_and_stats(tmp_path):
    stats = {
        "method": "ode",
        "options": {"rtol": 1e-10, "max_steps": 10**6, "nested": {"a": [1, 2.5, None], "f": True}},
        "seed": None,
        "wall_time_s": 0.1234567890123,
        "steps": 57,
        "limit": math.inf,
    }
    res = Result(deterministic().data.drop_attrs(), stats)
    path = tmp_path / "det.nc"
    res.to_netcdf(path)
    back = Result.from_netcdf(path)
    assert back.data.identical(res.data)
    assert back.stats == res.stats
    assert back.stats["versions"] == package_versions()


def test_netcdf_round_trip_of_ensemble_with_numpy_options(tmp_path):
    rng = np.random.default_rng(2)
    block = rng.poisson(7.0, size=(6, 5, 2))
    big_seed = 2**100 + 12345  # SeedSequence entropy exceeds 64 bits
    options = {
        "tol": np.float64(0.1),
        "n": np.int64(7),
        "flag": np.bool_(True),
        "grid": np.array([[1.5, 2.0], [3.0, 1 / 3]]),
        "steps": (1, 2),
    }
    res = Result.from_arrays(
        np.linspace(0, 1, 5),
        (["P", "P2"], block),
        runs=True,
        units={"P": "item"},
        kinds={"P": "species", "P2": "species"},
        stats={"method": "ssa", "seed": big_seed, "options": options, "events": np.int64(901)},
    )
    path = tmp_path / "ens.nc"
    res.to_netcdf(path)
    back = Result.from_netcdf(path)
    assert back.data.identical(res.data)
    assert back["P"].dtype == np.int64 and back.n_runs == 6
    assert back.stats["seed"] == big_seed and back.data.attrs["seed"] == big_seed
    opts = back.stats["options"]
    assert opts["tol"] == 0.1 and type(opts["tol"]) is float
    assert opts["n"] == 7 and type(opts["n"]) is int
    assert opts["flag"] is True
    assert isinstance(opts["grid"], np.ndarray) and opts["grid"].dtype == np.float64
    assert opts["grid"].tobytes() == options["grid"].tobytes()
    assert opts["steps"] == [1, 2]  # JSON has no tuples
    assert back.stats["events"] == 901
    np.testing.assert_array_equal(back.mean()["P"], block[..., 0].mean(axis=0))


def test_from_netcdf_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"gone\.nc"):
        Result.from_netcdf(tmp_path / "gone.nc")


# ---------------------------------------------------------------------- atomic saving
def _failing_writer(*args, **kwargs):
    # Writes part of the output to the path it was given, then fails.
    target = next(a for a in [*args, *kwargs.values()] if isinstance(a, str | Path))
    Path(target).write_bytes(b"partial")
    raise RuntimeError("disk on fire")


@pytest.mark.parametrize(
    ("owner", "name", "filename", "save"),
    [
        (pd.DataFrame, "to_csv", "out.csv", lambda r, p: r.to_csv(p)),
        (xr.Dataset, "to_netcdf", "out.nc", lambda r, p: r.to_netcdf(p)),
        (matplotlib.figure.Figure, "savefig", "out.png", lambda r, p: r.plot(p)),
    ],
)
def test_failed_write_leaves_existing_output_and_no_temp(
    tmp_path, monkeypatch, owner, name, filename, save
):
    res = arithmetic_ensemble()
    target = tmp_path / filename
    target.write_bytes(b"previous result")

    def failing(self, *args, **kwargs):
        _failing_writer(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save(res, target)
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == [filename]


def test_write_into_missing_directory_names_path(tmp_path):
    res = deterministic()
    with pytest.raises(OptionError, match="nodir"):
        res.to_csv(tmp_path / "nodir" / "x.csv")
    with pytest.raises(OptionError, match="nodir"):
        res.to_netcdf(tmp_path / "nodir" / "x.nc")


# ---------------------------------------------------------------------- figures
def test_plot_writes_png(tmp_path):
    path = tmp_path / "traj.png"
    fig = deterministic().plot(path, vars=["S1", "n"], title="decay")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    (ax,) = fig.axes
    assert ax.get_title() == "decay"
    assert [line.get_label() for line in ax.get_lines()] == ["S1", "n"]
    assert [p.name for p in tmp_path.iterdir()] == ["traj.png"]


def test_plot_ensemble_draws_mean_and_sd_band():
    res = arithmetic_ensemble(n_runs=5)
    fig = res.plot(vars="A")
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), 10 * res.time + 2.0)
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    ys = band.get_paths()[0].vertices[:, 1]
    s = np.sqrt(5 * 6 / 12)
    assert ys.min() == pytest.approx(2.0 - s) and ys.max() == pytest.approx(10 * 3 + 2.0 + s)


def test_plot_into_given_axes_and_bad_format(tmp_path):
    fig = matplotlib.figure.Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    assert deterministic().plot(ax=ax) is fig
    assert len(ax.get_lines()) == 3
    with pytest.raises(OptionError, match="'xyz'"):
        deterministic().plot(tmp_path / "fig.xyz")
    with pytest.raises(OptionError, match="'Q'"):
        deterministic().plot(vars=["Q"])
    assert list(tmp_path.iterdir()) == []
