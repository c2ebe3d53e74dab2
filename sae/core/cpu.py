r"""The CPU facts that decide which kernel library runs the fast path's float32 products: MKL or oneDNN.

torch sends float32 matmuls to MKL. MKL runs its AVX-512 code only on Intel CPUs; on AMD (and any
other vendor) it runs its AVX2 code. oneDNN, the other kernel library inside torch, picks its code by
the instruction set alone. So oneDNN can beat MKL only where the CPU has AVX-512 and is not Intel:

    CPU                               MKL's code   oneDNN's code   big products go to
    AMD with AVX-512 (Zen 4, Zen 5)   AVX2         AVX-512         oneDNN (2.2x MKL's rate a core, measured)
    AMD without (Zen 2, Zen 3)        AVX2         AVX2            MKL (oneDNN 1.3-3.5x slower a product, measured)
    Intel                             AVX-512      AVX-512         MKL (torch's default; not measured here)

On a CPU without AVX-512 oneDNN gains nothing and still pays a copy of each operand into its layout:
on a 2-core AMD EPYC (Zen 3, AVX2 only) a 784->196 step of the fused pass ran 1.2-1.9x slower through oneDNN
(bench/throughput.py prints this comparison, "kernel check", for the machine it runs on).

"AVX-512" is ATen's CPU capability (``torch.backends.cpu.get_cpu_capability()``, public): "AVX512" where the
CPU has AVX-512 F/BW/VL/DQ (capped by the ``ATEN_CPU_CAPABILITY`` environment variable). The vendor is
``vendor_id`` of /proc/cpuinfo (Linux) or ``platform.processor()``; an unknown vendor keeps MKL.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni",
                     "amx_tile", "amx_bf16")  # what MKL and oneDNN choose their float32 code by


@dataclass(frozen=True)
class CpuFacts:
    """What this process runs on, as far as the matmul libraries care."""

    vendor: str          # "AuthenticAMD", "GenuineIntel", ... ("" if unknown)
    model: str           # the model name the OS reports ("AMD EPYC", ...; "" if unknown)
    family_model: str    # "family 25 model 1" from /proc/cpuinfo ("" if unknown); AMD family 25 is Zen 3 or Zen 4
    capability: str      # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", ...
    flags: tuple[str, ...]  # FLAGS_OF_INTEREST the CPU reports (Linux only; empty elsewhere)


def prefers_onednn(vendor: str, capability: str) -> bool:
    """Whether big float32 products run faster through oneDNN than MKL: AVX-512 on a CPU that is not Intel's."""
    return capability == "AVX512" and vendor not in ("", "GenuineIntel")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


@lru_cache(maxsize=1)
def cpu_facts() -> CpuFacts:
    """This machine's :class:`CpuFacts` (read once)."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    vendor = info.get("vendor_id", "")
    if not vendor:
        processor = platform.processor()
        vendor = "GenuineIntel" if "Intel" in processor else "AuthenticAMD" if "AMD" in processor else ""
    family_model = f"family {info['cpu family']} model {info['model']}" if "cpu family" in info else ""
    return CpuFacts(vendor=vendor, model=info.get("model name", platform.processor()), family_model=family_model,
                    capability=torch.backends.cpu.get_cpu_capability(),
                    flags=tuple(f for f in FLAGS_OF_INTEREST if f in flags))


def onednn_is_faster_here() -> bool:
    """:func:`prefers_onednn` for this machine."""
    facts = cpu_facts()
    return prefers_onednn(facts.vendor, facts.capability)


__all__ = ["FLAGS_OF_INTEREST", "CpuFacts", "cpu_facts", "onednn_is_faster_here", "prefers_onednn"]
