"""A one-line description of the machine a benchmark ran on: CPU, cores, RAM, kernel and date."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Machine:
    cpu: str
    cores: int
    ram_gib: float
    kernel: str
    date: str

    def describe(self) -> str:
        return (f"{self.cpu}, {self.cores} cores, {self.ram_gib:.1f} GiB RAM, "
                f"Linux {self.kernel}, {self.date}")


def _proc_field(path: str, key: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def describe_machine() -> Machine:
    """Read the CPU model and memory from /proc, the kernel from uname, the date from the clock."""
    mem_kib = _proc_field("/proc/meminfo", "MemTotal") or "0 kB"
    return Machine(
        cpu=_proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown CPU",
        cores=os.cpu_count() or 1,
        ram_gib=int(mem_kib.split()[0]) / 1024 / 1024,
        kernel=platform.release(),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
