"""What the CPU is and which instruction sets it has: the facts a CPU backend's choices rest on.

Why it matters: an INT8 tower's accuracy and speed depend on the CPU's integer dot-product
instructions. With VNNI (AVX512_VNNI, AVX_VNNI) or AMX, ``u8 x s8`` products accumulate exactly
in int32. Without them, x86 falls back to AVX2's ``vpmaddubsw``, which adds pairs of products
in *saturating* int16. A graph with full 8-bit activations and weights then loses information
wherever a pair overflows. Measured on an AVX2-only AMD EPYC: OpenVINO's run of the symmetric
``int8_tensorrt`` tower kept a mean cosine of only 0.87 to fp32 on the fieldset photos, and its
top ImageNet class matched fp32's on just half of them.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

#: Instruction sets that give exact int32 accumulation of u8 x s8 products (x86).
INT8_DOT = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
#: What ``describe`` reports: the sets that INT8 and bf16 inference depend on, x86 and Arm.
REPORTED = ("sse4_2", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
            "asimd", "asimddp", "i8mm", "sve")  # fmt: skip


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux
        return ""


@functools.lru_cache(maxsize=1)
def flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``: x86 ``flags``, Arm ``Features``); empty
    elsewhere, so a caller asking for a feature gets "no", the safe answer."""
    found: set[str] = set()
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            found |= set(line.split(":", 1)[1].split())
    return frozenset(found)


@functools.lru_cache(maxsize=1)
def name() -> str:
    """The CPU's model name (keys compiled-model caches: a blob compiled for one ISA is not reused
    on another)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "cpu"


def has_int8_dot(cpu_flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU accumulates INT8 products exactly (VNNI or AMX); see the module docstring."""
    return bool(INT8_DOT & (flags() if cpu_flags is None else cpu_flags))


def describe() -> str:
    """``model; flags`` for benchmark and log headers."""
    have = flags()
    return f"{name()}; " + " ".join(f for f in REPORTED if f in have)
