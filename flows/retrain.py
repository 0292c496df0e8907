"""The retrain flow: ingest → validate → train → evaluate → publish, on any store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prefect import flow, get_run_logger, runtime
from prefect.states import Failed, State

from flows import artifacts, steps
from tasks.config import RunConfig, resolve_store_uri
from tasks.dataset import unusable_reason
from tasks.lineage import version_name
from tasks.publish import PublishResult
from tasks.release import RunInfo, no_new_data


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[step] = time.perf_counter() - started


@flow(name="retrain", log_prints=True)
def retrain(config: RunConfig | None = None) -> PublishResult | str | State:
    """Retrain the MNIST classifier on everything accepted so far and publish the result."""
    config = config or RunConfig()
    store, run_id = resolve_store_uri(config.store), str(runtime.flow_run.id or "local")
    timings: dict[str, float] = {}
    now = datetime.now(UTC)
    run = RunInfo(run_id, version_name(now, run_id), now.isoformat(timespec="milliseconds"), config.model_dump())
    steps.check_store(store)
    if config.sample:
        steps.seed_sample(store)
    with timed(timings, "ingest"):
        summary = steps.ingest(store, run_id, config.max_input_mb, config.max_bad_row_fraction, config.data_checks)
        spec = steps.plan_dataset(store)
    if reason := unusable_reason(spec):
        return Failed(message=reason)
    if not config.force and (skip := no_new_data(store, spec.digest)):
        get_run_logger().info(skip)
        artifacts.note(skip)
        return skip
    with timed(timings, "train"):  # called directly: TensorFlow misbehaves in Prefect's thread pool
        trained = steps.train(store, spec, run.version, config.profile, config.epochs, config.seed, config.warm_start)
    with timed(timings, "evaluate"):
        evaluated = steps.evaluate(store, spec, trained, config.seed)
    with timed(timings, "publish"):
        result = steps.publish(store, run, spec, summary, trained, evaluated, timings)
    artifacts.publish_artifacts(store, result, summary)  # summary, per-class table, report link
    return result
