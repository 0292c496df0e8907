"""The Keras classifier: one declarative builder and its named training profiles.

uint8 images go in; scaling happens inside the model so the stored model takes raw pixels from any caller.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
VALIDATION_FRACTION = 0.1
BATCH_NORM_MOMENTUM = 0.9  # Keras' 0.99 lags behind on small datasets and wrecks validation figures
ProfileName = Literal["fast", "nightly"]
Precision = Literal["float32", "mixed_bfloat16"]
# "auto": bf16 only on hardware where it was measured to pay off (see `choose_precision`)
PrecisionChoice = Literal["float32", "mixed_bfloat16", "auto"]


@dataclass(frozen=True)
class TrainProfile:
    """Hyper-parameters of one named profile (chosen on the validation split, never on the test set)."""

    widths: tuple[int, ...]  # filters of each stage; every stage halves the resolution
    convs_per_stage: int
    batch_norm: bool
    dense_units: int
    dropout: float
    epochs: int
    min_steps: int  # small datasets get more epochs, so the schedule still has room to work
    batch_size: int
    peak_learning_rate: float
    warmup_fraction: float
    label_smoothing: float
    shift_pixels: int  # ±pixels of random shift, one shift per batch (cheap on a CPU)
    precision: PrecisionChoice = "float32"  # "mixed_bfloat16": bf16 compute, float32 weights and softmax


PROFILES: dict[str, TrainProfile] = {
    # narrow and shallow behind a space-to-depth stem, no BatchNorm (its unfused ops cost more than the convs
    # on a CPU), a high one-cycle peak, bfloat16 where the hardware makes that pay. Batch 256 costs no more per
    # image than 512 on two cores, and with twice the steps two epochs reach what three did at 512; so short a
    # training needs no dropout (both chosen on the validation split, three seeds)
    "fast": TrainProfile(
        widths=(32, 64),
        convs_per_stage=1,
        batch_norm=False,
        dense_units=256,
        dropout=0.0,
        epochs=2,
        min_steps=300,
        batch_size=256,
        peak_learning_rate=2e-2,
        warmup_fraction=0.2,
        label_smoothing=0.1,
        shift_pixels=0,
        precision="auto",
    ),
    # two BatchNorm'd convs a stage and ±2-pixel shifts: the nightly model has the night to train
    "nightly": TrainProfile(
        widths=(32, 64),
        convs_per_stage=2,
        batch_norm=True,
        dense_units=256,
        dropout=0.3,
        epochs=30,
        min_steps=3000,
        batch_size=256,
        peak_learning_rate=4e-3,
        warmup_fraction=0.15,
        label_smoothing=0.1,
        shift_pixels=2,
    ),
}


def get_profile(name: str) -> TrainProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None


@dataclass(frozen=True)
class Hardware:
    cpu_vendor: str  # /proc/cpuinfo's vendor_id: "GenuineIntel", "AuthenticAMD", "" where unknown
    cpu_flags: frozenset[str]
    gpu_compute_capabilities: tuple[tuple[int, int], ...] = ()
    cpu_model: str = ""  # /proc/cpuinfo's model name, for the record


def choose_precision(hardware: Hardware) -> Precision:
    """The precision "auto" trains in on `hardware`: bf16 only where it was measured (or is known) to be faster.

    Measured with the `fast` profile's network, batch 512, two cores: an AMD EPYC with AVX512-BF16 ran a bf16
    epoch 20% quicker than float32; an Intel Xeon with AVX512-BF16 but no AMX ran it 30% slower. AMX tiles (Intel
    Sapphire Rapids and later, where the hypervisor exposes them) and GPUs of compute capability 8.0 and up
    (Ampere and later) have bf16 matrix units; older GPUs emulate bf16 slowly.
    """
    if hardware.gpu_compute_capabilities:
        return "mixed_bfloat16" if min(hardware.gpu_compute_capabilities) >= (8, 0) else "float32"
    if "amx_bf16" in hardware.cpu_flags:
        return "mixed_bfloat16"
    if hardware.cpu_vendor == "AuthenticAMD" and "avx512_bf16" in hardware.cpu_flags:
        return "mixed_bfloat16"
    return "float32"


@functools.cache
def this_hardware() -> Hardware:
    """The CPU's vendor and flags (Linux; empty elsewhere) and the compute capabilities of TensorFlow's GPUs."""
    import tensorflow as tf

    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    fields = dict(line.split(":", 1) for line in cpuinfo if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        major, minor = tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0)
        capabilities.append((int(major), int(minor)))
    return Hardware(
        fields.get("vendor_id", ""),
        frozenset(fields.get("flags", "").split()),
        tuple(capabilities),
        fields.get("model name", ""),
    )


def compute_precision(profile: TrainProfile) -> Precision:
    """The precision `profile` trains in on this machine."""
    return choose_precision(this_hardware()) if profile.precision == "auto" else profile.precision


def build_model(profile: TrainProfile) -> Any:
    """The classifier: uint8 (28, 28) in, float32 class probabilities out."""
    import keras
    from keras import layers

    # per layer rather than the global policy, so building one profile never changes another's precision
    compute = keras.DTypePolicy(compute_precision(profile))

    def conv_block(x: Any, filters: int) -> Any:
        for _ in range(profile.convs_per_stage):
            if profile.batch_norm:
                x = layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=compute)(x)
                x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, dtype=compute)(x)
                x = layers.ReLU(dtype=compute)(x)
            else:
                x = layers.Conv2D(filters, 3, padding="same", activation="relu", dtype=compute)(x)
        return layers.MaxPooling2D(dtype=compute)(x)

    inputs = keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="pixels")
    x = layers.Rescaling(1.0 / 255.0, dtype=compute)(inputs)
    # space-to-depth: 28×28×1 → 14×14×4 loses no pixel and makes every later layer 4× cheaper on a CPU
    x = layers.Reshape((14, 2, 14, 2), dtype=compute)(x)
    x = layers.Permute((1, 3, 2, 4), dtype=compute)(x)
    x = layers.Reshape((14, 14, 4), dtype=compute)(x)
    for filters in profile.widths:
        x = conv_block(x, filters)
    x = layers.Flatten(dtype=compute)(x)
    if profile.dense_units:
        x = layers.Dropout(profile.dropout, dtype=compute)(x)
        x = layers.Dense(profile.dense_units, activation="relu", dtype=compute)(x)
    x = layers.Dropout(profile.dropout, dtype=compute)(x)
    # the softmax stays in float32 whatever the profile: bf16 probabilities are too coarse for the gate's tests
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")


def serving_model(model: Any, profile: TrainProfile) -> Any:
    """The trained `model` as published: the same weights in a float32 build.

    Mixed precision is a training speed-up only; what is stored, evaluated, exported and served computes in
    float32, so Keras, SavedModel and TFLite give the same answers and TFLite needs no bf16 kernels. The model's
    own layers decide, not this machine: a checkpoint resumed here may have been trained in bf16 elsewhere.
    """
    if model_precision(model) == "float32":
        return model
    twin = build_model(replace(profile, precision="float32"))
    twin.set_weights(model.get_weights())
    return twin


def model_precision(model: Any) -> str:
    """The precision `model`'s weighted layers compute in ("float32", "mixed_bfloat16")."""
    return str(next(layer.dtype_policy.name for layer in model.layers if layer.weights))


def split_validation(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train/validation indices; at least one validation row, at most VALIDATION_FRACTION."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * VALIDATION_FRACTION))
    return order[n_val:], order[:n_val]


def planned_epochs(profile: TrainProfile, n_train: int) -> int:
    """The profile's epochs, or more when the data is too small to give the schedule `min_steps`."""
    steps_per_epoch = -(-n_train // profile.batch_size)
    return max(profile.epochs, -(-profile.min_steps // steps_per_epoch))


def weights_fit(model: Any, weights: list[np.ndarray]) -> bool:
    """Whether `weights` (e.g. the champion's) have exactly the shapes of `model`'s."""
    shapes = [tuple(w.shape) for w in model.get_weights()]
    return shapes == [tuple(np.shape(w)) for w in weights]


def predict_probabilities(model: Any, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities (N, 10) for uint8 images (N, 28, 28)."""
    if len(images) == 0:
        return np.zeros((0, NUM_CLASSES), dtype="float32")
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype="float32")


def profile_config(name: str) -> dict[str, Any]:
    return {"profile": name, **asdict(get_profile(name))}


def epoch_logger(log: Any) -> Any:
    """A Keras callback that reports each finished epoch's figures through `log`."""
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            figures = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
            log(f"epoch {epoch + 1}/{self.params.get('epochs', '?')}: {figures}")

    return EpochLogger()
