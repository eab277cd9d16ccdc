"""The ``scalebridge`` command.

::

    scalebridge [--debug] simulate MODEL [--method M] --t-end T [--n-points N] [--runs R]
                [--seed S] [--workers W] [--scheduler ADDRESS] [--chunk-size N]
                [--progress/--no-progress] [--vars A,B] [--units model|amount|concentration]
                [--param k=v ...] [--out FILE.csv|FILE.nc] [--plot FILE.png] [--rtol X]
                [--atol X] [--counts-per-amount X] [--variant V] [--record-events] [--dt X]
                [--scheme S] [--tol X] [--option NAME=VALUE ...]
    scalebridge info MODEL [--json]
    scalebridge steady-state MODEL [--param k=v ...] [--json]
    scalebridge analyze MODEL [--lna] [--regimes] [--reduce S,T|auto] [--t-end T] [--out FILE.xml]
                [--json]
    scalebridge convert MODEL [--to sbml|antimony] --out FILE
    scalebridge run SCENARIO.yaml [--out DIR]
    scalebridge identifiability MODEL [--output NAME=EXPR ...] [--time-budget S] [--seed N] [--json]
    scalebridge petab PROBLEM.yaml [--llh] [--fit --starts N] [--fim] [--profile] [--datasets]
                [--out DIR] [--json]
    scalebridge demo [NAME] [--out DIR]

Conventions
-----------
* Exit status: 0 on success; 2 for bad input or options, found before anything is simulated
  (:class:`~scalebridge.errors.InputError`, and click's own usage errors); 3 for a failure during
  a run (:class:`~scalebridge.errors.SolverError`); 130 on Ctrl-C; 1 for anything else (a bug).
* An error is ONE line on stderr, ``scalebridge: error: <where>: <reason>``, where ``<where>`` is
  the file and element (or the option) at fault.  No traceback unless the global ``--debug``
  option is given, which prints the traceback before that line.
* Options are checked before the model is simulated: the output suffixes, the output directories,
  ``--vars`` and ``--param`` names, and the method with its options.  Methods are passed through
  to :func:`scalebridge.simulate` by name; which of them exist in this version is its business
  (see :mod:`scalebridge.methods`).  Method options have flags of their own where they are
  common (``--rtol``, ``--variant``, ``--dt``, ...) and otherwise go through
  ``--option NAME=VALUE``, whose value is read as a literal (a number, true/false, or a word such
  as ``composition-rejection``), never evaluated.
* Stochastic ensembles (``--runs``): Ctrl-C stops the ensemble, writes the runs already finished
  to ``--out`` (or stdout), says how many, and exits with status 130.
* Files are written atomically (temporary file + rename), so a failure never leaves a partial file.

The command is a :class:`click.Group` whose :meth:`ScalebridgeGroup.main` owns the error handling,
so the console script, ``python -m scalebridge`` and click's test runner all behave the same.
Heavy modules (NumPy, xarray, libSBML, numba) are imported inside the commands, which keeps
``--help`` fast.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from . import methods as _methods
from .errors import InputError, ModelError, OptionError, ScalebridgeError, SolverError

if TYPE_CHECKING:
    from .model.network import ReactionNetwork

__all__ = ["EXIT_FAILURE", "EXIT_INPUT", "EXIT_INTERRUPT", "EXIT_SOLVER", "cli", "main"]

PROG = "scalebridge"
# click >= 8.2 raises this for a bare `scalebridge`; older versions print the help and exit 0.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())
EXIT_INPUT = 2
EXIT_SOLVER = 3
EXIT_FAILURE = 1
EXIT_INTERRUPT = 130  # 128 + SIGINT, as shells report it

OUTPUT_SUFFIXES = {".csv": "CSV table", ".nc": "NetCDF"}
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
CONVERT_TARGETS = ("sbml", "antimony")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")


def _one_line(text: str) -> str:
    """Collapse whitespace (libSBML and libAntimony messages span lines) into one line."""
    return " ".join(str(text).split())


def _methods_text() -> str:
    names = ", ".join(_methods.METHOD_NAMES)
    available = getattr(_methods, "AVAILABLE", _methods.METHOD_NAMES)
    if tuple(available) == tuple(_methods.METHOD_NAMES):
        return names
    return f"{names} (available in this version: {', '.join(available)})"


def _debug_requested(args: Sequence[str]) -> bool:
    # --debug is a global option: it stands before the command name.  Scanning the words
    # ourselves (rather than waiting for click) lets it apply to errors in parsing, too.
    for word in args:
        if word == "--":
            return False
        if word == "--debug":
            return True
        if not word.startswith("-"):
            return False
    return False


class ScalebridgeGroup(click.Group):
    """The top-level group; :meth:`main` maps exceptions to exit codes and one-line messages."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        code = run(self, argv, prog_name or PROG, **extra)
        if standalone_mode:
            sys.exit(code)
        return code


def run(command: click.Command, argv: list[str], prog_name: str = PROG, **extra: Any) -> int:
    """Run ``command`` on ``argv`` and return the exit status (see the module docstring)."""
    debug = _debug_requested(argv)
    try:
        with command.make_context(prog_name, argv, **extra) as ctx:
            command.invoke(ctx)
        return 0
    except click.exceptions.Exit as e:  # --help, --version
        return int(e.exit_code)
    except _NO_ARGS_IS_HELP as e:
        # A bare `scalebridge` asks what the command can do: the help is the answer.
        click.echo(e.ctx.get_help() if e.ctx is not None else e.format_message())
        return 0
    except click.UsageError as e:
        return _report(_usage_message(e), EXIT_INPUT, debug)
    except click.ClickException as e:
        return _report(_one_line(e.format_message()), e.exit_code, debug)
    except (KeyboardInterrupt, click.exceptions.Abort):
        return _report("interrupted", EXIT_INTERRUPT, debug, prefix="")
    except BrokenPipeError:
        # The reader went away (`scalebridge simulate ... | head`): not an error worth a
        # message.  Point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    except InputError as e:
        return _report(str(e), EXIT_INPUT, debug)
    except SolverError as e:
        return _report(_solver_message(e), EXIT_SOLVER, debug)
    except ScalebridgeError as e:
        return _report(str(e), EXIT_FAILURE, debug)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        return _report(f"{where}{e.strerror or e}", EXIT_FAILURE, debug)
    except Exception as e:  # a bug: say so, and how to see the traceback
        msg = f"internal error: {type(e).__name__}: {e}"
        if not debug:
            msg += " (run with --debug for the traceback, and please report it)"
        return _report(msg, EXIT_FAILURE, debug)


def _report(message: str, code: int, debug: bool, *, prefix: str = "error: ") -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    click.echo(f"{PROG}: {prefix}{_one_line(message)}", err=True)
    return code


def _usage_message(e: click.UsageError) -> str:
    path = e.ctx.command_path if e.ctx is not None else PROG
    return f"{path}: {_one_line(e.format_message())} (see '{path} --help')"


def _solver_message(e: SolverError) -> str:
    msg = str(e)
    if e.variable and f"'{e.variable}'" not in msg:
        msg += f" (variable '{e.variable}')"
    if e.time is not None and "t = " not in msg:
        msg += f" (t = {e.time:g})"
    return msg


@contextmanager
def _where(prefix: str) -> Iterator[None]:
    """Re-raise an :class:`InputError` as one that starts with ``prefix`` (file, option)."""
    try:
        yield
    except ModelError as e:
        if e.source:  # already names its file
            raise
        raise OptionError(f"{prefix}: {e}") from e
    except InputError as e:
        raise OptionError(f"{prefix}: {e}") from e


def _load(path: str) -> ReactionNetwork:
    from .api import load

    return load(path)


# ==================================================================================================
# The group
# ==================================================================================================
_HELP = f"""Multiscale biomedical modelling: simulate reaction networks, describe and convert
models, and run the built-in demos.

Models are read by suffix: SBML (.xml, .sbml), Antimony (.ant, .antimony) or the ODE text
format (.ode, .txt).

\b
Methods (simulate --method):
  {_methods_text()}

\b
Exit status:
  0 success; 2 bad input or options (one line on stderr, nothing simulated);
  3 a run failed (the variable and the time are named); 130 interrupted.

\b
Examples:
  scalebridge demo                              # built-in example, files in ./out
  scalebridge info model.xml                    # what is in a model
  scalebridge simulate model.xml --t-end 100 --n-points 201 --out run.csv
  scalebridge simulate model.xml --method ssa --t-end 50 --runs 10000 --seed 1 --out ssa.csv
  scalebridge analyze model.xml --lna --json     # noise in molecule counts
  scalebridge convert model.xml --out model.ant # SBML to Antimony
"""


@click.group(
    PROG,
    cls=ScalebridgeGroup,
    help=_HELP,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(
    __version__, "-V", "--version", prog_name=PROG, message="%(prog)s %(version)s"
)
@click.option(
    "--debug",
    is_flag=True,
    help="On an error, print the full traceback before the one-line message.",
)
def cli(debug: bool) -> None:
    # --debug is read from the argument list by run() (so it covers parsing errors too).
    del debug


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: run the command line and exit with its status."""
    cli.main(args=argv, prog_name=PROG)
    raise AssertionError("unreachable: cli.main exits")  # pragma: no cover


# ==================================================================================================
# simulate
# ==================================================================================================
def _parse_params(items: Sequence[str]) -> dict[str, float]:
    """``k=v`` items to a dict; values are plain numbers (no expressions, nothing evaluated)."""
    from .model.parse import parse_number

    out: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        where = f"--param {item}"
        if not sep or not name or not text:
            raise OptionError(f"{where}: expected NAME=VALUE, e.g. --param k1=0.5")
        if not _PARAM_NAME.match(name):
            raise OptionError(f"{where}: '{name}' is not a model identifier")
        try:
            value = parse_number(text)
        except ModelError:
            raise OptionError(f"{where}: '{text}' is not a number") from None
        if not math.isfinite(value):
            raise OptionError(f"{where}: the value must be finite")
        if name in out:
            raise OptionError(f"{where}: '{name}' is given twice")
        out[name] = value
    return out


def _option_value(text: str, where: str) -> bool | int | float | str:
    """A literal option value: true/false, an integer, a number, or a plain word (a choice such
    as ``composition-rejection``).  Nothing is evaluated."""
    from .model.parse import parse_number

    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if _INTEGER.match(text):
        return int(text)
    try:
        value = parse_number(text)
    except ModelError:
        if _WORD.match(text):
            return text
        raise OptionError(
            f"{where}: '{text}' is not a number, true/false or a plain word"
        ) from None
    if not math.isfinite(value):
        raise OptionError(f"{where}: the value must be finite")
    return value


def _parse_options(items: Sequence[str], flags: Mapping[str, Any]) -> dict[str, Any]:
    """``--option NAME=VALUE`` items plus the method-option flags that were given."""
    out: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        where = f"--option {item}"
        if not sep or not name or not text:
            raise OptionError(f"{where}: expected NAME=VALUE, e.g. --option epsilon=0.01")
        if not _OPTION_NAME.match(name):
            raise OptionError(f"{where}: '{name}' is not an option name")
        key = name.replace("-", "_")
        if key in out:
            raise OptionError(f"{where}: option '{key}' is given twice")
        out[key] = _option_value(text, where)
    return out


def _coerce_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Match literal values to the method's declared option types: a whole number given for an
    integer option becomes an int (``1e6``), an integer for a float option a float."""
    import dataclasses

    try:
        cls = _methods.method_class(method)
    except OptionError:
        return options  # get_method reports it
    if not dataclasses.is_dataclass(cls):
        return options
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    out = dict(options)
    for key, value in options.items():
        kind = types.get(key, "")
        if isinstance(value, bool):
            continue
        if kind.startswith("int") and isinstance(value, float) and value.is_integer():
            out[key] = int(value)
        elif kind.startswith("float") and isinstance(value, int):
            out[key] = float(value)
    return out


def _check_params(net: ReactionNetwork, model: str, params: Mapping[str, float]) -> None:
    for name in params:
        if net.kind_of(name) not in ("parameter", "compartment", "species"):
            raise OptionError(
                f"{model}: --param {name}: the model has no parameter, compartment or species "
                f"named '{name}'"
            )


def _parse_vars(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [v.strip() for v in text.split(",")]
    if not all(names):
        raise OptionError(f"--vars '{text}': expected names separated by commas, e.g. --vars A,B")
    return names


def _check_writable(path: Path, option: str) -> None:
    parent = path.parent
    if path.is_dir():
        raise OptionError(f"{option} {path}: is a directory")
    if not parent.is_dir():
        raise OptionError(f"{option} {path}: directory '{parent}' does not exist")
    if not os.access(parent, os.W_OK):
        raise OptionError(f"{option} {path}: directory '{parent}' is not writable")


def _check_out(out: str | None) -> Path | None:
    if out is None:
        return None
    p = Path(out)
    suffix = p.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        known = ", ".join(f"{s} ({what})" for s, what in OUTPUT_SUFFIXES.items())
        raise OptionError(f"--out {out}: unknown output format '{suffix or p.name}'; use {known}")
    _check_writable(p, "--out")
    return p


def _check_plot(plot: str | None) -> Path | None:
    if plot is None:
        return None
    p = Path(plot)
    if p.suffix.lower() not in PLOT_SUFFIXES:
        raise OptionError(
            f"--plot {plot}: unknown figure format '{p.suffix or p.name}'; use "
            f"{', '.join(PLOT_SUFFIXES[:-1])} or {PLOT_SUFFIXES[-1]}"
        )
    _check_writable(p, "--plot")
    return p


_SIMULATE_HELP = """Simulate MODEL with a method and write the trajectories.

MODEL is an SBML (.xml, .sbml), Antimony (.ant, .antimony) or ODE text (.ode, .txt) file.
The output has a column `time` and one column per reported variable (by default every
species; ensembles report X-mean and X-sd).  Without --out the CSV table goes to stdout.

Everything is checked before the run starts (file, method, options, names in --vars and
--param, output suffixes): such mistakes exit with status 2 and one line on stderr.  A run
that fails (a blow-up, a failed step) exits with status 3, naming the variable and the time.

Stochastic methods (ssa, tau-leap, cle) report molecule counts and run --runs trajectories,
on all local cores by default or on a Dask cluster (--scheduler); the same --seed gives the
same ensemble whatever the number of workers.  With more than one run the CSV holds X-mean
and X-sd per variable; the NetCDF file holds every run.  fsp computes the distribution itself:
--out FILE.nc holds the distribution and its moments, --out FILE.csv the moments.  Ctrl-C
during an ensemble writes the runs already finished and exits with status 130.

\b
Examples:
  scalebridge simulate model.xml --t-end 100 --n-points 201 --out run.csv
  scalebridge simulate model.ant --t-end 50 --vars A,B --param k1=0.5 --param A=10
  scalebridge simulate model.xml --t-end 10 --units amount --out run.nc --plot run.png
  scalebridge simulate model.xml --method ssa --t-end 50 --runs 10000 --seed 1 --out ssa.csv
  scalebridge simulate model.xml --method tau-leap --t-end 50 --runs 1000 --option epsilon=0.01
  scalebridge simulate model.xml --method fsp --t-end 50 --tol 1e-8 --out dist.nc
"""


@cli.command(
    "simulate", help=_SIMULATE_HELP, short_help="Simulate a model; write CSV, NetCDF, a figure."
)
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--method", "-m", default="ode", show_default=True, metavar="M",
    help=f"Simulation method: {', '.join(_methods.METHOD_NAMES)}.",
)  # fmt: skip
@click.option(
    "--t-end", "t_end", type=float, required=True, metavar="T",
    help="Final time (in the model's time units); the run starts at 0.",
)  # fmt: skip
@click.option(
    "--n-points", "n_points", type=click.IntRange(min=2), default=101, show_default=True,
    metavar="N", help="Number of equally spaced output times, both ends included.",
)  # fmt: skip
@click.option(
    "--runs", type=click.IntRange(min=1), default=None, metavar="R",
    help="Number of trajectories (stochastic methods). [default: 1]",
)  # fmt: skip
@click.option(
    "--seed", type=int, default=None, metavar="S",
    help="Random seed (stochastic methods); the same seed gives the same result. "
    "[default: fresh entropy]",
)  # fmt: skip
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, metavar="W",
    help="Threads running an ensemble on this machine (with --scheduler: chunks in flight). "
    "[default: all local cores]",
)  # fmt: skip
@click.option(
    "--scheduler", default=None, metavar="ADDRESS",
    help="Address of a Dask scheduler to run ensembles on, e.g. tcp://host:8786; or "
    "'processes' for a local cluster of --workers processes (for models with events, whose "
    "runs do not gain from threads).",
)  # fmt: skip
@click.option(
    "--chunk-size", "chunk_size", type=click.IntRange(min=1), default=None, metavar="N",
    help="Runs per chunk of an ensemble (the result does not depend on it). "
    "[default: adapted to the cost of a run]",
)  # fmt: skip
@click.option(
    "--progress/--no-progress", default=None,
    help="Show a progress bar for ensembles. [default: on a terminal, for runs projected to "
    "take more than a few seconds]",
)  # fmt: skip
@click.option(
    "--vars", "vars_", default=None, metavar="A,B",
    help="Variables to report, separated by commas: species, compartments, parameters "
    "(also those set by rules), reactions (their rates). [default: every species]",
)  # fmt: skip
@click.option(
    "--units", type=click.Choice(["model", "amount", "concentration"]), default="model",
    show_default=True,
    help="How species are reported: 'model' as the model defines them (concentration unless "
    "hasOnlySubstanceUnits), or all as amounts or all as concentrations.",
)  # fmt: skip
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE",
    help="Set a parameter, compartment size or species initial value (species in their own "
    "units); repeat for several.  VALUE is a plain number.",
)  # fmt: skip
@click.option(
    "--out", "-o", default=None, metavar="FILE",
    help="Write the result to FILE: .csv (table) or .nc (NetCDF with run statistics and "
    "provenance). [default: CSV to stdout]",
)  # fmt: skip
@click.option(
    "--plot", default=None, metavar="FILE.png",
    help="Also draw the trajectories into a PNG (.pdf and .svg work too).",
)  # fmt: skip
@click.option(
    "--rtol", type=float, default=None, metavar="X",
    help="Relative tolerance of the integrator. [default: the method's, 1e-6 for ode]",
)  # fmt: skip
@click.option(
    "--atol", type=float, default=None, metavar="X",
    help="Absolute tolerance of the integrator, in the states' units. "
    "[default: the method's, 1e-12 for ode]",
)  # fmt: skip
@click.option(
    "--counts-per-amount", "counts_per_amount", type=float, default=None, metavar="X",
    help="Stochastic methods: molecules per unit of amount (needed for models in moles, e.g. "
    "6.02214076e23). [default: 1, amounts are counts]",
)  # fmt: skip
@click.option(
    "--variant", default=None, metavar="V",
    help="ssa: 'direct', 'composition-rejection' or 'rssa' (the last two: nearly flat cost "
    "per event on large networks; rssa is the fastest there). [default: direct]",
)  # fmt: skip
@click.option(
    "--record-events", "record_events", is_flag=True, default=None,
    help="ssa: record every reaction event of one run instead of sampling the time grid.",
)  # fmt: skip
@click.option(
    "--dt", type=float, default=None, metavar="X",
    help="cle: the time step of the Langevin integrator.",
)  # fmt: skip
@click.option(
    "--scheme", default=None, metavar="S",
    help="cle: 'euler-maruyama' (weak order 1) or 'weak2' (weak order 2). "
    "[default: euler-maruyama]",
)  # fmt: skip
@click.option(
    "--tol", type=float, default=None, metavar="X",
    help="fsp: the truncation error allowed (probability leaving the projection). "
    "[default: 1e-6]",
)  # fmt: skip
@click.option(
    "--option", "options", multiple=True, metavar="NAME=VALUE",
    help="Any other option of the method, e.g. --option epsilon=0.01 (tau-leap); repeat for "
    "several.  VALUE is a number, true/false or a word.",
)  # fmt: skip
def simulate_cmd(
    model: str,
    method: str,
    t_end: float,
    n_points: int,
    runs: int | None,
    seed: int | None,
    workers: int | None,
    scheduler: str | None,
    vars_: str | None,
    units: str,
    params: tuple[str, ...],
    out: str | None,
    plot: str | None,
    rtol: float | None,
    atol: float | None,
    chunk_size: int | None,
    progress: bool | None,
    counts_per_amount: float | None,
    variant: str | None,
    record_events: bool | None,
    dt: float | None,
    scheme: str | None,
    tol: float | None,
    options: tuple[str, ...],
) -> None:
    # Cheap checks of the options first, then the model, then names against the model.
    out_path = _check_out(out)
    plot_path = _check_plot(plot)
    values = _parse_params(params)
    names = _parse_vars(vars_)
    flags = {
        "rtol": rtol, "atol": atol, "counts_per_amount": counts_per_amount, "variant": variant,
        "record_events": record_events, "dt": dt, "scheme": scheme, "tol": tol,
    }  # fmt: skip
    # Only options the user set: other methods may not take them.
    method_options = _coerce_options(method, _parse_options(options, flags))
    try:  # an unknown or unavailable method, or bad method options
        _methods.get_method(method, **method_options)
    except OptionError as e:
        if f"method '{method}'" in str(e):
            raise
        raise OptionError(f"--method {method}: {e}") from e
    from .problem import time_grid

    with _where("--t-end"):
        time_grid(t_end, n_points)

    from .api import simulate
    from .problem import check_vars

    net = _load(model)
    _check_params(net, model, values)
    if names is not None:
        with _where(f"{model}: --vars"):
            check_vars(net, names)

    import warnings

    from .ensemble import EnsembleInterrupted

    try:
        with warnings.catch_warnings():
            # An interrupted ensemble is reported below, from its stats.
            warnings.simplefilter("ignore", EnsembleInterrupted)
            res = simulate(
                net, method, t_end=t_end, n_points=n_points, runs=runs, seed=seed,
                workers=workers, scheduler=scheduler, chunk_size=chunk_size, progress=progress,
                vars=names, units=units, params=values, **method_options,
            )  # fmt: skip
    except ModelError as e:  # found when the method prepares the model (e.g. stoichiometry)
        if e.source:
            raise
        raise OptionError(f"{model}: {e}") from e
    except SolverError as e:
        raise SolverError(f"{model}: run failed: {e}", variable=e.variable, time=e.time) from e
    except KeyboardInterrupt:
        if runs is not None and runs > 1:
            _note("interrupted before any run finished; nothing written")
            raise click.exceptions.Exit(EXIT_INTERRUPT) from None
        raise

    interrupted = bool(res.stats.get("interrupted"))
    if interrupted:
        done, total = res.stats.get("runs_completed"), res.stats.get("runs")
        _note(f"interrupted: kept {done} finished run{'' if done == 1 else 's'} of {total}")
    _write_outputs(res, out_path, plot_path)
    if interrupted:
        raise click.exceptions.Exit(EXIT_INTERRUPT)


def _write_outputs(res: Any, out_path: Path | None, plot_path: Path | None) -> None:
    if out_path is None:
        table = res.to_dataframe()
        table.to_csv(sys.stdout, index=False, lineterminator="\n", na_rep="NaN")
        sys.stdout.flush()
    elif out_path.suffix.lower() == ".nc":
        res.to_netcdf(out_path)
    else:
        res.to_csv(out_path)
    if plot_path is not None:
        res.plot(plot_path)
    for path in (out_path, plot_path):
        if path is not None:
            _note(f"wrote {path}")


def _note(text: str) -> None:
    click.echo(f"{PROG}: {text}", err=True)


# ==================================================================================================
# info
# ==================================================================================================
_INFO_HELP = """Describe MODEL: compartments, species, parameters, reactions (equations and rate
laws), function definitions, rules, initial assignments, events and the conservation laws of
the stoichiometry.

With --json the same description is printed as one JSON object (sections as keys), for
programs.

\b
Examples:
  scalebridge info model.xml
  scalebridge info model.ant --json > model.json
"""


@cli.command("info", help=_INFO_HELP, short_help="Describe a model (text or --json).")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info_cmd(model: str, as_json: bool) -> None:
    from .codegen.stochastic import stochastic_summary
    from .model.describe import describe, describe_text

    net = _load(model)
    extra = {"stochastic_methods": stochastic_summary(net)}
    if as_json:
        click.echo(json.dumps(describe(net, extra=extra), indent=2, allow_nan=False))
    else:
        click.echo(describe_text(net, extra=extra).rstrip("\n"))


# ==================================================================================================
# steady-state
# ==================================================================================================
_STEADY_HELP = """Find a steady state of MODEL's rate equations, f(y*) = 0, on the surface its
conservation laws define, and say whether it is stable (eigenvalues of the Jacobian there).

Newton's method starts from the model's initial state (after --param changes); when it cannot
converge, the model is first integrated forward. Models with events or with rates that depend
on time are refused. Species are reported as SBML defines them unless --units says otherwise.

\b
Examples:
  scalebridge steady-state model.xml
  scalebridge steady-state model.ant --param k1=0.2 --vars A,B --json
"""


@cli.command("steady-state", help=_STEADY_HELP, short_help="Find and classify a steady state.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--vars", "vars_", metavar="A,B", help="Variables to report (default: species).")
@click.option(
    "--units",
    type=click.Choice(["model", "amount", "concentration"]),
    default="model",
    show_default=True,
    help="Report species as the model defines them, or all as amounts or concentrations.",
)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Change a value.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def steady_state_cmd(
    model: str, vars_: str | None, units: str, params: Sequence[str], as_json: bool
) -> None:
    from .problem import check_vars
    from .wellmixed.steady import steady_state

    values = _parse_params(params)
    names = _parse_vars(vars_)
    net = _load(model)
    _check_params(net, model, values)
    if names is not None:
        with _where(model):
            check_vars(net, names)
    with _where(model):
        ss = steady_state(net, params=values, vars=names, units=units)
    if as_json:
        click.echo(json.dumps(ss.to_dict(), indent=2, allow_nan=False))
        return
    width = max((len(k) for k in ss.values), default=1)
    for k, val in ss.values.items():
        click.echo(f"{k:<{width}}  {val:.12g}")
    eig = ", ".join(
        f"{z.real:.6g}{z.imag:+.6g}j" if z.imag else f"{z.real:.6g}" for z in ss.eigenvalues
    )
    click.echo(f"stable: {'yes' if ss.stable else 'no'} (eigenvalues: {eig or 'none'})")
    if ss.conservation_laws:
        click.echo("conserved: " + "; ".join(ss.conservation_laws))
    click.echo(
        f"method: {ss.method}, {ss.iterations} Newton iterations, residual {ss.residual:.3g}"
    )


# ==================================================================================================
# convert
# ==================================================================================================
def _format_of_suffix(path: Path) -> str | None:
    from .api import ANTIMONY_SUFFIXES, ODE_TEXT_SUFFIXES, SBML_SUFFIXES

    suffix = path.suffix.lower()
    if suffix in SBML_SUFFIXES:
        return "sbml"
    if suffix in ANTIMONY_SUFFIXES:
        return "antimony"
    if suffix in ODE_TEXT_SUFFIXES:
        return "ode-text"
    return None


def _convert_target(to: str | None, out: Path) -> str:
    implied = _format_of_suffix(out)
    if to is None:
        if implied not in CONVERT_TARGETS:
            raise OptionError(
                f"--out {out}: cannot tell the format from '{out.suffix or out.name}'; give "
                "--to sbml|antimony or use .xml/.sbml (SBML) or .ant/.antimony (Antimony)"
            )
        assert implied is not None
        return implied
    if implied is not None and implied != to:
        # scalebridge (and most tools) would later read the file by its suffix: refuse to write
        # a file whose name promises another format.
        raise OptionError(
            f"--out {out}: the suffix '{out.suffix}' means {implied}, but --to is {to}"
        )
    return to


_CONVERT_HELP = """Convert MODEL to SBML (Level 3 Version 2) or Antimony.

The target format is --to, or else the suffix of --out: .xml/.sbml for SBML,
.ant/.antimony for Antimony.  The file is written atomically (a temporary file is renamed
onto it), so an existing file is replaced only by a complete one.

\b
Examples:
  scalebridge convert model.xml --out model.ant
  scalebridge convert model.ant --to sbml --out model.xml
  scalebridge convert model.ode --out model.xml   # ODE text to SBML (rate rules)
"""


@cli.command("convert", help=_CONVERT_HELP, short_help="Convert a model to SBML or Antimony.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--to", "to", type=click.Choice(CONVERT_TARGETS), default=None,
    help="Target format. [default: from the suffix of --out]",
)  # fmt: skip
@click.option("--out", "-o", required=True, metavar="FILE", help="The file to write.")
def convert_cmd(model: str, to: str | None, out: str) -> None:
    from ._io import atomic_write_text

    out_path = Path(out)
    target = _convert_target(to, out_path)
    _check_writable(out_path, "--out")
    net = _load(model)
    if target == "sbml":
        from .model.sbml import write_sbml_string

        text = write_sbml_string(net)
    else:
        from .model.antimony import to_antimony

        text = to_antimony(net)
    atomic_write_text(out_path, text)
    _note(f"wrote {out_path} ({target})")


# ==================================================================================================
# analyze
# ==================================================================================================
_ANALYZE_HELP = """Analyze MODEL across descriptions and timescales.

\b
  --lna         the stationary linear noise approximation, in molecule counts: the
                macroscopic steady state, the covariance from the Lyapunov equation,
                Fano factors, CVs and correlations
  --regimes     which description (CME/SSA, CLE or ODE) fits each species and reaction over
                [0, --t-end], from copy numbers, propensities and timescales, with the
                numbers behind each verdict; which reactions are fast enough to reduce
  --reduce S,T  quasi-steady-state reduction with S,T as the fast species ('auto': found
                from the eigenvalue gaps): the critical manifold, its stability along the
                trajectory, the reduced model and its error against the full model over
                [0, --t-end]; --out FILE.xml writes the reduced model as SBML

The analyses can be combined; with --json the output is one JSON object with a key per
analysis ("lna", "regimes", "reduce"). A reduction that does not hold (no timescale gap,
an unstable or folding critical manifold) is refused with exit status 2 and the numbers.

\b
Examples:
  scalebridge analyze two_stage.ant --lna --json
  scalebridge analyze gene_switch.ant --regimes --t-end 500
  scalebridge analyze receptor.ant --reduce R,C --t-end 1200 --out reduced.xml
"""


@cli.command("analyze", help=_ANALYZE_HELP, short_help="Noise (LNA), regimes, QSSA reduction.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--lna", "do_lna", is_flag=True, help="The stationary linear noise approximation.")
@click.option("--regimes", "do_regimes", is_flag=True, help="Which description fits where.")
@click.option(
    "--reduce", "reduce_", metavar="S,T|auto", default=None,
    help="Reduce with these fast species ('auto': detect them).",
)  # fmt: skip
@click.option(
    "--t-end", "t_end", type=float, default=None, metavar="T",
    help="End of the time window (--regimes, --reduce).",
)  # fmt: skip
@click.option(
    "--n-points", "n_points", type=click.IntRange(min=2), default=201, show_default=True,
    metavar="N", help="Sample times over the window (--regimes, --reduce).",
)  # fmt: skip
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Change a value.")
@click.option(
    "--seed", type=int, default=0, show_default=True, metavar="S",
    help="Seed of the stochastic pilot runs of --regimes.",
)  # fmt: skip
@click.option(
    "--counts-per-amount", "counts_per_amount", type=float, default=None, metavar="X",
    help="Molecules per unit of amount, for models in moles (--lna, --regimes).",
)  # fmt: skip
@click.option("--out", "-o", default=None, metavar="FILE.xml", help="--reduce: the reduced SBML.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def analyze_cmd(
    model: str, do_lna: bool, do_regimes: bool, reduce_: str | None, t_end: float | None,
    n_points: int, params: Sequence[str], seed: int, counts_per_amount: float | None,
    out: str | None, as_json: bool,
) -> None:  # fmt: skip
    if not (do_lna or do_regimes or reduce_ is not None):
        raise OptionError("say what to analyze: --lna, --regimes and/or --reduce SPECIES,...")
    if (do_regimes or reduce_ is not None) and t_end is None:
        which = "--regimes" if do_regimes else "--reduce"
        raise OptionError(f"{which} needs the time window: give --t-end")
    if t_end is not None and not (math.isfinite(t_end) and t_end > 0):
        raise OptionError(f"--t-end must be a positive number, got {t_end:g}")
    if counts_per_amount is not None and not (
        math.isfinite(counts_per_amount) and counts_per_amount > 0
    ):
        raise OptionError(f"--counts-per-amount must be positive, got {counts_per_amount:g}")
    out_path: Path | None = None
    if out is not None:
        if reduce_ is None:
            raise OptionError("--out writes the reduced model: it needs --reduce")
        out_path = Path(out)
        if out_path.suffix.lower() not in (".xml", ".sbml"):
            raise OptionError(f"--out {out}: the reduced model is written as SBML (.xml or .sbml)")
        _check_writable(out_path, "--out")
    values = _parse_params(params)
    net = _load(model)
    _check_params(net, model, values)
    report: dict[str, Any] = {}
    texts: list[str] = []
    with _where(model):
        if do_lna:
            from .wellmixed.lna import lna_stationary

            lna = lna_stationary(net, params=values, counts_per_amount=counts_per_amount)
            report.update(lna.to_dict())  # {"lna": {"mean": ..., "covariance": ..., ...}}
            texts.append(lna.summary())
        if do_regimes:
            from .reduce.regimes import advise_regimes

            assert t_end is not None
            advice = advise_regimes(
                net, t_end, n_points=n_points, params=values, seed=seed,
                counts_per_amount=counts_per_amount,
            )  # fmt: skip
            report["regimes"] = advice.to_dict()
            texts.append(advice.summary())
        if reduce_ is not None:
            from .reduce import reduce

            fast = None if reduce_.strip().lower() in ("", "auto") else reduce_
            assert t_end is not None
            red = reduce(net, fast, t_end=t_end, n_points=n_points, params=values)
            if out_path is not None:
                red.write_sbml(out_path)
            report["reduce"] = red.to_dict()
            texts.append(red.summary())
    if as_json:
        click.echo(json.dumps(report, indent=2, allow_nan=False))
    else:
        click.echo("\n\n".join(t.rstrip("\n") for t in texts))
    if out_path is not None:
        _note(f"wrote {out_path} (the reduced model, SBML)")


# ==================================================================================================
# identifiability
# ==================================================================================================
_IDENTIFIABILITY_HELP = """Structural identifiability of MODEL: which parameters and unknown initial
values perfect, noise-free output data determine.

Each is labelled globally (one value fits the outputs), locally-not-globally (finitely many,
at least two), locally (finitely many; the exact global test did not finish within
--time-budget) or non-identifiable (infinitely many). Identifiable combinations of the others
(such as koff/kon) are listed too. Local labels come from exact rank tests modulo a large prime
at a random point (the error bound is printed); global labels from a Groebner basis (SIAN).

Models: the ODE text format (.txt, .ode; outputs are its 'y = ...' lines), SBML or Antimony
(outputs: assignment-rule variables nothing else uses, or --output).

\b
Examples:
  scalebridge identifiability model.txt
  scalebridge identifiability model.txt --json
  scalebridge identifiability model.xml --output y=s*C --output y2=Rtot --time-budget 30
"""


@cli.command(
    "identifiability",
    help=_IDENTIFIABILITY_HELP,
    short_help="Structural identifiability of parameters.",
)
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--output", "outputs", multiple=True, metavar="NAME=EXPR",
    help="An output to analyse (repeatable); replaces the model's outputs.",
)  # fmt: skip
@click.option(
    "--time-budget", type=click.FloatRange(min=0.0), default=5.0, show_default=True,
    help="Seconds for the exact global step (0: local labels only).",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random points.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def identifiability_cmd(
    model: str, outputs: Sequence[str], time_budget: float, seed: int, as_json: bool
) -> None:
    from .infer.structural import identifiability_report

    with _where(model):
        text = identifiability_report(
            model, outputs=outputs, time_budget=time_budget, seed=seed, as_json=as_json
        )
    click.echo(text)


# ==================================================================================================
# petab
# ==================================================================================================
_PETAB_HELP = """Evaluate, fit and analyse a PEtab v1 problem (the YAML file that names the SBML
model and the condition, observable, measurement and parameter tables).

--llh prints the log-likelihood (PEtab's convention; the objective is its negative) and chi2
at the nominal values of the parameter table: conditions with parameter and initial-value
overrides, observables with normal or Laplace noise on lin, log or log10 scale, numeric and
parametric overrides, replicates and preequilibration.

--fit runs a multi-start local optimisation (--starts N, in the parameter scales of the table,
within its bounds; the same --seed gives the same starts and results whatever --workers) and
reports the best parameters, a table of the starts and, with --out, a waterfall plot.
--fim gives the Fisher information at the fitted (or nominal) parameters: eigenvalues, rank,
condition number, the parameter combinations the data cannot see, and Cramer-Rao intervals.
--profile computes profile likelihoods (confidence intervals where the profile crosses the
chi2 threshold, flags for unreliable profiles).  --datasets repeats FIM, profiles and the
structural test for each dataset (datasetId column, else each observable) alone and combined,
and suggests measurements.  Profiles assume the starting point is an optimum: use them with
--fit unless the nominal values are already the maximum-likelihood estimate.

Features this version does not support (mapping tables, priors, condition-table events, ...)
exit with status 2 naming the file and element.

\b
Examples:
  scalebridge petab problem.yaml --llh
  scalebridge petab problem.yaml --llh --json     # {"llh": ..., "chi2": ...}
  scalebridge petab problem.yaml --fit --starts 20 --out fit/
  scalebridge petab problem.yaml --fit --fim --profile --out fit/ --json
  scalebridge petab problem.yaml --datasets --out scales/
"""


@cli.command("petab", help=_PETAB_HELP, short_help="Evaluate, fit and analyse a PEtab problem.")
@click.argument("problem", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--llh", "want_llh", is_flag=True, help="Log-likelihood and chi2 at the nominal parameters."
)
@click.option("--fit", "want_fit", is_flag=True, help="Multi-start maximum-likelihood estimation.")
@click.option(
    "--starts",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    metavar="N",
    help="Number of starts for --fit (the nominal point is one of them).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the start points.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="W",
    help="Parallel starts/profiles on this machine (default: all cores).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Dask scheduler address for the starts, or 'processes' for local processes.",
)
@click.option(
    "--fim", "want_fim", is_flag=True, help="Fisher information and Cramer-Rao intervals."
)
@click.option("--profile", "want_profile", is_flag=True, help="Profile likelihoods and their CIs.")
@click.option(
    "--datasets",
    "want_datasets",
    is_flag=True,
    help="Practical and structural identifiability per dataset and combined.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Confidence level of the intervals.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    metavar="DIR",
    help="Write tables (CSV), plots (PNG) and results (JSON) into DIR.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
def petab_cmd(
    problem: str,
    want_llh: bool,
    want_fit: bool,
    starts: int,
    seed: int,
    workers: int | None,
    scheduler: str | None,
    want_fim: bool,
    want_profile: bool,
    want_datasets: bool,
    alpha: float,
    out_dir: str | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    from .infer.petab_problem import format_llh, load_petab

    if not (want_llh or want_fit or want_fim or want_profile or want_datasets):
        raise OptionError(
            "say what to compute: --llh, --fit, --fim, --profile or --datasets (see --help)"
        )
    with _where(problem):
        pb = load_petab(problem)
        if want_llh and not (want_fit or want_fim or want_profile or want_datasets):
            click.echo(format_llh(pb.evaluate(), as_json=as_json))
            return
        from .infer.petab_analysis import run_petab_analysis

        report = run_petab_analysis(
            pb,
            llh=want_llh,
            fit=want_fit,
            starts=starts,
            seed=seed,
            workers=workers,
            scheduler=scheduler,
            fim=want_fim,
            profile=want_profile,
            datasets=want_datasets,
            alpha=alpha,
            out_dir=out_dir,
            progress=progress,
        )
    click.echo(report.to_json() if as_json else report.format())


# ==================================================================================================
# run
# ==================================================================================================
_RUN_HELP = """Run a tissue scenario written in YAML: grid, species (diffusivity, initial
value, boundary conditions), parameters, reactions, duration, solver and outputs.  Writes the
fields at the output times (NetCDF), the steady state (steady.nc), one PNG per species,
scenario_used.yaml and summary.md into DIR.  The scenario is validated before anything runs;
errors name the file and the key (e.g. species.A.diffusivity).

\b
Examples:
  scalebridge run scenario.yaml --out results/
  scalebridge demo morphogen --out m/ && scalebridge run m/morphogen.yaml --out m/run
"""


@cli.command("run", help=_RUN_HELP, short_help="Run a tissue scenario (YAML).")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--out", "-o", default="out", show_default=True, metavar="DIR",
    help="Directory for the fields, figures and summary (created if missing).",
)  # fmt: skip
@click.option(
    "--progress/--no-progress", default=None,
    help="Progress bar on stderr (default: on a terminal, for runs longer than 2 s).",
)  # fmt: skip
def run_cmd(scenario: str, out: str, progress: bool | None) -> None:
    from .space.scenario import run_scenario

    report = run_scenario(scenario, out, progress=progress)
    click.echo(f"scenario {report.name}: wrote {len(report.files)} files to {report.directory}")
    for f in report.files:
        click.echo(f"  {f}")


# ==================================================================================================
# demo
# ==================================================================================================
def _demo_help() -> str:
    from .demo import DEFAULT_DEMO, DEMO_DESCRIPTIONS

    listing = "\n".join(f"  {name:<16}{text}" for name, text in DEMO_DESCRIPTIONS.items())
    return f"""Run a built-in demo and write its files (trajectories as CSV and NetCDF,
figures, and summary.md with the numbers of this run) into DIR.

\b
Demos (NAME, default {DEFAULT_DEMO}):
{listing}

\b
Examples:
  scalebridge demo
  scalebridge demo gene-feedback --out results/
"""


@cli.command("demo", help=_demo_help(), short_help="Run a built-in demo (default: gene-feedback).")
@click.argument("name", required=False, default=None)
@click.option(
    "--out", "-o", default="out", show_default=True, metavar="DIR",
    help="Directory for the demo's files (created if missing).",
)  # fmt: skip
def demo_cmd(name: str | None, out: str) -> None:
    from .demo import DEFAULT_DEMO, run_demo

    report = run_demo(name or DEFAULT_DEMO, out)
    click.echo(f"demo {report.name}: wrote {len(report.files)} files to {report.directory}")
    for f in report.files:
        click.echo(f"  {f}")
    summary = report.directory / "summary.md"
    if summary in report.files:
        click.echo(f"read {summary} for the results")
