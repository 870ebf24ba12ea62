"""The environment a measurement was taken in, and the two keys that say when two are comparable.

A latency depends on the machine and the stack that runs the kernels; a memory, size or drift
figure depends on which kernels were selected (the CPU's ISA flags, the quantized engine, the
thread count) and on the versions that compute. So a run carries two keys: the **timing** key
(latency, speedup) and the **numerics** key (memory, size, drift). Neither holds the kernel
release or the Python patch version: they select no kernel, and with them in the key a baseline
stopped applying to its own VM after a routine update of the host's kernel (the releases are in
docs/notes.md).
The fingerprint that names a baseline file is the timing key.

On CUDA (``--ptq-device``) both keys add the GPU: its name, compute capability and CUDA runtime,
and the timing key the driver too. A CPU run records them as null, and a null or missing one is left
out of key hashes and comparisons, so CPU baselines stored before the option keep their fingerprints
and stay comparable.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ptq.host.device import Device

__all__ = [
    "DEVICE_KEYS",
    "FINGERPRINT_KEYS",
    "KEYS",
    "NUMERICS_KEYS",
    "TIMING_KEYS",
    "cpu_info",
    "differing_keys",
    "environment",
    "fingerprint",
    "key_hash",
    "package_version",
]

#: CPU flags that change which int8/bf16 kernels run.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")

#: Keys only a GPU run fills (:meth:`ptq.host.device.Device.describe`); null or missing ones are not compared.
DEVICE_KEYS = ("device_name", "compute_capability", "cuda_runtime", "cuda_driver")
#: What must match for latencies (and speedups) of two runs to be compared at all.
TIMING_KEYS = (
    "cpu_model",
    "cpu_flags",
    "logical_cpus",
    "threads",
    "torch",
    "torchvision",
    "torchao",
    "onnxruntime",
    "device",
    "quantized_engine",
    *DEVICE_KEYS,
)
#: What must match for memory, size and drift: the kernels selected and the versions that compute.
NUMERICS_KEYS = (
    "cpu_flags",
    "threads",
    "torch",
    "torchvision",
    "torchao",
    "onnxruntime",
    "transformers",
    "device",
    "quantized_engine",
    "device_name",
    "compute_capability",
    "cuda_runtime",
)
KEYS: dict[str, tuple[str, ...]] = {"timing": TIMING_KEYS, "numerics": NUMERICS_KEYS}
#: A baseline file is named by its timing key.
FINGERPRINT_KEYS = TIMING_KEYS


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


@lru_cache(maxsize=1)
def torch_default_threads() -> int:
    """torch's own default thread count (its physical cores, or OMP_NUM_THREADS), read once, on
    first use: the pytest plugin asks before anything calls ``torch.set_num_threads``. torch is
    imported here, not at module level, so commands that only read results stay fast."""
    import torch

    return torch.get_num_threads()


def benchmark_threads() -> int:
    """Threads a benchmark uses unless told: torch's default less one, at least one.

    The spare core takes the OS, the timer and pytest. With every core in one parallel region,
    any interrupt stalls the whole call: on the 2-core reference machine the window-to-window
    spread of a case's fastest calls was 2-5% at 2 threads and 0.3-1.7% at 1 thread (micro
    cases, 0.25 s windows, ``ptq gate-quality``), and a 5% gate cannot stand on 5% noise.
    """
    return max(1, torch_default_threads() - 1)


def environment(threads: int | None = None, device: Device | None = None) -> dict[str, Any]:
    """Everything recorded with a run: CPU, threads, OS, Python, the stack's versions and the
    device the models ran on (CPU unless given)."""
    import torch

    from ptq.host.device import CPU

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
        "onnxruntime": package_version("onnxruntime"),
        # Recorded, not in the keys: adding a key would make every stored baseline incomparable.
        "openvino": package_version("openvino"),
        "nncf": package_version("nncf"),
        "numpy": package_version("numpy"),
        **dict.fromkeys(DEVICE_KEYS),
        **(device or CPU).describe(),
        "quantized_engine": torch.backends.quantized.engine,
        "cuda_available": torch.cuda.is_available(),
    }


def key_hash(env: Mapping[str, Any], kind: str) -> str:
    """A short stable hash of one kind of key (``timing`` or ``numerics``, see :data:`KEYS`)."""
    key = {k: env.get(k) for k in KEYS[kind] if k not in DEVICE_KEYS or env.get(k) is not None}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def fingerprint(env: Mapping[str, Any]) -> str:
    """The timing key: equal hashes mean latencies are comparable; it names baseline files."""
    return key_hash(env, "timing")


def differing_keys(a: Mapping[str, Any], b: Mapping[str, Any], kind: str) -> list[str]:
    """The keys of one kind whose values differ between two environments. A key only one of them
    recorded differs (unknown is not equal); one neither recorded does not. A GPU key
    (:data:`DEVICE_KEYS`) null or missing on both sides does not: runs before ``--ptq-device`` lack them."""
    return [k for k in KEYS[kind] if a.get(k) != b.get(k) or (k not in DEVICE_KEYS and (k in a) != (k in b))]
