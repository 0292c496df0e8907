"""`mnist-pipeline`: the command line. The `run` options are generated from `RunConfig`, the flow's parameters.

Expected failures (bad URI, missing bucket, refused credentials, unreachable endpoint, no data) end with one
line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from tasks.config import RunConfig, resolve_store_uri

PROG = "mnist-pipeline"
EXIT_FAILED = 1
EXIT_USAGE = 2


class PipelineFailure(Exception):
    """An expected failure, reported as one line."""


def _option_kwargs(annotation: Any) -> dict[str, Any]:
    """argparse settings for one RunConfig field type."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation is bool:
        return {"action": "store_true"}
    if typing.get_origin(annotation) is Literal:
        return {"choices": list(typing.get_args(annotation))}
    return {"type": annotation if annotation in (int, float) else str}


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig field: the UI form and the CLI cannot drift apart."""
    for name, field in RunConfig.model_fields.items():
        default = "" if field.annotation is bool or field.default is None else f" (default: {field.default})"
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,
            help=(field.description or "") + default,
            **_option_kwargs(field.annotation),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Continuous training for a Keras MNIST classifier.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="one run of the retrain flow: ingest, validate, train, evaluate, publish")
    add_config_options(run)
    report = commands.add_parser("report", help="fetch the champion's (or a version's) report")
    report.add_argument("--store", help="store URI (default: $MNIST_STORE, else data/store)")
    report.add_argument("--version", help="a version under models/ (default: the champion)")
    report.add_argument("--out", type=Path, help="where to write the HTML (default: report-<version>.html)")
    report.add_argument("--url", action="store_true", help="print a presigned URL (a file URL locally) instead")
    report.add_argument("--expires", type=int, default=3600, help="lifetime of the URL in seconds (default: 3600)")
    predict = commands.add_parser("predict", help="predict digits in PNG/JPEG images or CSV rows")
    predict.add_argument("--store", help="store URI (default: $MNIST_STORE, else data/store)")
    predict.add_argument("--version", help="a version under models/ (default: the champion)")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rollback = commands.add_parser("rollback", help="make an earlier version the champion")
    rollback.add_argument("--to", required=True, help="the version to make champion")
    rollback.add_argument("--reason", required=True, help="why; recorded in models/history.jsonl")
    rollback.add_argument("--store", help="store URI (default: $MNIST_STORE, else data/store)")
    prune = commands.add_parser("prune", help="delete old versions: keeps the newest N and every former champion")
    prune.add_argument("--keep", type=int, default=10, help="how many of the newest versions to keep (default: 10)")
    prune.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    prune.add_argument("--store", help="store URI (default: $MNIST_STORE, else data/store)")
    watch = commands.add_parser("watch", help="one poll of incoming/: announce complete new files to Prefect")
    watch.add_argument("--store", help="store URI (default: $MNIST_STORE, else data/store)")
    serve = commands.add_parser("serve", help="serve the deployments (nightly retrain, watcher, rollback)")
    serve.add_argument("--store", help="store URI for the served flows (default: $MNIST_STORE, else data/store)")
    serve.add_argument("--timezone", help="IANA time zone of the nightly 02:00 run (default: prefect.yaml's)")
    return parser


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "options"
    return f"invalid {where.replace('_', '-')}: {first['msg'].removeprefix('Value error, ')}"


def command_run(options: dict[str, Any]) -> int:
    try:
        config = RunConfig(**options)
    except ValidationError as error:
        raise PipelineFailure(_first_error(error)) from None
    from tasks.pipeline import check_store

    store_uri = resolve_store_uri(config.store)
    check_store(store_uri)  # fail fast, before Prefect and TensorFlow start
    from flows.retrain import retrain
    from flows.startup import start_api_and_tensorflow

    start_api_and_tensorflow()  # ~10 s each on two cores: side by side, not inside the flow one after the other
    state = retrain(config.model_copy(update={"store": store_uri}), return_state=True)
    if not state.is_completed():
        outcome = state.result(raise_on_failure=False)
        raise PipelineFailure(str(outcome) if isinstance(outcome, BaseException) else (state.message or state.name))
    result = state.result()
    if isinstance(result, str):
        print(result)
        return 0
    from tasks.publish import CHAMPION_KEY, PublishResult, read_champion, version_key
    from tasks.store import open_store

    assert isinstance(result, PublishResult), f"unexpected flow result {result!r}"

    store = open_store(store_uri)
    champion, _ = read_champion(store)
    verdict = "promoted to champion" if result.promoted else "not promoted"
    print(f"version {result.version}: {verdict} ({'; '.join(result.reasons)})")
    if champion:
        version = champion["version"]
        print(f"champion: {version} (accuracy {champion['accuracy']:.2%}) named by {CHAMPION_KEY}")
        print(f"  model:  {_where(store_uri, version_key(version, 'model.keras'))}")
        print(f"  report: {_where(store_uri, version_key(version, 'report.html'))}")
    print(f"  all runs: {_where(store_uri, 'reports/index.html')}")
    return 0


def _where(store_uri: str, key: str) -> str:
    return f"{store_uri.rstrip('/')}/{key}"


def command_report(args: argparse.Namespace) -> int:
    from tasks.publish import version_key
    from tasks.store import ObjectNotFound, open_store

    store = open_store(resolve_store_uri(args.store))
    version = _chosen_version(store, args.version)
    key = version_key(version, "report.html")
    try:
        if args.url:
            print(store.url(key, args.expires))
            return 0
        html = store.get(key)
    except ObjectNotFound:
        raise PipelineFailure(f"version {version!r} has no report in {store.uri}") from None
    out = args.out or Path(f"report-{version}.html")
    out.write_bytes(html)
    print(out)
    return 0


def _chosen_version(store: Any, version: str | None) -> str:
    from tasks.publish import read_champion

    if version:
        return version
    champion, _ = read_champion(store)
    if champion is None:
        raise PipelineFailure(f"no champion in {store.uri} yet: run `{PROG} run` first, or pass --version")
    return str(champion["version"])


def command_predict(args: argparse.Namespace) -> int:
    from tasks.pipeline import load_model
    from tasks.predict import PredictInputError, load_inputs, predict
    from tasks.publish import version_key
    from tasks.store import ObjectNotFound, open_store

    store = open_store(resolve_store_uri(args.store))
    version = _chosen_version(store, args.version)
    try:
        model = load_model(store, version_key(version, "model.keras"))
    except ObjectNotFound:
        raise PipelineFailure(f"version {version!r} has no model in {store.uri}") from None
    failures = 0
    for path in args.files:
        try:
            images, names = load_inputs(path)
        except PredictInputError as error:
            print(f"{PROG}: {path}: {error}", file=sys.stderr)
            failures += 1
            continue
        for item in predict(model, images, names):
            print(f"{item.name}\t{item.label}\t{item.confidence:.4f}")
    return EXIT_FAILED if failures else 0


def command_rollback(args: argparse.Namespace) -> int:
    from pydantic import ValidationError as InvalidRollback

    from flows.rollback import RollbackConfig, rollback
    from tasks.pipeline import check_store

    try:
        config = RollbackConfig(to=args.to, reason=args.reason, store=resolve_store_uri(args.store))
    except InvalidRollback as error:
        raise PipelineFailure(_first_error(error)) from None
    check_store(config.store or "")
    state = rollback(config, return_state=True)
    if not state.is_completed():
        outcome = state.result(raise_on_failure=False)
        raise PipelineFailure(str(outcome) if isinstance(outcome, BaseException) else (state.message or state.name))
    pointer = state.result()
    assert isinstance(pointer, dict), f"unexpected flow result {pointer!r}"
    print(f"champion is now {pointer['version']} ({pointer['reason']})")
    return 0


def command_prune(args: argparse.Namespace) -> int:
    from tasks.checkpoint import abandoned_checkpoints
    from tasks.registry import apply_retention, retention_plan
    from tasks.store import delete_folder, open_store

    store = open_store(resolve_store_uri(args.store))
    plan = retention_plan(store, args.keep)
    for version in plan.keep:
        print(f"keep\t{version}\t{plan.reasons[version]}")
    for version in plan.delete:
        print(f"{'would delete' if args.dry_run else 'delete'}\t{version}")
    abandoned = abandoned_checkpoints(store, datetime.now(UTC))
    for folder, saved_at in abandoned.items():
        print(f"{'would delete' if args.dry_run else 'delete'}\t{folder}\tabandoned training, last saved {saved_at}")
    if not args.dry_run:
        deleted = apply_retention(store, plan)
        deleted += sum(delete_folder(store, folder) for folder in abandoned)
        print(f"deleted {len(plan.delete)} version(s), {len(abandoned)} abandoned checkpoint(s), {deleted} file(s)")
    return 0


def _require_prefect_api(command: str) -> str:
    """The configured Prefect API; `watch` and `serve` talk to a running server, not a temporary one."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise PipelineFailure(
            f"{command} needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api; "
            "`make serve` starts one)"
        )
    return str(url)


def command_watch(args: argparse.Namespace) -> int:
    from tasks.pipeline import check_store

    _require_prefect_api("watch")
    store_uri = resolve_store_uri(args.store)
    check_store(store_uri)
    from flows.watch import watch_incoming

    state = watch_incoming(store_uri, return_state=True)
    if not state.is_completed():
        outcome = state.result(raise_on_failure=False)
        raise PipelineFailure(str(outcome) if isinstance(outcome, BaseException) else (state.message or state.name))
    print(state.result()["message"])
    return 0


def command_serve(args: argparse.Namespace) -> int:
    from tasks.pipeline import check_store

    api = _require_prefect_api("serve")
    store_uri = resolve_store_uri(args.store)
    check_store(store_uri)
    os.environ["MNIST_STORE"] = store_uri  # the served flow runs are subprocesses: they inherit it
    from deployments.serve import serve

    print(f"serving retrain, watch-incoming and rollback against {api} on store {store_uri}", flush=True)
    serve(args.timezone)
    return 0


def prepare_environment() -> None:
    """Defaults for a one-machine run, each overridable by the user's own environment."""
    # quiet TensorFlow's C++ start-up chatter unless the user asked for it
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # the ephemeral Prefect API migrates a new SQLite database on first start: Prefect's 20 s is too short on a
    # busy 2-core laptop
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def main(argv: list[str] | None = None) -> int:
    prepare_environment()
    args = build_parser().parse_args(argv)
    from tasks.dataset import NoTrainingData
    from tasks.registry import RegistryError
    from tasks.store import StoreError

    commands = {
        "report": command_report,
        "predict": command_predict,
        "rollback": command_rollback,
        "watch": command_watch,
        "serve": command_serve,
    }
    try:
        if args.command == "run":
            return command_run({k: v for k, v in vars(args).items() if k != "command"})
        if args.command == "prune":
            return command_prune(args)
        return commands[args.command](args)
    except (PipelineFailure, StoreError, NoTrainingData, RegistryError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
