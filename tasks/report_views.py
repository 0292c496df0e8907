"""Template contexts of the report: numbers formatted for people, and values made safe to show.

Everything here turns loosely-shaped metrics and verdict dicts into plain strings and rows for the
templates. Any key may be missing; a missing figure shows as a dash or a "not available" note, never an
error. Values whose key looks like a secret are masked, and credentials embedded in URLs are stripped,
so a report can be shared as freely as the bucket it sits in.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

DASH = "—"
MASK = "•••"
# Substrings of a (normalised) key whose value must never be shown.
SECRET_MARKERS = (
    "secret", "password", "passwd", "token", "access_key", "accesskey", "credential", "api_key", "apikey",
    "private_key", "signature",
)  # fmt: skip
# user:password@ (or a bare token@) right after a URL scheme.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s@]+@")
# Query parameters that carry credentials, e.g. a presigned URL's X-Amz-Credential and X-Amz-Signature.
_SECRET_QUERY = re.compile(
    r"(?i)([?&][^=&#\s]*(?:secret|password|token|credential|signature|access_?key)[^=&#\s]*=)[^&#\s]*"
)
# Drift flags: the same lines the ingest data checks warn at (tasks.data_checks), so a highlighted
# cell always matches a warning.
PSI_ALERT = 0.25
CHI2_ALERT = 0.001


def looks_secret(key: Any) -> bool:
    """Whether a config or metrics key names a credential (``aws_secret_access_key``, ``api-token``)."""
    normalised = re.sub(r"[^a-z0-9]+", "_", str(key).lower())
    return any(marker in normalised or marker in normalised.replace("_", "") for marker in SECRET_MARKERS)


def scrub(text: str) -> str:
    """Strip ``user:password@`` from URLs and mask credential query parameters."""
    return _SECRET_QUERY.sub(lambda m: m.group(1) + MASK, _URL_USERINFO.sub(r"\1", text))


def redact(value: Any, key: Any = "") -> Any:
    """A copy of ``value`` with secret-looking keys masked and URLs scrubbed, at any depth."""
    if looks_secret(key) and value not in (None, ""):
        return MASK
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return scrub(value) if isinstance(value, str) else value


def number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (booleans, text and NaN are not figures)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def pct(value: Any, digits: int = 2) -> str:
    figure = number(value)
    return DASH if figure is None else f"{figure:.{digits}%}"


def pp(delta: Any) -> str:
    """Format an accuracy difference given as a fraction (0.0012) in percentage points ("+0.12 pp")."""
    figure = number(delta)
    return DASH if figure is None else f"{figure * 100:+.2f} pp"


def num(value: Any, digits: int = 4) -> str:
    figure = number(value)
    return DASH if figure is None else f"{figure:.{digits}f}"


def count(value: Any) -> str:
    figure = number(value)
    return text(value) if figure is None or not figure.is_integer() else f"{int(figure):,}"


def text(value: Any) -> str:
    """Any value as one line of safe text: containers as JSON, secrets masked, URLs scrubbed."""
    if value is None or value == "":
        return DASH
    if isinstance(value, dict | list | tuple):
        return json.dumps(redact(value), sort_keys=True, default=str, ensure_ascii=False)
    return scrub(str(value))


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Naive stamps are taken as UTC so they can be compared with aware ones.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: Any) -> str:
    parsed = parse_time(value)
    return text(value) if parsed is None else parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def records(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def rows(source: Any) -> list[tuple[str, str]]:
    """Key/value rows of a dict for a two-column table, secrets masked."""
    return [(text(key), MASK if looks_secret(key) else text(redact(value))) for key, value in mapping(source).items()]


def verdict_view(metrics: dict[str, Any], verdict: dict[str, Any], champion: dict[str, Any]) -> dict[str, Any]:
    """The headline: decision, reasons, accuracy and loss against the champion, and the gate's rules."""
    gate = mapping(verdict.get("gate"))
    challenger = number(gate.get("challenger_accuracy"))
    if challenger is None:
        challenger = number(metrics.get("accuracy"))
    champion_accuracy = number(gate.get("champion_accuracy"))
    if champion_accuracy is None:
        champion_accuracy = number(champion.get("accuracy"))
    delta = number(gate.get("delta_vs_champion"))
    if delta is None and challenger is not None and champion_accuracy is not None:
        delta = challenger - champion_accuracy
    loss, champion_loss = number(metrics.get("loss")), number(champion.get("loss"))
    before = verdict.get("champion_before")
    if isinstance(before, dict):
        before = before.get("version")
    mcnemar = mapping(gate.get("mcnemar"))
    return {
        "promoted": bool(verdict.get("promoted")),
        "reasons": [text(reason) for reason in verdict.get("reasons") or []] or ["no reason recorded"],
        "accuracy": pct(challenger),
        "loss": num(loss),
        "has_champion": champion_accuracy is not None,
        "champion_accuracy": pct(champion_accuracy),
        "champion_version": text(champion.get("version") or before),
        "delta": pp(delta),
        "improved": delta is not None and delta >= 0,
        "champion_loss": None if champion_loss is None else num(champion_loss),
        "loss_delta": None if loss is None or champion_loss is None else f"{loss - champion_loss:+.4f}",
        "loss_improved": loss is not None and champion_loss is not None and loss <= champion_loss,
        "champion_before": None if before is None else text(before),
        # The floor is optional: a gate that promotes every completed run has none.
        "floor": None if number(gate.get("floor")) is None else pct(gate.get("floor")),
        "policy": None if gate.get("policy") is None else text(gate.get("policy")),
        "rules": [
            {"name": text(rule.get("name")), "passed": bool(rule.get("passed")), "detail": text(rule.get("detail"))}
            for rule in records(gate.get("rules"))
        ],
        "mcnemar": {
            "p_value": num(mcnemar.get("p_value")),
            "challenger_only": count(mcnemar.get("challenger_only_correct")),
            "champion_only": count(mcnemar.get("champion_only_correct")),
        }
        if mcnemar
        else None,
    }


def per_class_view(entries: list[dict[str, Any]], champion_entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-digit scores; the two lowest F1 flagged, and the F1 change when the champion's are known."""
    scored = [i for i, entry in enumerate(entries) if number(entry.get("f1")) is not None]
    worst = set(sorted(scored, key=lambda i: number(entries[i]["f1"]) or 0.0)[:2])
    champion_f1 = {str(e.get("digit")): number(e.get("f1")) for e in champion_entries}
    view = []
    for i, entry in enumerate(entries):
        f1, before = number(entry.get("f1")), champion_f1.get(str(entry.get("digit")))
        delta = None if f1 is None or before is None else f1 - before
        view.append(
            {
                **{score: num(entry.get(score)) for score in ("precision", "recall", "f1")},
                "digit": text(entry.get("digit")),
                "support": count(entry.get("support")),
                "worst": i in worst,
                "champion_f1": num(before),
                "delta_f1": DASH if delta is None else f"{delta:+.4f}",
                "delta_class": "" if delta is None or abs(delta) < 5e-5 else ("up" if delta > 0 else "down"),
            }
        )
    return view


def data_view(metrics: dict[str, Any], n_holdout: int) -> dict[str, Any]:
    """Where the run's rows came from: inputs and their outcomes, totals, and per-input drift checks."""
    inputs = records(mapping(metrics.get("data")).get("inputs"))
    totals: dict[str, dict[str, int]] = {}
    for item in inputs:
        bucket = totals.setdefault(text(item.get("outcome")), {"files": 0, "accepted": 0, "rejected": 0})
        bucket["files"] += 1
        bucket["accepted"] += int(number(item.get("rows_accepted")) or 0)
        bucket["rejected"] += int(number(item.get("rows_rejected")) or 0)
    return {
        "counts": [
            ("training rows", count(metrics.get("n_train"))),
            ("validation rows", count(metrics.get("n_validation"))),
            ("holdout rows", count(metrics.get("n_holdout", n_holdout))),
            ("holdout source", text(metrics.get("holdout_source"))),
            ("training rows dropped as copies of holdout digits", count(metrics.get("leaked_dropped"))),
        ],
        "inputs": [
            {
                **{field: text(item.get(field)) for field in ("key", "split", "outcome", "reason")},
                **{field: count(item.get(field)) for field in ("rows_accepted", "rows_rejected")},
                "state": {"accepted": "accepted", "duplicate": "duplicate"}.get(str(item.get("outcome")), "refused"),
            }
            for item in inputs
        ],
        "totals": [
            (outcome, f"{t['files']:,}", f"{t['accepted']:,}", f"{t['rejected']:,}")
            for outcome, t in sorted(totals.items())
        ],
        "totals_all": tuple(f"{sum(t[f] for t in totals.values()):,}" for f in ("files", "accepted", "rejected")),
        "drift": [_drift_row(item) for item in inputs if isinstance(item.get("checks"), dict)],
        "all_keys": [text(key) for key in mapping(metrics.get("data")).get("input_keys") or []],
        "chi2_alert": f"{CHI2_ALERT:g}",
        "psi_alert": f"{PSI_ALERT:g}",
    }


def checks_view(checks: dict[str, Any]) -> dict[str, Any]:
    """One input's data checks under flat names, from either shape the ingest step may record.

    ``tasks.data_checks.check_batch`` nests the labels (``labels.batch``, ``labels.reference``,
    ``labels.p_value``) and suffixes the PSIs; the flat names are the report's own.
    """
    labels = mapping(checks.get("labels"))

    def first(*keys: str) -> Any:
        return next((checks[key] for key in keys if checks.get(key) is not None), None)

    return {
        "label_histogram": labels.get("batch") if labels else checks.get("label_histogram"),
        "reference_histogram": labels.get("reference") if labels else checks.get("reference_histogram"),
        "chi2_p": labels.get("p_value") if labels else checks.get("chi2_p"),
        "psi_mean_intensity": first("psi_mean_intensity", "mean_intensity_psi"),
        "psi_ink_fraction": first("psi_ink_fraction", "ink_fraction_psi"),
        "blank": first("blank", "blank_images"),
        "inverted": first("inverted", "inverted_images"),
        "duplicates": first("duplicates_within", "duplicate_images"),
        "warnings": checks.get("warnings") if isinstance(checks.get("warnings"), list) else [],
    }


def _drift_row(item: dict[str, Any]) -> dict[str, Any]:
    checks = checks_view(item["checks"])
    chi2, psis = number(checks["chi2_p"]), [number(checks[k]) for k in ("psi_mean_intensity", "psi_ink_fraction")]
    return {
        "key": text(item.get("key")),
        "chi2_p": DASH if chi2 is None else f"{chi2:.3g}",
        "chi2_alert": chi2 is not None and chi2 < CHI2_ALERT,
        "psi": [(num(p, 3), p is not None and p > PSI_ALERT) for p in psis],
        "blank": count(checks["blank"]),
        "inverted": count(checks["inverted"]),
        "duplicates": count(checks["duplicates"]),
        "warnings": [text(w) for w in checks["warnings"] if w is not None],
    }


def label_histograms(metrics: dict[str, Any]) -> tuple[list[int], list[int] | None]:
    """This run's accepted training labels summed over its inputs, and the reference they were checked against."""
    new = [0] * 10
    reference: list[int] | None = None
    for item in records(mapping(metrics.get("data")).get("inputs")):
        if item.get("outcome") != "accepted" or item.get("split") != "train":
            continue
        checks = checks_view(mapping(item.get("checks")))
        histogram, ref = checks["label_histogram"], checks["reference_histogram"]
        if isinstance(histogram, list) and len(histogram) == 10:
            new = [a + int(number(b) or 0) for a, b in zip(new, histogram, strict=True)]
        # Every input of a run is checked against the data accepted before the run, so the first is it.
        if reference is None and isinstance(ref, list) and len(ref) == 10:
            reference = [int(number(v) or 0) for v in ref]
    return new, reference
