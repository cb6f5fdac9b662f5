"""What a run record says about the machine: CPU model, instruction-set flags, torch threads and
kernel family (CPU training is byte-reproducible on one CPU type only)."""
from __future__ import annotations

from pathlib import Path

from m3mstl.runs import RECORDED_CPU_FLAGS, cpu_info, environment_info


def test_cpu_info_reads_model_and_flags(tmp_path: Path) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
                    "flags\t\t: fpu sse4_2 avx avx2 fma avx512f amx_tile amx_bf16\n\nprocessor\t: 1\n")
    info = cpu_info(fake)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8481C"
    assert set(info["flags"]) == set(RECORDED_CPU_FLAGS)
    assert info["flags"]["avx2"] and info["flags"]["amx_tile"] and not info["flags"]["amx_int8"]


def test_cpu_info_without_proc_still_names_something(tmp_path: Path) -> None:
    info = cpu_info(tmp_path / "absent")
    assert info["flags"] == {} and isinstance(info["model"], str)


def test_environment_records_cpu_and_torch_threads() -> None:
    import torch

    info = environment_info("cpu")
    assert info["cpu"]["model"]
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
