"""`tune-rl sweep` and `tune-rl list`.

Exit codes: 0 when at least one trial succeeded, 1 when none did, 2 for bad
input (reported before Ray starts).
"""

from __future__ import annotations

import argparse
import json
import sys

from tune_rl.errors import UsageError

# CLI flag -> SweepSpec field
OVERRIDES = {
    "env": "env",
    "trials": "trials",
    "max_env_steps": "max_env_steps",
    "seed": "seed",
    "storage_path": "storage_path",
    "tracking_uri": "tracking_uri",
    "experiment": "experiment",
    "name": "name",
    "max_concurrent": "max_concurrent",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tune-rl", description="Hyperparameter sweeps of RLlib algorithms on Atari.")
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="run a sweep (or --dry-run to see its plan)")
    sweep.add_argument("--algo", help="one of the ten presets (tune-rl list)")
    sweep.add_argument("--spec", help="sweep file; default sweeps/<algo>.yaml")
    sweep.add_argument("--profile", default="quick", help="quick (default) or full")
    sweep.add_argument("--env", help="breakout or cartpole")
    sweep.add_argument("--trials", type=int, help="number of trials")
    sweep.add_argument("--max-env-steps", type=int, help="env steps per trial")
    sweep.add_argument("--seed", type=int, help="seed of Optuna's sampler and of RLlib")
    sweep.add_argument("--max-concurrent", type=int, help="trials at once (0: from CPUs)")
    sweep.add_argument("--name", help="sweep name (results folder, MLflow parent run)")
    sweep.add_argument("--storage-path", help="where results go (default ./ray_results)")
    sweep.add_argument("--tracking-uri", help="MLflow store (default sqlite:///mlflow.db)")
    sweep.add_argument("--experiment", help="MLflow experiment (default <env>-<algo>)")
    sweep.add_argument("--address",
                       help="run on an existing Ray cluster: auto, host:port or ray://host:port")
    sweep.add_argument("--resume", action="store_true",
                       help="continue the interrupted sweep --name from its storage folder")
    sweep.add_argument("--resume-if-unfinished", action="store_true",
                       help="resume --name if it exists unfinished, else start it (for "
                            "scheduled jobs that may be restarted)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the resolved plan and start nothing")

    commands.add_parser("list", help="the algorithms, their search spaces and sweep files")
    return parser


def _cmd_sweep(args: argparse.Namespace) -> int:
    from tune_rl.runner import plan_sweep, sweep_state
    from tune_rl.spec import load_spec

    overrides = {field: getattr(args, flag) for flag, field in OVERRIDES.items()}
    if (args.resume or args.resume_if_unfinished) and not args.name:
        raise UsageError("--resume needs --name: the sweep to continue")
    spec = load_spec(args.algo, args.spec, args.profile, **overrides)
    if args.resume_if_unfinished:
        args.resume = sweep_state(spec) == "unfinished"
    plan = plan_sweep(spec, resume=args.resume, address=args.address)
    if args.dry_run:
        print(json.dumps(plan.describe(), indent=2, default=str))
        return 0

    from tune_rl.report import format_summary
    from tune_rl.runner import run_sweep

    verb = "Resuming sweep" if args.resume else "Sweep"
    print(f"{verb} {spec.name}: {spec.trials} trials of {spec.algo} on {spec.env}, "
          f"{spec.max_env_steps} env steps each. Results: {spec.sweep_dir}", flush=True)
    summary = run_sweep(plan, resume=args.resume, address=args.address)
    if summary.get("interrupted"):
        print(f"\nSweep {spec.name} interrupted; its state is saved. Resume it with:\n"
              f"  {resume_command(sys.argv, spec.name)}", file=sys.stderr)
        return 130
    print(format_summary(summary))
    return 0 if summary["succeeded"] else 1


def resume_command(argv: list[str], name: str) -> str:
    """The command that was run, with --resume and the sweep's --name."""
    import shlex

    args = [a for a in argv[1:] if a != "--resume"]
    if "--name" not in args:
        args += ["--name", name]
    return shlex.join(["tune-rl", *args, "--resume"])


def _cmd_list() -> int:
    from tune_rl.envs import ENVS
    from tune_rl.presets import PRESETS
    from tune_rl.spaces import load_space, space_summary
    from tune_rl.spec import SWEEPS_DIR, default_spec_file

    for name, preset in PRESETS.items():
        spec_file = default_spec_file(name)
        print(f"{name}  (RLlib {preset.rllib_algo})  sweep file: "
              f"{spec_file.relative_to(SWEEPS_DIR.parent) if spec_file.exists() else 'none'}")
        for param, domain in space_summary(load_space(preset, ENVS["breakout"])).items():
            print(f"    {param:28s} {domain}")
    print("\nEnvs: " + ", ".join(f"{e.name} ({e.description})" for e in ENVS.values()))
    return 0


def _quiet_library_logs() -> None:
    """RLlib warns at import and per config ("running X on the new API stack")."""
    import logging

    import gymnasium
    import ray.rllib  # noqa: F401  (sets its loggers up at import; then we lower them)

    gymnasium.logger.min_level = logging.ERROR
    for name in ("ray.rllib", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_library_logs()
    try:
        if args.command == "list":
            return _cmd_list()
        return _cmd_sweep(args)
    except UsageError as err:
        print(f"tune-rl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
