"""One line describing the machine a benchmark ran on (for the README tables)."""

from __future__ import annotations

import os
import platform
import time


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe() -> str:
    cpu = cpu_model()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{time.strftime('%Y-%m-%d')} · {os.cpu_count()} cores · {cpu}{mem} · "
            f"Python {platform.python_version()} · {platform.system()} {platform.release()}")
