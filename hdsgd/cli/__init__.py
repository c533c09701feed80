"""The ``hdsgd`` command.

    hdsgd demo [--out DIR]                       theory vs Monte Carlo for every system
    hdsgd teach [--port N] [--no-browser]        interactive teaching page (local, offline)
    hdsgd SYSTEM predict  [--field value ...]    deterministic equivalent
    hdsgd SYSTEM simulate [--field value ...]    Monte Carlo
    hdsgd SYSTEM compare  [--field value ...]    both, with the gap in standard errors and a verdict
    hdsgd SYSTEM tune     [...]                  hyperparameters from the predictions alone
    hdsgd SYSTEM sweep    --space ... [...]      many settings, resumable, on any executor

Every command prints a short table; ``--out FILE.npz`` saves the curve(s), ``--plot FILE.png``
draws them. With ``--out``, a Monte Carlo writes its finished seed chunks beside it as it goes:
Ctrl-C stops with one line, and the same command run again resumes. ``hdsgd SYSTEM COMMAND --help`` lists every field with its meaning and default,
read from the Setup itself. ``compare`` exits with status 1 when the agreement verdict fails
(`hdsgd.Agreement.ok`), so scripts and CI can rely on it; bad input exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
import time
from pathlib import Path

from .._cache import use_compilation_cache
from .._devices import use_cpu_cores
from ..setups._validate import MAX_SEED, MAX_SEEDS
from . import _fields
from . import teach as _teach
from ._system import SYSTEMS, CliSystem, Demo, register

__all__ = ["main", "console", "build_parser", "SYSTEMS", "CliSystem", "Demo", "register"]

COMMANDS = {
    "predict": (True, False, "integrate the deterministic equivalent"),
    "simulate": (False, True, "run the finite-dimensional Monte Carlo"),
    "compare": (True, True, "theory vs Monte Carlo: gaps in standard errors and a verdict"),
}


def _load_systems() -> None:
    from . import lstsq  # noqa: F401  (each module registers its system)
    from . import proxlinear  # noqa: F401
    from . import grokking  # noqa: F401
    from . import spiked  # noqa: F401
    from . import momentum  # noqa: F401


def _fields_by_model(system: CliSystem) -> dict[str, dict[str, _fields.FieldOption]]:
    """Field name -> {model: its option}, for every model that has the field (one pass over
    the Setups' docstrings)."""
    out: dict[str, dict[str, _fields.FieldOption]] = {}
    for model, cls in system.models.items():
        for opt in _fields.field_options(cls, system.parsers):
            out.setdefault(opt.name, {})[model] = opt
    return out


def _system_fields(system: CliSystem, fields_by_model=None) -> dict[str, _fields.FieldOption]:
    """The union of the models' field options (from `_fields_by_model`, computed when not
    given); where the models describe a shared field differently, the help gives each model's
    text."""
    out = {}
    for name, by_model in (fields_by_model or _fields_by_model(system)).items():
        texts = {model: opt.help for model, opt in by_model.items()}
        opt = next(iter(by_model.values()))
        if len(set(texts.values())) > 1:
            opt = dataclasses.replace(opt, help=" ".join(f"{m}: {t}" for m, t in texts.items()))
        out[name] = opt
    return out


def _shown(value) -> str:
    """A default as it is typed on the command line."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(_shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


#: what each field metavar means, for error messages
_METAVAR_WORDS = {
    "X": "a number", "X|none": "a number or none", "INT": "an integer",
    "INT|none": "an integer or none", "yes|no": "yes or no", "X[,Y,...]": "comma-separated numbers",
    "X[,Y,...]|none": "comma-separated numbers or none", "VALUE": "a number or a name",
}


def _integer_in(low: int, high: int):
    """An argparse type: an integer in [low, high], checked before anything runs (``--seed``:
    JAX's 32-bit keys wrap past 2^32 - 1; ``--seeds``: compare needs two for a standard error,
    tune's check takes 0 for none)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: an integer in "
                                             f"[{low}, {high}]")
        return value

    parse.__name__ = "integer"
    return parse


def _time_text(system: CliSystem) -> str:
    """The time unit of the horizon, as the Setup labels it (``t = steps / d``, ...)."""
    label = next(iter(system.models.values())).time_label
    return "steps" if system.time_unit == "step" else label


def _horizon_default(system: CliSystem, rule=None) -> str:
    """The default horizon in words: the rule's docstring, or its value at the default Setup."""
    rule = rule or system.default_horizon
    if rule.__doc__:
        return rule.__doc__.strip().splitlines()[0].rstrip(".")
    return f"{rule(next(iter(system.models.values()))()):g}"


def _add_field_options(parser, system: CliSystem) -> None:
    group = parser.add_argument_group(f"{system.name} fields (absent: the Setup's own default)")
    if len(system.models) > 1:
        names = tuple(system.models)
        group.add_argument("--model", choices=names, default=names[0],
                           help=f"which model (a Setup class each: "
                                f"{', '.join(f'{k} = {v.__name__}' for k, v in system.models.items())};"
                                f" default: {names[0]})")
    by_model = _fields_by_model(system)
    for name, opt in _system_fields(system, by_model).items():
        owners = list(by_model[name])
        only = f" [{'/'.join(owners)} only]" if len(system.models) > 1 and len(owners) < len(system.models) else ""
        defaults = {model: _shown(o.default) for model, o in by_model[name].items()}
        default = (next(iter(defaults.values())) if len(set(defaults.values())) == 1
                   else ", ".join(f"{v} ({model})" for model, v in defaults.items()))
        group.add_argument(opt.flag, dest=opt.name, type=str, default=argparse.SUPPRESS,
                           metavar=opt.metavar,
                           help=f"{opt.help}{only} (default: {default})".replace("%", "%%"))


def _add_run_options(parser, system: CliSystem, *, theory: bool, mc: bool) -> None:
    run = parser.add_argument_group("run")
    run.add_argument("--horizon", type=float, default=None,
                     help=f"final time, in {_time_text(system)} (default: "
                          f"{_horizon_default(system)})")
    if theory:
        run.add_argument("--method", choices=system.methods, default=None,
                         help=f"deterministic equivalent (default: {system.method_help})")
    if mc:
        run.add_argument("--seeds", type=_integer_in(2 if theory else 1, MAX_SEEDS),
                         default=system.default_seeds,
                         help=f"Monte Carlo runs (default: {system.default_seeds})")
        run.add_argument("--seed", type=_integer_in(0, MAX_SEED), default=0,
                   help=f"PRNG seed, an integer in [0, {MAX_SEED}] (default: 0)")
        if system.simulate_methods:
            run.add_argument("--mc-method", choices=system.simulate_methods,
                             default=system.simulate_methods[0],
                             help=f"Monte Carlo variant (default: {system.simulate_methods[0]})")
    if theory and mc:
        run.add_argument("--t-min", type=float, default=None,
                         help="compare only times >= this (early points, where a few seeds "
                              "give an unreliable standard error, are skipped)")
        run.add_argument("--observable", action="append", default=None, metavar="NAME",
                         help="compare only this observable (repeat for several; default: "
                              "every observable both curves have)")
    run.add_argument("--out", type=Path, default=None, help="write the curve(s) to this .npz")
    run.add_argument("--plot", type=Path, default=None, help="write a figure to this .png")


def _add_sweep_options(parser, system: CliSystem) -> None:
    unit = _time_text(system)
    g = parser.add_argument_group("sweep")
    g.add_argument("--space", action="append", required=True, metavar="NAME=VALUES",
                   help="a field and its values: NAME=a,b,c or NAME=LOW:HIGH:log[:N] or "
                        "NAME=LOW:HIGH:lin:N (repeat for a grid)")
    g.add_argument("--task", choices=("predict", "simulate"), default="predict",
                   help="what to run at each setting (default: predict)")
    g.add_argument("--horizon", type=float, default=None,
                   help=f"final time, in {unit} (default: {_horizon_default(system)})")
    g.add_argument("--method", default=None, help="predict: the deterministic equivalent; "
                   "simulate: the Monte Carlo variant (default: each one's default)")
    g.add_argument("--seeds", type=_integer_in(1, MAX_SEEDS), default=system.default_seeds,
                   help=f"Monte Carlo runs per setting (default: {system.default_seeds})")
    g.add_argument("--seed", type=_integer_in(0, MAX_SEED), default=0,
                   help=f"PRNG seed, an integer in [0, {MAX_SEED}] (default: 0)")
    g.add_argument("--dir", type=Path, default=Path(f"hdsgd-sweep-{system.name}"),
                   help=f"folder for the results (default: ./hdsgd-sweep-{system.name})")
    g.add_argument("--workers", type=_integer_in(0, 4096), default=0, metavar="N",
                   help="run settings in this many local processes (default: here, in turn)")
    g.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run settings on a Dask cluster (scheduler address; needs hdsgd[dask])")
    g.add_argument("--plot", type=Path, default=None, help="draw every curve to this .png")


def _add_tune_options(parser, system: CliSystem) -> None:
    unit = _time_text(system)
    g = parser.add_argument_group("tuning")
    g.add_argument("--space", action="append", default=None, metavar="NAME=VALUES",
                   help="a field and its candidates: NAME=a,b,c or NAME=LOW:HIGH:log[:N] "
                        "(refined) or NAME=LOW:HIGH:lin:N; repeat for a joint search "
                        f"(default: {system.tune_help})")
    g.add_argument("--objective", default=system.tune_objective,
                   choices=("samples_to_target", "steps_to_target", "value_at_budget"),
                   help=f"what to minimise (default: {system.tune_objective})")
    g.add_argument("--reach", choices=("below", "above"), default=system.tune_reach,
                   help="the target is met where the observable is below it or above it "
                        f"(default: {system.tune_reach})")
    g.add_argument("--settle", action=argparse.BooleanOptionalAction, default=system.tune_settle,
                   help="count the time from which the target stays met (a settling time, "
                        f"which an overshoot does not shortcut; default: {system.tune_settle})")
    g.add_argument("--observable", default=None,
                   help=f"the observable the objective reads (default: {system.observable})")
    g.add_argument("--target", type=float, default=None,
                   help="the level to reach (*_to_target; default: the system's, see above)")
    g.add_argument("--budget", type=float, default=None,
                   help="a fresh-sample budget per candidate (each runs until it has used it): "
                        "the budget of value_at_budget, or the samples available to "
                        "samples_to_target (default: what the given setup uses in --horizon)")
    g.add_argument("--budget-steps", type=float, default=None,
                   help="value_at_budget: a budget in steps instead of samples")
    g.add_argument("--horizon", type=float, default=None,
                   help=f"prediction horizon, in {unit} (default: "
                        f"{_horizon_default(system, system.tune_horizon)}; not used with "
                        "--budget)")
    g.add_argument("--method", choices=system.methods, default=None,
                   help=f"deterministic equivalent (default: {system.method_help})")
    g.add_argument("--seeds", type=_integer_in(0, MAX_SEEDS), default=system.default_seeds,
                   help="Monte Carlo seeds to check the choice and its neighbours (0: no check; "
                        f"default: {system.default_seeds})")
    g.add_argument("--seed", type=_integer_in(0, MAX_SEED), default=0,
                   help=f"PRNG seed, an integer in [0, {MAX_SEED}] (default: 0)")
    g.add_argument("--out", type=Path, default=None, help="write the chosen prediction to this .npz")
    g.add_argument("--plot", type=Path, default=None,
                   help="draw the objective over the grid, the choice and the check to this .png")


def build_parser() -> argparse.ArgumentParser:
    _load_systems()
    parser = argparse.ArgumentParser(
        prog="hdsgd",
        description="Predict SGD-type training in high dimension without training: "
                    "deterministic equivalents and their Monte Carlo twins.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="systems:\n" + "\n".join(
            f"  {s.name:<12} {s.summary}" for s in SYSTEMS.values()
        ) + "\n\nexamples:\n  hdsgd demo\n  hdsgd lstsq compare --batch-size 4 --plot lstsq.png"
            "\n  hdsgd spiked predict --help"
            "\n\nenvironment:\n  HDSGD_CPU_DEVICES=N  JAX CPU devices the Monte Carlo seeds are "
            "sharded over\n                       (default: one per core; 1: JAX's default)"
            "\n  HDSGD_CPU_THREADS=N  threads for Monte Carlo seed groups and grid chunks on one\n"
            "                       CPU device (default: one per core; 1: none)"
            "\n  HDSGD_CACHE_DIR=DIR  where compiled programs are kept between runs (default:\n"
            "                       ~/.cache/hdsgd/jax; off: no cache)"
            "\n  HDSGD_X64=0          leave floating-point precision to JAX's own setting",
    )
    sub = parser.add_subparsers(dest="system", metavar="{demo,teach," + ",".join(SYSTEMS) + "}")
    demo = sub.add_parser("demo", help="theory vs Monte Carlo for every system, with figures",
                          description="hdsgd demo: a small theory-vs-Monte-Carlo comparison for "
                                      "each system, a verdict per system and a figure each.")
    demo.add_argument("--out", type=Path, default=Path("hdsgd-demo"),
                      help="folder for the figures (default: ./hdsgd-demo)")
    demo.add_argument("--seed", type=_integer_in(0, MAX_SEED), default=0,
                   help=f"PRNG seed, an integer in [0, {MAX_SEED}] (default: 0)")
    demo.add_argument("--systems", nargs="*", default=None, choices=list(SYSTEMS),
                      help="only these systems (default: all)")
    _teach.add_parser(sub)
    for system in SYSTEMS.values():
        sp = sub.add_parser(system.name, help=system.summary, description=system.summary)
        names = list(COMMANDS) + ["sweep"] + (["tune"] if system.tune_space else [])
        cmds = sp.add_subparsers(dest="command", metavar="{" + ",".join(names) + "}")
        for name, (theory, mc, text) in COMMANDS.items():
            cp = cmds.add_parser(name, help=text, description=f"hdsgd {system.name} {name}: {text}. "
                                 f"Time unit: {system.time_unit}.")
            _add_field_options(cp, system)
            _add_run_options(cp, system, theory=theory, mc=mc)
        wp = cmds.add_parser("sweep", help="many settings (a grid of fields), resumable",
                             description=f"hdsgd {system.name} sweep: predict or simulate every "
                             "setting of a grid; each finished result is written to --dir as it "
                             "completes, so an interrupted sweep resumes where it stopped.")
        _add_field_options(wp, system)
        _add_sweep_options(wp, system)
        if system.tune_space is not None:
            tp = cmds.add_parser("tune", help="choose hyperparameters from the predictions alone",
                                 description=f"hdsgd {system.name} tune: choose hyperparameters "
                                 "from the predictions alone, then check the choice (and its two "
                                 f"grid neighbours) with Monte Carlo. Default: {system.tune_help}")
            _add_field_options(tp, system)
            _add_tune_options(tp, system)
    return parser


class CliError(Exception):
    """A user error on the command line: printed as one line, exit status 2."""


def _flag_error(err: ValueError, system: CliSystem) -> str:
    """Prefix a Setup's ValueError with the flag it came from (``step_size=...`` -> --step-size)."""
    text = str(err)
    match = re.match(r"^(\w+)=", text)
    if match and match.group(1) in _system_fields(system):
        return f"--{match.group(1).replace('_', '-')}: {text}"
    return text


def setup_from(args, system: CliSystem):
    """The Setup the command line describes: the given fields, the Setup's defaults for the rest."""
    cls = system.models[getattr(args, "model", None) or next(iter(system.models))]
    options = _system_fields(system)
    given = {}
    for name, opt in options.items():
        if name not in vars(args):
            continue
        if name not in cls.field_names():
            model = getattr(args, "model", None)
            raise CliError(f"{opt.flag} is not a field of {cls.__name__} (--model {model}); "
                           f"allowed: {', '.join('--' + n.replace('_', '-') for n in cls.field_names())}")
        try:
            given[name] = opt.parse(getattr(args, name))
        except ValueError:
            raise CliError(f"{opt.flag}: {getattr(args, name)!r} is invalid; allowed: "
                           f"{_METAVAR_WORDS.get(opt.metavar, opt.metavar)}") from None
    try:
        return cls(**given)
    except ValueError as err:
        raise CliError(_flag_error(err, system)) from None


def _check_output(path: Path | None, flag: str) -> None:
    if path is None:
        return
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise CliError(f"{flag} {path}: the folder {folder} does not exist")


def _run_system(args, system: CliSystem) -> int:
    import jax

    from ..api import predict, simulate
    from ..compare import compare
    from ..plot import plot_curves

    setup = setup_from(args, system)
    _check_output(getattr(args, "out", None), "--out")
    _check_output(args.plot, "--plot")
    horizon = args.horizon if args.horizon is not None else system.default_horizon(setup)
    if args.command == "tune":
        if args.horizon is None and system.tune_horizon is not None:
            horizon = system.tune_horizon(setup)
        return _run_tune(args, system, setup, horizon)
    if args.command == "sweep":
        return _run_sweep(args, system, setup, horizon)
    theory = mc = None
    if args.command in ("predict", "compare"):
        start = time.perf_counter()
        theory = predict(setup, horizon, method=args.method)
        print(f"# {system.name} prediction ({theory.meta.get('method', args.method)}), "
              f"{time.perf_counter() - start:.2f} s")
        print(theory.table())
        if "warning" in theory.meta:
            print(f"# warning: {theory.meta['warning']}")
    if args.command in ("simulate", "compare"):
        start = time.perf_counter()
        variant = {"method": args.mc_method} if getattr(args, "mc_method", None) else {}
        chunks = None if args.out is None else args.out.with_suffix(".chunks")
        try:
            mc = simulate(setup, horizon, key=jax.random.key(args.seed), seeds=args.seeds,
                          checkpoint=chunks, **variant)
        except KeyboardInterrupt:
            if chunks is None:
                raise
            from ..api import finished_seeds

            raise KeyboardInterrupt(f"{finished_seeds(chunks)} of {args.seeds} seeds are saved in "
                                    f"{chunks}; run the same command again to resume") from None
        if chunks is not None:
            shutil.rmtree(chunks, ignore_errors=True)
        print(f"# {system.name} Monte Carlo, {args.seeds} seeds, {time.perf_counter() - start:.2f} s")
        print(mc.table())
        if "warning" in mc.meta:
            print(f"# warning: {mc.meta['warning']}")
    status = 0
    if theory is not None and mc is not None:
        observables = tuple(args.observable) if args.observable else None
        agreement = compare(theory, mc, observables, t_min=args.t_min)
        print(agreement.summary())
        status = 0 if agreement.ok() else 1
    if args.out is not None:
        stem = args.out.with_suffix("")
        if theory is not None and mc is not None:
            theory.save(f"{stem}_theory.npz")
            mc.save(f"{stem}_mc.npz")
            print(f"# wrote {stem}_theory.npz and {stem}_mc.npz")
        else:
            (theory or mc).save(args.out)
            print(f"# wrote {args.out}")
    if args.plot is not None:
        plot_curves(theory, mc, path=args.plot)
        print(f"# wrote {args.plot}")
    return status


def _run_tune(args, system: CliSystem, setup, horizon) -> int:
    import jax

    from ..api import predict
    from ..autotune import samples_to_target, steps_to_target, tune, value_at_budget
    from ..curve import check_observable
    from ._space import parse_space

    space = parse_space(args.space) if args.space else system.tune_space(setup)
    observable = args.observable or system.observable
    options = {"method": args.method} if args.method else {}
    if args.observable is not None:
        # a misspelt name fails here, from one point, not after the whole grid is predicted
        check_observable(observable, predict(setup, horizon, times=[0.0], **options).observables)
    if args.objective == "value_at_budget":
        if (args.budget is None) == (args.budget_steps is None):
            raise CliError("--objective value_at_budget needs exactly one of --budget (samples) "
                           "and --budget-steps")
        objective = (value_at_budget(samples=args.budget, observable=observable)
                     if args.budget is not None else
                     value_at_budget(steps=args.budget_steps, observable=observable))
        run = {"budget": args.budget} if args.budget is not None else {"horizon": horizon}
    else:
        if args.budget_steps is not None:
            raise CliError("--budget-steps is for --objective value_at_budget; allowed with "
                           f"{args.objective}: --target, --budget (samples) or --horizon")
        reach = {"reach": args.reach, "settle": args.settle}
        if args.objective == "samples_to_target":
            # every candidate gets the same sample budget: --budget, or what the given setup
            # uses in --horizon
            budget = args.budget if args.budget is not None else (
                horizon * setup.steps_per_unit * setup.samples_per_step)
            run = {"budget": budget}
        else:
            if args.budget is not None:
                raise CliError("--budget is a sample budget; allowed with steps_to_target: "
                               "--horizon")
            run = {"horizon": horizon}
        target = (args.target if args.target is not None
                  else system.tune_target(setup, observable, space, {**run, **options}))
        objective = (samples_to_target if args.objective == "samples_to_target"
                     else steps_to_target)(target, observable, **reach)
    tuned = tune(setup, space, objective, **run, **options)
    print(f"# {system.name} tune: {objective.description}, over {', '.join(space)}")
    print(tuned.table_str())
    if system.tune_report is not None:
        print(system.tune_report(tuned))
    else:
        chosen = ", ".join(f"{n}={getattr(tuned.setup, n):.6g}" for n in tuned.names)
        print(f"# chosen {chosen}: predicted {tuned.objective_value:.6g}")
    for note in tuned.notes:
        print(f"# note: {note}")
    check = None
    if args.seeds > 0:
        if args.seeds < 2:
            raise CliError(f"--seeds {args.seeds} is invalid; allowed: 0 (no check) or >= 2")
        check = tuned.verify(jax.random.key(args.seed), seeds=args.seeds)
        print(check.summary())
    if args.out is not None:
        tuned.curve.save(args.out)
        print(f"# wrote {args.out}")
    if args.plot is not None:
        tuned.plot(args.plot, check)
        print(f"# wrote {args.plot}")
    return 0


def _sweep_executor(args):
    if args.dask:
        try:
            import distributed
        except ImportError:
            raise CliError("--dask needs the dask extra: pip install 'hdsgd[dask]'") from None
        return distributed.Client(args.dask).get_executor()
    if args.workers and args.workers > 0:
        import concurrent.futures
        import multiprocessing

        return concurrent.futures.ProcessPoolExecutor(
            args.workers, mp_context=multiprocessing.get_context("spawn"))
    return None


def _run_sweep(args, system: CliSystem, setup, horizon) -> int:
    from ..plot import plot_curves
    from .._sweep import Task, grid, sweep
    from ._space import parse_space

    _check_output(args.plot, "--plot")
    space = parse_space(args.space)
    try:
        setups = grid(setup, space)
    except ValueError as err:
        raise CliError(f"--space: {err}") from None
    options = {"method": args.method} if args.method else {}
    task = Task(args.task, horizon, seeds=args.seeds, seed=args.seed, options=options)
    executor = _sweep_executor(args)
    print(f"# {system.name} sweep: {args.task} at {len(setups)} settings; results in {args.dir}/")
    try:
        curves = sweep(setups, task, executor=executor, directory=args.dir)
    except KeyboardInterrupt:
        done = len(list(args.dir.glob(f"{system.name}-*.npz")))
        raise KeyboardInterrupt(f"{done} of {len(setups)} settings are saved in {args.dir}; run the "
                                "same command again to resume") from None
    finally:
        if executor is not None:
            executor.shutdown()
    observable = system.observable or curves[0].names[0]
    names = list(space)
    print(" ".join(f"{n:>14}" for n in names) + f" {observable + ' (end)':>22}")
    for s, c in zip(setups, curves):
        end = c.mean()[observable][-1]
        print(" ".join(f"{getattr(s, n):>14.6g}" for n in names) + f" {end:>22.6g}"
              + ("  (diverged)" if c.any_diverged else ""))
    if args.plot is not None:
        labels = [", ".join(f"{n}={getattr(s, n):.4g}" for n in names) for s in setups]
        theory = curves if args.task == "predict" else None
        mc = curves if args.task == "simulate" else None
        from ..plot import default_title

        title = default_title(curves[0], 60, skip=names, prefix=f"{system.name} sweep")
        plot_curves(theory, mc, names=[observable], labels=labels, path=args.plot, title=title)
        print(f"# wrote {args.plot}")
    return 0


def _run_demo(args) -> int:
    import jax

    args.out.mkdir(parents=True, exist_ok=True)
    names = args.systems or list(SYSTEMS)
    print(f"hdsgd demo: theory vs Monte Carlo for {', '.join(names)}; figures in {args.out}/")
    failed = []
    for i, name in enumerate(names):
        start = time.perf_counter()
        demo = SYSTEMS[name].demo(args.out, jax.random.fold_in(jax.random.key(args.seed), i))
        ok = demo.agreement.ok()
        verdict = "agrees" if ok else "DOES NOT AGREE"
        if not ok:
            failed.append(name)
        print(f"  {name}: {verdict}. {demo.line}  [{time.perf_counter() - start:.1f} s, "
              f"{demo.figure}]", flush=True)
    if failed:
        print(f"hdsgd demo: theory and Monte Carlo disagree for {', '.join(failed)}")
        return 1
    print("hdsgd demo: theory and Monte Carlo agree for every system")
    return 0


def _subparser(parser, names):
    """The argparse parser of ``hdsgd NAME COMMAND`` (for errors from the right level)."""
    current = parser
    for name in names:
        actions = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or name not in actions[0].choices:
            break
        current = actions[0].choices[name]
    return current


def console() -> int:
    """The ``hdsgd`` executable: `main` in a process of its own, so it first gives JAX one CPU
    device per core (`hdsgd._devices.use_cpu_cores`; ``HDSGD_CPU_DEVICES=N`` overrides), over
    which the Monte Carlo seeds are sharded, and a persistent compilation cache
    (`hdsgd._cache.use_compilation_cache`; ``HDSGD_CACHE_DIR``)."""
    try:
        use_cpu_cores()
    except ValueError as err:
        print(f"hdsgd: error: {err}", file=sys.stderr)
        return 2
    use_compilation_cache()
    return main()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(argv)
    where = [n for n in (getattr(args, "system", None), getattr(args, "command", None)) if n]
    if extra:
        _subparser(parser, where).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.system is None:
        parser.print_help()
        return 0
    prog = "hdsgd " + " ".join(where)
    try:
        if args.system == "demo":
            return _run_demo(args)
        if args.system == "teach":
            return _teach.run(args)
        system = SYSTEMS[args.system]
        if getattr(args, "command", None) is None:
            _subparser(parser, where).print_help()
            return 0
        return _run_system(args, system)
    except (CliError, ValueError) as err:
        text = _flag_error(err, SYSTEMS[args.system]) if isinstance(err, ValueError) and args.system in SYSTEMS else str(err)
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print(f"{prog}: interrupted" + (f": {stop}" if str(stop) else ""), file=sys.stderr)
        return 130


_load_systems()

if __name__ == "__main__":
    sys.exit(console())
