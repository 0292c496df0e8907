"""Prefect tasks: each wraps one plain function from `tasks` in a line or two.

Only store I/O is retried, and only on transient failures; training is never retried.
"""

from __future__ import annotations

from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from flows import artifacts
from tasks import assess, pipeline, release
from tasks.dataset import DatasetSpec
from tasks.ingest import IngestSummary
from tasks.model import epoch_logger
from tasks.publish import PublishResult
from tasks.store import is_transient_store_error


def retry_on_transient_store_error(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry when the store was unreachable or answered 5xx; a refused credential or bad input is final."""
    try:
        state.result()
    except Exception as exc:
        return is_transient_store_error(exc)
    return False


STORE_IO = {
    "retries": 4,
    "retry_delay_seconds": [1, 3, 10, 30],
    "retry_condition_fn": retry_on_transient_store_error,
    "cache_policy": NO_CACHE,
}


def _log(message: str) -> None:
    get_run_logger().info(message)


@task(name="check-store", **STORE_IO)  # type: ignore[call-overload]
def check_store(store_uri: str) -> None:
    pipeline.check_store(store_uri)


@task(name="seed-sample", **STORE_IO)  # type: ignore[call-overload]
def seed_sample(store_uri: str) -> list[str]:
    return pipeline.seed_sample(store_uri, _log)


@task(name="ingest", **STORE_IO)  # type: ignore[call-overload]
def ingest(
    store_uri: str, run_id: str, max_input_mb: int, max_bad_row_fraction: float, data_checks: str
) -> IngestSummary:
    return pipeline.ingest_inputs(store_uri, run_id, max_input_mb, max_bad_row_fraction, data_checks, _log)


@task(name="plan-dataset", **STORE_IO)  # type: ignore[call-overload]
def plan_dataset(store_uri: str) -> DatasetSpec:
    return pipeline.plan_dataset(store_uri)


@task(name="train", cache_policy=NO_CACHE)
def train(
    store_uri: str, spec: DatasetSpec, version: str, profile: str, epochs: int | None, seed: int, warm_start: bool
) -> pipeline.TrainRecord:
    progress = epoch_logger(_log)
    callbacks = [progress, artifacts.epoch_progress()]  # the log line and the run's progress artifact
    return pipeline.train(store_uri, spec, version, profile, epochs, seed, callbacks, warm_start, _log)


@task(name="evaluate", **STORE_IO)  # type: ignore[call-overload]
def evaluate(store_uri: str, spec: DatasetSpec, trained: pipeline.TrainRecord, seed: int) -> assess.EvaluationRecord:
    return assess.evaluate(store_uri, spec, trained, seed)


@task(name="publish", **STORE_IO)  # type: ignore[call-overload]
def publish(
    store_uri: str,
    run: release.RunInfo,
    spec: DatasetSpec,
    summary: IngestSummary,
    trained: pipeline.TrainRecord,
    evaluated: assess.EvaluationRecord,
    timings: dict[str, float],
) -> PublishResult:
    return release.publish(store_uri, run, spec, summary, trained, evaluated, timings, _log)
