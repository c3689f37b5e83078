"""The tune-rl command line: sweep, submit, reference, confirm, best, train, evaluate,
report, ...

Exit codes: 0 when at least one trial succeeded, 1 when none did, 2 for bad
input (reported before Ray starts), 130 when interrupted. `submit` exits
with its job's code.
"""

from __future__ import annotations

import argparse
import json
import os
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
    "search": "search",
    "optuna_storage": "optuna_storage",
}


def _sweep_options() -> argparse.ArgumentParser:
    """What a sweep is: shared by `sweep` and `submit` (which passes them on)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--algo", help="one of the ten presets (tune-rl list)")
    options.add_argument("--spec", help="sweep file; default sweeps/<algo>.yaml")
    options.add_argument("--profile", default="quick", help="quick (default) or full")
    options.add_argument("--env", help="breakout or cartpole")
    options.add_argument("--trials", type=int, help="number of trials")
    options.add_argument("--max-env-steps", type=int, help="env steps per trial")
    options.add_argument("--seed", type=int, help="seed of Optuna's sampler and of RLlib")
    options.add_argument("--max-concurrent", type=int, help="trials at once (0: from CPUs)")
    options.add_argument("--search", help="tpe (default), random, pbt or pb2 (pbt and pb2 "
                                          "replace ASHA)")
    options.add_argument("--name", help="sweep name (results folder, MLflow parent run)")
    options.add_argument("--storage-path", help="where results go (default ./ray_results)")
    options.add_argument("--tracking-uri", help="MLflow store (default sqlite:///mlflow.db)")
    options.add_argument("--experiment", help="MLflow experiment (default <env>-<algo>)")
    options.add_argument("--optuna-storage",
                         help="where the Optuna study is kept: an RDB URL (postgresql://...) "
                              "or a journal file (default <storage-path>/<name>.optuna.journal)")
    options.add_argument("--resume", action="store_true",
                         help="continue the interrupted sweep --name from its storage folder")
    options.add_argument("--resume-if-unfinished", action="store_true",
                         help="resume --name if it exists unfinished, else start it (for "
                              "scheduled jobs that may be restarted)")
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tune-rl", description="Hyperparameter sweeps of RLlib algorithms on Atari.")
    commands = parser.add_subparsers(dest="command", required=True)
    options = _sweep_options()

    sweep = commands.add_parser("sweep", parents=[options],
                                help="run a sweep (or --dry-run to see its plan)")
    sweep.add_argument("--address",
                       help="run on an existing Ray cluster: auto, host:port or ray://host:port")
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the resolved plan and start nothing")

    submit = commands.add_parser(
        "submit", parents=[options],
        help="run a sweep on a Ray cluster as a Ray job, and follow its logs")
    submit.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="the cluster's dashboard, http://<head>:8265 (default "
                             "$RAY_ADDRESS)")
    submit.add_argument("--no-follow", action="store_true",
                        help="print the job id and return; do not stream its logs")
    submit.add_argument("--install-dependencies", action="store_true",
                        help="have Ray pip-install the project's dependencies for the job "
                             "(for clusters whose image lacks them)")
    submit.add_argument("--dry-run", action="store_true",
                        help="print the job (entrypoint, runtime env) and submit nothing")

    commands.add_parser("list", help="the algorithms, their search spaces and sweep files")

    compare = commands.add_parser(
        "compare", help="one sweep per algorithm at the same budget, then a leaderboard "
                        "(make sweep ALGO=all)")
    compare.add_argument("--algos", default="all",
                         help="all (default) or a comma-separated list, e.g. PPO,DQN")
    compare.add_argument("--profile", default="quick", help="every sweep's profile "
                                                            "(default quick)")
    compare.add_argument("--env", help="breakout or cartpole")
    compare.add_argument("--trials", type=int,
                         help="trials per algorithm (default: the first algorithm's profile's)")
    compare.add_argument("--max-env-steps", type=int, help="env steps per trial (default: "
                                                           "the first algorithm's profile's)")
    compare.add_argument("--seed", type=int, help="every sweep's seed")
    compare.add_argument("--storage-path", help="where results go (default ./ray_results)")
    compare.add_argument("--tracking-uri", help="MLflow store (default sqlite:///mlflow.db)")
    compare.add_argument("--resume", action="store_true",
                         help="continue the comparison --name: finished sweeps are read, "
                              "the interrupted one resumed, the rest run")
    compare.add_argument("--name", help="the comparison's name (default "
                                        "compare-<env>-<profile>-<time>); each sweep is "
                                        "<name>-<algo>")

    reference = commands.add_parser(
        "reference", help="run an algorithm's published reference configuration (one "
                          "trial) and draw its curve beside the published one")
    reference.add_argument("--algo", required=True, help="PPO, Rainbow_DQN or DQN")
    reference.add_argument("--env-steps", type=int,
                           help="env steps to run (default: the reference's, 1,000,000)")
    reference.add_argument("--name", help="sweep name (default reference-<algo>-<time>)")
    reference.add_argument("--seed", type=int, help="seed of RLlib (default 0)")
    reference.add_argument("--storage-path", help="a local folder (default ./ray_results)")
    reference.add_argument("--tracking-uri", help="MLflow store (default sqlite:///mlflow.db)")
    reference.add_argument("--output", help="also write the curve files here "
                                            "(e.g. benchmarks/results)")
    reference.add_argument("--dry-run", action="store_true",
                           help="print the reference's values and sources; run nothing")
    reference.add_argument("--curve-only", action="store_true",
                           help="redraw the curve of the reference run --name (finished or "
                                "stopped part way); run nothing")

    confirm = commands.add_parser(
        "confirm", help="train a finished sweep's top configurations again on new seeds, "
                        "and say whether its ranking held")
    confirm.add_argument("sweep", help="the sweep's name (its folder under --storage-path)")
    confirm.add_argument("--top", type=int, default=3, help="configurations (default 3)")
    confirm.add_argument("--seeds", type=int, default=3, help="new seeds each (default 3)")
    confirm.add_argument("--env-steps", type=int,
                         help="env steps per run (default: the sweep's trial budget)")
    confirm.add_argument("--name", help="the confirmation's name (default <sweep>-confirm)")
    confirm.add_argument("--storage-path", default="ray_results",
                         help="where the sweep is (default ./ray_results)")
    confirm.add_argument("--tracking-uri", help="MLflow store (default: the sweep's)")
    confirm.add_argument("--resume", action="store_true",
                         help="continue an interrupted confirmation (--name)")

    best = commands.add_parser(
        "best", help="write a sweep's winner (the confirmed one if any) as a sweep file")
    best.add_argument("sweep", help="the sweep's name (its folder under --storage-path)")
    best.add_argument("-o", "--output", default="best.yaml", help="default best.yaml")
    best.add_argument("--storage-path", default="ray_results",
                      help="where the sweep is (default ./ray_results)")

    train = commands.add_parser(
        "train", help="train one configuration (a file `tune-rl best` wrote) for as long "
                      "as asked, with checkpoints, MLflow and resume like a sweep's trial")
    train.add_argument("--config", required=True, help="the sweep file, e.g. best.yaml")
    train.add_argument("--env-steps", type=int, help="env steps (default: the file's)")
    train.add_argument("--name", help="run name (default train-<algo>-<env>-<time>)")
    train.add_argument("--seed", type=int, help="RLlib seed (default: the file's)")
    train.add_argument("--storage-path", help="where results go (default ./ray_results)")
    train.add_argument("--tracking-uri", help="MLflow store (default sqlite:///mlflow.db)")
    train.add_argument("--resume", action="store_true",
                       help="continue the interrupted run --name from its checkpoint")

    evaluate = commands.add_parser(
        "evaluate", help="play a trained policy's complete games greedily and print their "
                         "scores; optionally a GIF of the first game")
    evaluate.add_argument("source", nargs="?",
                          help="a checkpoint folder, or models:/<name>/<version> (or /latest)")
    evaluate.add_argument("--sweep", help="evaluate this sweep's best checkpoint instead (the "
                                          "confirmed winner's when confirmed)")
    evaluate.add_argument("--episodes", type=int, default=10, help="games (default 10)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="game k is reset with a seed derived from this (default 0)")
    evaluate.add_argument("--storage-path", default="ray_results",
                          help="where --sweep is (default ./ray_results)")
    evaluate.add_argument("--tracking-uri",
                          help="MLflow store (default $MLFLOW_TRACKING_URI, else "
                               "sqlite:///mlflow.db; for --sweep, the sweep's)")
    evaluate.add_argument("--env-config", action="append", default=[], metavar="KEY=VALUE",
                          help="play under another env_config than the one it trained with, "
                               "e.g. noop_max=30 or repeat_action_probability=0.25 "
                               "(repeatable)")
    evaluate.add_argument("--gif", help="write the first game here, in colour, with a frame "
                                        "counter and the score, at the game's own speed")
    evaluate.add_argument("--gif-seconds", type=float, default=60.0,
                          help="game time recorded, from the start (default 60: 900 images "
                               "of Breakout, about 1 MB)")
    evaluate.add_argument("--gif-every", type=int, default=1,
                          help="keep one agent step in N (default 1: every step, 15 images "
                               "a second on Breakout); each image is then shown N times "
                               "longer")

    report = commands.add_parser(
        "report", help="a finished sweep as one self-contained HTML file (settings, trials, "
                       "learning curves, Optuna's plots, confirmation, the winner playing), "
                       "also logged to its MLflow run")
    report.add_argument("sweep", help="the sweep's name (its folder under --storage-path)")
    report.add_argument("-o", "--output",
                        help="the HTML file (default report.html in the sweep's folder)")
    report.add_argument("--storage-path", default="ray_results",
                        help="where the sweep is (default ./ray_results)")
    report.add_argument("--tracking-uri", help="MLflow store (default: the sweep's)")
    report.add_argument("--gif", help="a GIF of the winner playing to show (e.g. one "
                                      "tune-rl evaluate --gif wrote)")
    report.add_argument("--with-gif", action="store_true",
                        help="record one: the sweep's best plays --episodes greedy games, as "
                             "tune-rl evaluate --gif plays them; the first game is shown")
    report.add_argument("--episodes", type=int, default=3,
                        help="games --with-gif plays (default 3)")

    dashboard = commands.add_parser(
        "optuna-dashboard", help="serve a sweep's Optuna study in Optuna Dashboard, on "
                                 "127.0.0.1 (make optuna-dashboard)")
    dashboard.add_argument("sweep", help="the sweep's name")
    dashboard.add_argument("--port", type=int, default=8080, help="default 8080")
    dashboard.add_argument("--storage-path", default="ray_results",
                           help="where the sweep is (default ./ray_results)")
    dashboard.add_argument("--optuna-storage",
                           help="the study's storage, if the sweep was given one")

    links = commands.add_parser(
        "ui-links", help="the MLflow UI's runs list of each experiment (make mlflow-ui)")
    links.add_argument("--tracking-uri", default=os.environ.get(
        "MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"), help="MLflow store")
    links.add_argument("--ui", help="where the UI is served (default http://127.0.0.1:5000)")
    return parser


def _load(args: argparse.Namespace):
    from tune_rl.spec import load_spec

    overrides = {field: getattr(args, flag) for flag, field in OVERRIDES.items()}
    if (args.resume or args.resume_if_unfinished) and not args.name:
        raise UsageError("--resume needs --name: the sweep to continue")
    return load_spec(args.algo, args.spec, args.profile, **overrides)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from tune_rl.plan import plan_sweep, sweep_state

    spec = _load(args)
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
          f"{spec.max_env_steps} env steps each. Results: {spec.sweep_location}", flush=True)
    summary = run_sweep(plan, resume=args.resume, address=args.address)
    if summary.get("interrupted"):
        print(f"\nSweep {spec.name} interrupted; its state is saved. Resume it with:\n"
              f"  {resume_command(sys.argv, spec.name)}", file=sys.stderr)
        return 130
    print(format_summary(summary))
    return 0 if summary["succeeded"] else 1


def _cmd_submit(args: argparse.Namespace) -> int:
    from tune_rl.plan import resolve_plan
    from tune_rl.submit import job_sweep_args, prepare_job, submit_and_follow

    spec = _load(args)
    resolve_plan(spec)  # the space and settings, checked before any upload
    job = prepare_job(args.address, spec, job_sweep_args(args, _sweep_options(), spec),
                      install_dependencies=args.install_dependencies)
    if args.dry_run:
        print(json.dumps(job.describe(), indent=2))
        return 0
    return submit_and_follow(job, follow=not args.no_follow)


def resume_command(argv: list[str], name: str) -> str:
    """The command that was run, with --resume and the sweep's --name."""
    import shlex

    args = [a for a in argv[1:] if a != "--resume"]
    if "--name" not in args:
        args += ["--name", name]
    return shlex.join(["tune-rl", *args, "--resume"])


def _cmd_reference(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tune_rl.references import get_reference, plan_reference, reference_spec

    reference = get_reference(args.algo)
    spec = reference_spec(reference, args.env_steps or reference.default_env_steps, args.name,
                          args.storage_path, args.tracking_uri, args.seed)
    if args.curve_only:
        from tune_rl.references import draw_reference

        if not args.name:
            raise UsageError("--curve-only needs --name: the reference run to draw")
        for path in draw_reference(reference, spec,
                                   Path(args.output) if args.output else None):
            print(f"Curve: {path}")
        return 0
    if args.dry_run:
        plan_reference(reference, spec)
        print(json.dumps(reference.describe(), indent=2, default=str))
        return 0

    from tune_rl.references import run_reference
    from tune_rl.report import format_summary

    print(f"Reference {reference.name}: {spec.algo} on {spec.env}, {spec.max_env_steps} env "
          f"steps. Results: {spec.sweep_location}", flush=True)
    summary = run_reference(reference, spec, output=Path(args.output) if args.output else None)
    if summary.get("interrupted"):
        return 130
    print(format_summary(summary))
    for path in summary.get("reference", {}).get("files", []):
        print(f"Curve: {path}")
    return 0 if summary["succeeded"] else 1


def _cmd_list() -> int:
    from tune_rl.config import describe_network
    from tune_rl.envs import ENVS
    from tune_rl.presets import PRESETS
    from tune_rl.spaces import load_space, space_summary
    from tune_rl.spec import SWEEPS_DIR, default_spec_file

    for name, preset in PRESETS.items():
        spec_file = default_spec_file(name)
        print(f"{name}  (RLlib {preset.rllib_algo})  sweep file: "
              f"{spec_file.relative_to(SWEEPS_DIR.parent) if spec_file.exists() else 'none'}")
        if preset.is_dqn:
            print("  components: " + ", ".join(f"{k} {v}" for k, v in preset.components().items()))
        network = describe_network(preset, ENVS["breakout"])
        print(f"  network on breakout ({network['parameters']:,} parameters):")
        for layer in network["layers"]:
            print(f"    {layer}")
        print("  search space:")
        for param, domain in space_summary(load_space(preset, ENVS["breakout"])).items():
            print(f"    {param:28s} {domain}")
    print("\nEnvs: " + ", ".join(f"{e.name} ({e.description})" for e in ENVS.values()))
    return 0


def _cmd_ui_links(args: argparse.Namespace) -> int:
    from tune_rl.tracking import LOCAL_UI, experiment_links

    ui = args.ui or LOCAL_UI
    links = experiment_links(args.tracking_uri, ui)
    if not links:
        print(f"No sweeps in {args.tracking_uri} yet; the MLflow UI will be at {ui}")
        return 0
    # MLflow 3 opens an experiment on its GenAI overview; these open its runs,
    # on the view of its latest sweep's trials (tracking.save_runs_view).
    print(f"MLflow UI at {ui}; each experiment's runs, opened on its latest sweep's trials:")
    width = max(map(len, links))
    for name, url in links.items():
        print(f"  {name:{width}}  {url}")
    return 0


def _quiet_library_logs() -> None:
    """RLlib warns at import and per config ("running X on the new API stack")."""
    import logging

    import gymnasium
    import ray.rllib  # noqa: F401  (sets its loggers up at import; then we lower them)

    gymnasium.logger.min_level = logging.ERROR
    for name in ("ray.rllib", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _cmd_confirm(args: argparse.Namespace) -> int:
    from tune_rl.confirm import finish_confirmation, load_sweep, plan_confirmation
    from tune_rl.runner import run_sweep

    if args.resume and not args.name:
        raise UsageError("--resume needs --name: the confirmation to continue")
    sweep = load_sweep(args.sweep, args.storage_path)
    plan = plan_confirmation(sweep, args.top, args.seeds, args.env_steps, args.name,
                             args.storage_path, args.tracking_uri, resume=args.resume)
    spec = plan.spec
    print(f"Confirming sweep {args.sweep}: top {args.top} configurations x {args.seeds} new "
          f"seeds, {spec.max_env_steps} env steps each ({spec.trials} runs). "
          f"Results: {spec.sweep_location}", flush=True)
    summary = run_sweep(plan, resume=args.resume,
                        finish=finish_confirmation(sweep, args.top, args.seeds))
    if summary.get("interrupted"):
        print(f"\nConfirmation {spec.name} interrupted; resume it with:\n  "
              f"{resume_command(sys.argv, spec.name)}", file=sys.stderr)
        return 130
    from tune_rl.confirm import format_confirmation

    table = summary["confirmation"]
    print(format_confirmation(table, args.seeds, spec.max_env_steps))
    if table.get("model"):
        print(f"Registered: {table['model']} (tagged confirmed)")
    return 0 if summary["succeeded"] else 1


def _cmd_best(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tune_rl.best import best_yaml

    text = best_yaml(args.sweep, args.storage_path)
    Path(args.output).write_text(text)
    print(text.splitlines()[0].removeprefix("# "))
    print(f"Written: {args.output}; train it with: tune-rl train --config {args.output} "
          "--env-steps N")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from datetime import datetime

    from tune_rl.plan import plan_sweep
    from tune_rl.report import format_summary
    from tune_rl.runner import run_sweep
    from tune_rl.spec import load_spec

    if args.resume and not args.name:
        raise UsageError("--resume needs --name: the run to continue")
    spec = load_spec(spec_file=args.config, max_env_steps=args.env_steps, seed=args.seed,
                     storage_path=args.storage_path, tracking_uri=args.tracking_uri,
                     name=args.name)
    if not args.name:
        spec.name = f"train-{spec.algo}-{spec.env}-{datetime.now():%Y%m%d-%H%M%S}"
    if not spec.params:
        raise UsageError(f"{args.config} fixes no params: train runs one configuration "
                         "(write one with tune-rl best), tune-rl sweep searches")
    plan = plan_sweep(spec, resume=args.resume)
    print(f"Training {spec.algo} on {spec.env} for {spec.max_env_steps} env steps "
          f"(seed {spec.seed}): {spec.sweep_location}", flush=True)
    summary = run_sweep(plan, resume=args.resume)
    if summary.get("interrupted"):
        print(f"\nRun {spec.name} interrupted; resume it with:\n  "
              f"{resume_command(sys.argv, spec.name)}", file=sys.stderr)
        return 130
    print(format_summary(summary))
    return 0 if summary["succeeded"] else 1


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tune_rl.envs import get_env
    from tune_rl.evaluation import format_evaluation
    from tune_rl.saved_policy import (
        env_config_changes,
        evaluate_saved,
        evaluation_record,
        find_policy,
    )
    from tune_rl.watch import GameRecorder

    if args.episodes < 1:
        raise UsageError(f"--episodes must be at least 1, got {args.episodes}")
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be an integer in [0, 4294967295], got {args.seed}")
    gif = Path(args.gif) if args.gif else None
    if gif is not None:
        if gif.suffix.lower() != ".gif":
            raise UsageError(f"--gif {args.gif!r}: the file name must end in .gif")
        if not gif.parent.is_dir():
            raise UsageError(f"--gif {args.gif!r}: folder {str(gif.parent)!r} does not exist")
        if args.gif_every < 1 or args.gif_seconds <= 0:
            raise UsageError("--gif-every must be at least 1 and --gif-seconds above 0")
    changes = env_config_changes(args.env_config)
    with find_policy(args.source, args.sweep, args.storage_path, args.tracking_uri) as policy:
        get_env(policy.env).check_config(changes)
        policy.env_config = {**policy.env_config, **changes}
        print(f"Evaluating {policy.source}: {policy.algo} on {policy.env}, {args.episodes} "
              f"complete games, greedy, seed {args.seed}, env_config {policy.env_config}",
              flush=True)
        recorder = gif and GameRecorder(0, args.gif_every, args.gif_seconds)
        result = evaluate_saved(policy, episodes=args.episodes, seed=args.seed,
                                watch=recorder or None)
        print(format_evaluation(result))
        record = evaluation_record(policy, result)
        if recorder:
            size = recorder.write_gif(gif)
            record["gif"] = {"file": gif.name, "game": 1, "images": len(recorder.images),
                             "seconds": round(recorder.clock[-1] - recorder.clock[0], 2),
                             "bytes": size}
            print(f"GIF: {gif} (game 1, {len(recorder.images)} images, "
                  f"{record['gif']['seconds']:.1f} s of play, {size / 1e6:.2f} MB)")
            if args.sweep:  # for the sweep's report (tune-rl report)
                from tune_rl.storage import Storage
                from tune_rl.sweep_report import keep_winner_gif

                scores = ", ".join(f"{s:g}" for s in result.scores)
                keep_winner_gif(Storage(args.storage_path), args.sweep, gif,
                                f"{policy.source}: game 1 of {args.episodes} greedy games "
                                f"(scores {scores}; mean {result.mean:.4g}), recorded by "
                                "tune-rl evaluate --sweep")
        folder = policy.log_evaluation(record, gif)
        if folder:
            print(f"MLflow: scores{' and GIF' if gif else ''} logged to run {policy.run_id} "
                  f"({policy.tracking_uri}, {folder}/)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from tune_rl.storage import Storage
    from tune_rl.sweep_report import (
        build_report,
        kept_winner_gif,
        load_finished,
        log_report,
        record_gif,
    )

    started = time.monotonic()
    if args.gif and args.with_gif:
        raise UsageError("--gif shows a GIF you have, --with-gif records one: pass one of them")
    if args.gif and not Path(args.gif).is_file():
        raise UsageError(f"--gif {args.gif!r}: no such file")
    if args.episodes < 1:
        raise UsageError(f"--episodes must be at least 1, got {args.episodes}")
    output = Path(args.output) if args.output else None
    if output and not output.parent.is_dir():
        raise UsageError(f"-o {args.output!r}: folder {str(output.parent)!r} does not exist")
    summary = load_finished(args.sweep, args.storage_path)
    storage = Storage(args.storage_path)
    if output is None:  # beside the summary; a sweep on cloud storage's in this folder
        output = (Path(f"{args.sweep}-report.html") if storage.scheme
                  else Path(storage.path(args.sweep)) / "report.html")
    gif = None
    if args.gif:
        gif = Path(args.gif).read_bytes(), f"{args.gif} (given with --gif)"
    elif args.with_gif:
        gif = record_gif(args.sweep, args.storage_path, args.tracking_uri, args.episodes)
    else:
        gif = kept_winner_gif(storage, args.sweep)
    output.write_text(build_report(summary, storage, gif))
    print(f"Report: {output} ({output.stat().st_size / 1e6:.2f} MB, "
          f"{time.monotonic() - started:.1f} s)")
    print(log_report(output, summary, args.tracking_uri))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import time

    from tune_rl.compare import (
        algorithms,
        format_leaderboard,
        run_comparison,
        sweep_spec_loader,
    )

    if args.resume and not args.name:
        raise UsageError("--resume needs --name: the comparison to continue")
    algos = algorithms(args.algos)
    overrides = {f: getattr(args, f) for f in ("env", "trials", "max_env_steps", "seed",
                                               "storage_path", "tracking_uri")}
    load = sweep_spec_loader(args.profile, overrides, algos)
    first = load(algos[0], "x")
    name = args.name or f"compare-{first.env}-{args.profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    for algo in algos:  # every sweep planned before the first starts
        load(algo, f"{name}-{algo}")
    print(f"Comparison {name}: {', '.join(algos)} on {first.env}, {first.trials} trials x "
          f"{first.max_env_steps} env steps each", flush=True)
    board = run_comparison(name, algos, load, resume=args.resume)
    if board.get("interrupted"):
        print(f"\nComparison {name} interrupted. Resume it with:\n"
              f"  {resume_command(sys.argv, name)}", file=sys.stderr)
        return 130
    print("\n" + format_leaderboard(board))
    for path in board["files"]:
        print(f"Leaderboard: {path}")
    return 0 if any(r["status"] == "OK" for r in board["rows"]) else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_library_logs()
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "ui-links":
            return _cmd_ui_links(args)
        if args.command == "optuna-dashboard":
            from tune_rl.storage import Storage
            from tune_rl.study import default_journal, serve_dashboard

            return serve_dashboard(args.optuna_storage or default_journal(
                Storage(args.storage_path), args.sweep), args.sweep, args.port)
        if args.command == "submit":
            return _cmd_submit(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "reference":
            return _cmd_reference(args)
        if args.command in ("confirm", "best", "train", "evaluate", "report"):
            return {"confirm": _cmd_confirm, "best": _cmd_best, "train": _cmd_train,
                    "evaluate": _cmd_evaluate, "report": _cmd_report}[args.command](args)
        return _cmd_sweep(args)
    except UsageError as err:
        print(f"tune-rl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
