"""The environment a measurement was taken in, and the fingerprint that says when two are comparable."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from functools import lru_cache
from typing import Any

import torch

__all__ = ["FINGERPRINT_KEYS", "cpu_info", "environment", "fingerprint", "package_version"]

#: CPU flags that change which int8/bf16 kernels run.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")

#: What must match for latencies of two runs to be compared at all.
FINGERPRINT_KEYS = (
    "cpu_model", "cpu_flags", "logical_cpus", "threads", "os", "python",
    "torch", "torchvision", "torchao", "device", "quantized_engine",
)


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return {"cpu_model": model, "cpu_flags": [f for f in CPU_FLAGS if f in flags]}


#: torch's own default thread count (its physical cores, or OMP_NUM_THREADS), read at import,
#: before anything calls ``torch.set_num_threads``.
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def benchmark_threads() -> int:
    """Threads a benchmark uses unless told: torch's default less one, at least one.

    The spare core takes the OS, the timer and pytest. With every core in one parallel region,
    any interrupt stalls the whole call: on the 2-core reference machine the window-to-window
    spread of a case's fastest calls was 2-5% at 2 threads and 0.3-1.7% at 1 thread (micro
    cases, 0.25 s windows, ``ptq gate-quality``), and a 5% gate cannot stand on 5% noise.
    """
    return max(1, TORCH_DEFAULT_THREADS - 1)


def environment(threads: int | None = None) -> dict[str, Any]:
    """Everything recorded with a run: CPU, threads, OS, Python and the stack's versions."""
    return {
        **cpu_info(),
        "logical_cpus": os.cpu_count(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "os": f"{platform.system()} {platform.release()}",
        "python": ".".join(map(str, sys.version_info[:3])),
        "torch": torch.__version__,
        "torchvision": package_version("torchvision"),
        "torchao": package_version("torchao"),
        "transformers": package_version("transformers"),
        "numpy": package_version("numpy"),
        "device": "cpu",
        "quantized_engine": torch.backends.quantized.engine,
        "cuda_available": torch.cuda.is_available(),
    }


def fingerprint(env: dict[str, Any]) -> str:
    """A short stable hash of the fingerprint keys; equal hashes mean latencies are comparable."""
    key = {k: env.get(k) for k in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
