"""TensorFlow's import on a background thread: what `mnist-pipeline run` overlaps with the Prefect API's start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMPORT_TIMEOUT_S = 180


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_S,
    )


def test_the_background_import_leaves_tensorflow_and_keras_loaded() -> None:
    done = _python(
        "import sys\n"
        "from tasks.training import import_tensorflow_in_background\n"
        "assert 'tensorflow' not in sys.modules\n"
        "thread = import_tensorflow_in_background()\n"
        "thread.join(150)\n"
        "print(thread.is_alive(), thread.daemon, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "True", "True"]


def test_a_broken_tensorflow_is_reported_by_the_step_that_needs_it_not_by_the_thread(tmp_path: Path) -> None:
    broken = tmp_path / "tensorflow"
    broken.mkdir()
    message = "libtensorflow_framework.so.2: cannot open shared object"
    (broken / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    done = _python(
        "from tasks.training import import_tensorflow_in_background\n"
        "import_tensorflow_in_background().join(60)\n"
        "print('thread finished quietly')\n"
        "import tensorflow\n",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
    )
    assert "thread finished quietly" in done.stdout
    assert "Exception in thread" not in done.stderr
    assert done.returncode == 1
    assert f"ImportError: {message}" in done.stderr
