"""The ``hdsgd`` command.

    hdsgd demo [--out DIR]                       theory vs Monte Carlo for every system
    hdsgd SYSTEM predict  [--field value ...]    deterministic equivalent
    hdsgd SYSTEM simulate [--field value ...]    Monte Carlo
    hdsgd SYSTEM compare  [--field value ...]    both, with the gap in standard errors
    hdsgd SYSTEM tune     [...]                  where the system has a tuner

Every command prints a short table; ``--out FILE.npz`` saves the curve(s), ``--plot FILE.png``
draws them. ``hdsgd SYSTEM COMMAND --help`` lists every field with its meaning and default.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import registry


def _add_system_options(parser: argparse.ArgumentParser, system: registry.System) -> None:
    group = parser.add_argument_group(f"{system.name} fields")
    for opt in system.options:
        group.add_argument(opt.flag, dest=opt.name, type=opt.type, default=opt.default,
                           choices=opt.choices, help=f"{opt.help} (default: {opt.default})")


def _add_run_options(parser, system, *, theory: bool, mc: bool) -> None:
    unit = "steps" if system.time_unit == "step" else "t = samples/dim"
    parser.add_argument("--horizon", type=float, default=system.default_horizon,
                        help=f"final time, in {unit} (default: {system.default_horizon})")
    if theory:
        parser.add_argument("--method", choices=system.methods, default=None,
                            help="deterministic equivalent (default: the Setup's own default, "
                                 f"usually {system.methods[0]}; some models allow only some)")
    if mc:
        parser.add_argument("--seeds", type=int, default=16, help="Monte Carlo runs (default: 16)")
        parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")
        if system.simulate_methods:
            parser.add_argument("--mc-method", choices=system.simulate_methods,
                                default=system.simulate_methods[0],
                                help=f"Monte Carlo variant (default: {system.simulate_methods[0]})")
    if theory and mc:
        parser.add_argument("--t-min", type=float, default=None,
                            help="compare only times >= this (early points, where a few seeds "
                                 "give an unreliable standard error, are skipped)")
    parser.add_argument("--out", type=Path, default=None, help="write the curve(s) to this .npz")
    parser.add_argument("--plot", type=Path, default=None, help="write a figure to this .png")


def build_parser() -> argparse.ArgumentParser:
    import hdsgd  # noqa: F401  (registers the systems)

    parser = argparse.ArgumentParser(
        prog="hdsgd",
        description="Predict SGD-type training in high dimension without training: "
                    "deterministic equivalents and their Monte Carlo twins.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="systems:\n" + "\n".join(
            f"  {s.name:<12} {s.summary}" for s in registry.SYSTEMS.values()
        ) + "\n\nexample: hdsgd lstsq compare --batch-size 4 --plot lstsq.png",
    )
    sub = parser.add_subparsers(dest="system", metavar="{demo," + ",".join(registry.SYSTEMS) + "}")
    demo = sub.add_parser("demo", help="theory vs Monte Carlo for every system, with figures")
    demo.add_argument("--out", type=Path, default=Path("hdsgd-demo"),
                      help="folder for the figures (default: ./hdsgd-demo)")
    demo.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")
    demo.add_argument("--systems", nargs="*", default=None, choices=list(registry.SYSTEMS),
                      help="only these systems (default: all)")
    for system in registry.SYSTEMS.values():
        sp = sub.add_parser(system.name, help=system.summary, description=system.summary)
        cmds = sp.add_subparsers(dest="command", metavar="{predict,simulate,compare"
                                 + (",tune" if system.tune else "") + "}")
        for name, theory, mc, text in (
            ("predict", True, False, "integrate the deterministic equivalent"),
            ("simulate", False, True, "run the finite-dimensional Monte Carlo"),
            ("compare", True, True, "theory vs Monte Carlo, gaps in standard errors"),
        ):
            cp = cmds.add_parser(name, help=text, description=f"{system.name} {name}: {text}. "
                                 f"Time unit: {system.time_unit}.")
            _add_system_options(cp, system)
            _add_run_options(cp, system, theory=theory, mc=mc)
        if system.tune is not None:
            tp = cmds.add_parser("tune", help="choose hyperparameters from the predictions alone",
                                 description=f"{system.name} tune: choose hyperparameters from the "
                                 "predictions alone, then check the choice with Monte Carlo.")
            _add_system_options(tp, system)
            _add_run_options(tp, system, theory=True, mc=True)
            tg = tp.add_argument_group("tuning")
            tg.add_argument("--objective", default="samples_to_target",
                            choices=("samples_to_target", "steps_to_target", "value_at_budget"),
                            help="what to minimise (default: samples_to_target)")
            tg.add_argument("--target", type=float, default=None,
                            help="target value of the observable (*_to_target objectives)")
            tg.add_argument("--budget", type=float, default=None,
                            help="sample budget (value_at_budget)")
            tg.add_argument("--observable", default=None,
                            help="observable the objective reads (default: the system's headline one)")
    return parser


def _setup_from(args, system):
    return system.build(**{opt.name: getattr(args, opt.name) for opt in system.options})


def _run_system(args, system) -> int:
    import jax

    from .api import predict, simulate
    from .compare import compare
    from .plot import plot_curves

    setup = _setup_from(args, system)
    if args.command == "tune":
        print(system.tune(setup, args))
        return 0
    theory = mc = None
    if args.command in ("predict", "compare"):
        start = time.perf_counter()
        theory = predict(setup, args.horizon, method=args.method)
        print(f"# {system.name} prediction ({theory.meta.get('method', args.method)}), "
              f"{time.perf_counter() - start:.2f} s")
        print(theory.table())
        if "warning" in theory.meta:
            print(f"# warning: {theory.meta['warning']}")
    if args.command in ("simulate", "compare"):
        start = time.perf_counter()
        variant = {"method": args.mc_method} if getattr(args, "mc_method", None) else {}
        mc = simulate(setup, args.horizon, key=jax.random.key(args.seed), seeds=args.seeds,
                      **variant)
        print(f"# {system.name} Monte Carlo, {args.seeds} seeds, {time.perf_counter() - start:.2f} s")
        print(mc.table())
    if mc is not None and mc.any_diverged:
        print("# the Monte Carlo diverged in some runs (marked 'diverged')")
    if theory is not None and mc is not None:
        print(compare(theory, mc, t_min=args.t_min).summary())
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
        plot_curves(theory, mc, path=args.plot, title=f"{system.name} {args.command}")
        print(f"# wrote {args.plot}")
    return 0


def _run_demo(args) -> int:
    import jax

    args.out.mkdir(parents=True, exist_ok=True)
    names = args.systems or list(registry.SYSTEMS)
    print(f"hdsgd demo: theory vs Monte Carlo for {', '.join(names)}; figures in {args.out}/")
    for i, name in enumerate(names):
        start = time.perf_counter()
        line = registry.SYSTEMS[name].demo(args.out, jax.random.fold_in(jax.random.key(args.seed), i))
        print(f"  {line}  [{time.perf_counter() - start:.1f} s]", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.system is None:
        parser.print_help()
        return 0
    try:
        if args.system == "demo":
            return _run_demo(args)
        system = registry.SYSTEMS[args.system]
        if getattr(args, "command", None) is None:
            parser.parse_args([args.system, "--help"])
            return 0
        return _run_system(args, system)
    except ValueError as err:
        print(f"hdsgd: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
