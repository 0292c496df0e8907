"""Which precision a profile set to "auto" trains in, by hardware (no TensorFlow needed)."""

from __future__ import annotations

import pytest

from tasks.model import Hardware, choose_precision, get_profile

AVX512 = {"avx2", "avx512f", "avx512bw", "avx512_bf16"}


@pytest.mark.parametrize(
    ("hardware", "expected"),
    [
        # measured: bf16 epochs 20% quicker on an AMD EPYC with AVX512-BF16 ...
        (Hardware("AuthenticAMD", frozenset(AVX512)), "mixed_bfloat16"),
        # ... and 30% slower on an Intel Xeon with AVX512-BF16 but no AMX
        (Hardware("GenuineIntel", frozenset(AVX512)), "float32"),
        (Hardware("GenuineIntel", frozenset(AVX512 | {"amx_bf16", "amx_tile"})), "mixed_bfloat16"),
        (Hardware("AuthenticAMD", frozenset({"avx2"})), "float32"),  # no bf16 instructions at all
        (Hardware("", frozenset()), "float32"),  # not Linux: nothing known, nothing risked
        (Hardware("GenuineIntel", frozenset({"avx2"}), ((9, 0),)), "mixed_bfloat16"),  # Hopper
        (Hardware("GenuineIntel", frozenset({"avx2"}), ((8, 0), (8, 6))), "mixed_bfloat16"),  # Ampere
        (Hardware("AuthenticAMD", frozenset(AVX512), ((7, 5),)), "float32"),  # a T4 emulates bf16: the GPU decides
        (Hardware("GenuineIntel", frozenset(AVX512), ((8, 0), (7, 0))), "float32"),  # the slowest GPU decides
    ],
)
def test_auto_precision_picks_bfloat16_only_where_it_pays(hardware: Hardware, expected: str) -> None:
    assert choose_precision(hardware) == expected


def test_fast_profile_leaves_precision_to_the_hardware_and_nightly_trains_in_float32() -> None:
    assert get_profile("fast").precision == "auto"
    assert get_profile("nightly").precision == "float32"
