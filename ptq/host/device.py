"""Where a run's models execute (``--ptq-device``), and how to time and measure calls there.

CUDA calls return once their kernels are queued, so a wall-clock reading around a call times the
launch, not the work: on CUDA the :meth:`Device.timer` clock synchronises the device before each
reading, and a callable handed to pytest-benchmark ends with a synchronisation
(:meth:`Device.synchronized`). On CPU both are the plain ``time.perf_counter`` and the callable
itself, so CPU runs time exactly what they did before. ``torch.cuda`` is injected into
:func:`resolve`, so the logic is tested with a fake module on machines without a GPU.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptq.errors import UserError

__all__ = ["CPU", "DEVICE_OPTION", "SPECS", "Device", "module_device", "nvidia_driver", "resolve"]

#: The pytest option naming the device, quoted in errors.
DEVICE_OPTION = "--ptq-device"
#: The forms ``--ptq-device`` takes.
SPECS = ("auto", "cpu", "cuda", "cuda:N")
_SPEC = re.compile(r"^(?:auto|cpu|cuda(?::(\d+))?)$")
#: The NVIDIA kernel module reports its version here (torch has no public driver-version call).
_NVIDIA_VERSION = Path("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class Device:
    """A resolved device: ``cpu`` or ``cuda:N``, with the ``torch.cuda`` module (or a fake) that drives it."""

    name: str = "cpu"
    cuda: Any = field(default=None, compare=False, repr=False)
    cuda_runtime: str | None = None
    cuda_driver: str | None = None

    @property
    def is_cuda(self) -> bool:
        return self.name.startswith("cuda")

    @property
    def index(self) -> int | None:
        return int(self.name.partition(":")[2]) if self.is_cuda else None

    def synchronize(self) -> None:
        """Wait for every kernel queued on the device (a no-op on CPU, where calls are synchronous)."""
        if self.is_cuda:
            self.cuda.synchronize(self.index)

    def timer(self) -> Callable[[], float]:
        """A clock in seconds whose readings follow all work queued before them: on CUDA each
        reading synchronises first, so ``t0 = clock(); f(); clock() - t0`` covers ``f``'s kernels."""
        if not self.is_cuda:
            return time.perf_counter

        def clock() -> float:
            self.synchronize()
            return time.perf_counter()

        return clock

    def synchronized(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` itself on CPU; on CUDA ``fn`` followed by a synchronisation, for timers (such as
        pytest-benchmark's) that read a plain clock right after the call returns."""
        if not self.is_cuda:
            return fn

        def call(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            self.synchronize()
            return out

        return call

    def reset_peak(self) -> None:
        """Start a new step's device peaks (CPU: nothing; host memory is memray's)."""
        if self.is_cuda:
            self.cuda.reset_peak_memory_stats(self.index)

    def peak_allocated(self) -> int | None:
        """Most bytes held by tensors on the device since :meth:`reset_peak`; None on CPU."""
        return int(self.cuda.max_memory_allocated(self.index)) if self.is_cuda else None

    def peak_reserved(self) -> int | None:
        """Most bytes the caching allocator held from the driver since :meth:`reset_peak`; None on CPU."""
        return int(self.cuda.max_memory_reserved(self.index)) if self.is_cuda else None

    def describe(self) -> dict[str, Any]:
        """What the run's environment records, and the keys compare (:mod:`ptq.host.env`). CPU
        records ``device`` alone, as every run before the option did."""
        if not self.is_cuda:
            return {"device": self.name}
        major, minor = self.cuda.get_device_capability(self.index)
        return {
            "device": self.name,
            "device_name": self.cuda.get_device_name(self.index),
            "compute_capability": f"{major}.{minor}",
            "cuda_runtime": self.cuda_runtime,
            "cuda_driver": self.cuda_driver,
        }

    def capability(self) -> tuple[int, int] | None:
        """The CUDA compute capability (major, minor); None on CPU."""
        return tuple(self.cuda.get_device_capability(self.index)) if self.is_cuda else None


CPU = Device()


def module_device(module: Any) -> str:
    """Where a module's first parameter or buffer lives (``cpu``, ``cuda:0``...): how a recipe's
    handler, given only the model, knows which device it quantizes for. ``cpu`` when it holds none."""
    for tensor in (*module.parameters(), *module.buffers()):
        return str(tensor.device)
    return "cpu"


def nvidia_driver(path: Path = _NVIDIA_VERSION) -> str | None:
    """The NVIDIA driver version from the kernel module's report, or None where it is not readable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", text)
    return found.group(1) if found else None


def resolve(spec: str, *, cuda: Any = None, runtime: str | None = None, driver: str | None = None) -> Device:
    """The device ``--ptq-device=spec`` names: ``cpu``, ``cuda[:N]``, or ``auto`` (the current CUDA
    device when one is available, else CPU). ``cuda`` defaults to ``torch.cuda``, with the runtime
    from ``torch.version.cuda`` and the driver from :func:`nvidia_driver`. A CUDA device that is not
    there is a :class:`UserError` naming the option and the fix."""
    option = f"{DEVICE_OPTION}={spec}"
    found = _SPEC.match(spec.strip().lower()) if isinstance(spec, str) else None
    if found is None:
        raise UserError(f"{option}: not a device; valid: {', '.join(SPECS)}")
    spec = spec.strip().lower()
    if spec == "cpu":
        return CPU
    if cuda is None:
        import torch

        cuda, runtime, driver = torch.cuda, torch.version.cuda, None
        if cuda.is_available():
            driver = nvidia_driver()
    if not cuda.is_available():
        if spec == "auto":
            return CPU
        built = f"this torch is built for CUDA {runtime}" if runtime else "this torch is a CPU-only build"
        raise UserError(
            f"{option}: CUDA is not available here ({built} and sees no GPU); "
            f"run on a machine with a GPU, or pass {DEVICE_OPTION}=cpu (or auto)"
        )
    count = int(cuda.device_count())
    index = int(found.group(1)) if found.group(1) is not None else int(cuda.current_device())
    if index >= count:
        raise UserError(
            f"{option}: there is no CUDA device {index}; this machine has {count} "
            f"(cuda:0 to cuda:{count - 1}): pass one of them"
        )
    return Device(f"cuda:{index}", cuda=cuda, cuda_runtime=runtime, cuda_driver=driver)
