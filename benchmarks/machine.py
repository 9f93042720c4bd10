"""One line describing the machine a benchmark ran on (for the README tables)."""

from __future__ import annotations

import os
import platform
import time


def describe() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{time.strftime('%Y-%m-%d')} · {os.cpu_count()} cores · {cpu}{mem} · "
            f"Python {platform.python_version()} · {platform.system()} {platform.release()}")
