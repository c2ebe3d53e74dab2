"""The CPU rule that sends big float32 products to oneDNN or MKL: its decision on each kind of CPU."""

import pytest

from sae.core import cpu


@pytest.mark.parametrize("vendor,capability,onednn", [
    ("AuthenticAMD", "AVX512", True),    # Zen 4/5: MKL runs AVX2 code there, oneDNN AVX-512
    ("AuthenticAMD", "AVX2", False),     # Zen 2/3: both libraries run AVX2 code; oneDNN adds operand copies
    ("HygonGenuine", "AVX2", False),
    ("GenuineIntel", "AVX512", False),   # MKL runs its AVX-512 code on Intel
    ("GenuineIntel", "AVX2", False),
    ("", "AVX512", False),               # unknown vendor: torch's default library
    ("AuthenticAMD", "DEFAULT", False),
])
def test_onednn_only_for_avx512_cpus_that_are_not_intel(vendor, capability, onednn):
    assert cpu.prefers_onednn(vendor, capability) is onednn


def test_facts_of_this_machine_agree_with_the_rule():
    facts = cpu.cpu_facts()
    assert facts.capability  # torch always reports one
    assert set(facts.flags) <= set(cpu.FLAGS_OF_INTEREST)
    assert cpu.onednn_is_faster_here() == cpu.prefers_onednn(facts.vendor, facts.capability)
    if "avx512f" not in facts.flags and facts.flags:  # a Linux CPU without AVX-512 never takes oneDNN
        assert not cpu.onednn_is_faster_here()
