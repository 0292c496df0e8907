"""Where a model came from: version names, package versions and the source commit."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime
from importlib import metadata

from tasks.config import project_root

LINEAGE_PACKAGES = ("tensorflow", "keras", "prefect", "numpy", "scikit-learn")


def version_name(created: datetime, run_id: str) -> str:
    """A version name that sorts by creation time as a plain string (UTC, millisecond resolution)."""
    stamp = created.strftime("%Y%m%dT%H%M%S") + f"{created.microsecond // 1000:03d}Z"
    suffix = "".join(ch for ch in run_id.lower() if ch.isalnum())[:6] or "local"
    return f"{stamp}-{suffix}"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LINEAGE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str | None:
    """The checkout's HEAD commit, if this runs from a git checkout; None otherwise."""
    root = project_root()
    if root is None or not (root / ".git").exists():
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
