"""Serving exports beside `model.keras`: a TensorFlow SavedModel (TF Serving) and a TFLite flatbuffer."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tasks.store import Store

SAVED_MODEL_DIR = "saved_model"
TFLITE_NAME = "model.tflite"


def export_model(store: Store, version_prefix: str, model: Any) -> list[str]:
    """Write the SavedModel folder and the TFLite file under `version_prefix`; returns the keys written."""
    import tensorflow as tf

    written = []
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / SAVED_MODEL_DIR
        model.export(str(saved), format="tf_saved_model", verbose=False)
        for path in sorted(p for p in saved.rglob("*") if p.is_file()):
            key = f"{version_prefix}{SAVED_MODEL_DIR}/{path.relative_to(saved).as_posix()}"
            store.put(key, path.read_bytes())
            written.append(key)
        tflite = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
        store.put(version_prefix + TFLITE_NAME, bytes(tflite))
        written.append(version_prefix + TFLITE_NAME)
    return written


def tflite_predict(tflite_model: bytes, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities from the TFLite export, for checking it agrees with Keras and for benchmarks."""
    import os
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite's interpreter announces its move to ai-edge-litert on every use
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=tflite_model, num_threads=os.cpu_count())
    detail = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]
    outputs, allocated = [], None
    for start in range(0, len(images), batch_size):
        batch = np.ascontiguousarray(images[start : start + batch_size], dtype=detail["dtype"])
        if batch.shape != allocated:  # re-allocating per batch costs more than the inference itself
            interpreter.resize_tensor_input(detail["index"], batch.shape)
            interpreter.allocate_tensors()
            allocated = batch.shape
        interpreter.set_tensor(detail["index"], batch)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_index).copy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 10), np.float32)
