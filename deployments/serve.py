"""`mnist-pipeline serve`: the deployments of `deployments/prefect.yaml`, served from this one process.

The schedules, the trigger, the concurrency limits and the descriptions are read from the same file that
`prefect deploy` uses, so the served deployments and the work-pool ones cannot drift apart.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

PREFECT_FILE = Path(__file__).resolve().parent / "prefect.yaml"


def load_spec(path: Path = PREFECT_FILE) -> list[dict[str, Any]]:
    """The deployment entries of prefect.yaml, anchors resolved."""
    document = yaml.safe_load(path.read_text())
    return list(document.get("deployments", []))


def nightly_timezone(path: Path = PREFECT_FILE) -> str:
    document = yaml.safe_load(path.read_text())
    return str(document["definitions"]["schedules"]["nightly"]["timezone"])


def _flow(entrypoint: str) -> Any:
    """`flows/retrain.py:retrain` → the flow object, imported as a module (works from any directory)."""
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def _schedule(spec: dict[str, Any], timezone: str | None) -> Any:
    from prefect.schedules import Cron, Interval

    if "cron" in spec:
        zone = timezone if timezone and spec.get("slug") == "nightly" else spec.get("timezone")
        return Cron(spec["cron"], timezone=zone, slug=spec.get("slug"), parameters=spec.get("parameters") or {})
    interval = timedelta(seconds=float(spec["interval"]))
    return Interval(interval, slug=spec.get("slug"), parameters=spec.get("parameters") or {})


def _trigger(spec: dict[str, Any]) -> Any:
    from prefect.events import DeploymentEventTrigger

    if spec.get("type", "event") != "event":
        raise ValueError(f"only event triggers are served, not {spec['type']!r}")
    return DeploymentEventTrigger(**{k: v for k, v in spec.items() if k != "type"})


def runner_deployments(timezone: str | None = None, path: Path = PREFECT_FILE) -> list[Any]:
    """One RunnerDeployment per entry of prefect.yaml; `timezone` overrides the nightly schedule's zone."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.deployments.runner import EntrypointType

    served = []
    for spec in load_spec(path):
        limit = spec.get("concurrency_limit")
        served.append(
            _flow(spec["entrypoint"]).to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                tags=spec.get("tags"),
                parameters=spec.get("parameters") or None,
                enforce_parameter_schema=spec.get("enforce_parameter_schema", True),
                schedules=[_schedule(s, timezone) for s in spec.get("schedules") or []],
                triggers=[_trigger(t) for t in spec.get("triggers") or []],
                concurrency_limit=ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit,
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return served


def serve(timezone: str | None = None) -> None:
    """Register the deployments with the API in PREFECT_API_URL and run their flow runs until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*runner_deployments(timezone))
