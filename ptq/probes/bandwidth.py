"""A meter of the machine's memory bandwidth, read beside each speedup visit.

Why: on the reference VM (2-core AMD EPYC guest, 1 torch thread) the same placement of
resnet18's fp32 model slowed and sped up over a minute while a cache-resident matmul and a copy
inside L3 stayed steady: the CPU clock and the caches were not what moved. A copy that must go to
DRAM moved with the fp32 model and, at half the amplitude, with its static int8 model. The memory
bandwidth left to the guest changes with whatever else shares the host, and a model that streams
more bytes per call (fp32 weights are 4x int8's) slows more, so the speedup moves with it
(docs/methodology.md, "Memory bandwidth", has the figures and the command; docs/notes.md the
first ones). With ``--ptq-quiet-extra`` the
suite reads this meter before and after every visit and keeps the visits it found quietest
(:class:`ptq.probes.speedup.SpeedupVisits`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["DEFAULT_METER_BYTES", "BandwidthMeter"]

#: Bytes copied per reading: twice the reference VM's 32 MiB L3, so the copy cannot stay in cache.
DEFAULT_METER_BYTES = 64 << 20


class BandwidthMeter:
    """Seconds the fastest of ``copies`` copies of ``nbytes`` takes; lower is a quieter memory system.

    The two buffers are allocated on the first reading and held (a fresh 64 MiB allocation would
    time the kernel's page faults, not the bandwidth).
    """

    def __init__(
        self, nbytes: int = DEFAULT_METER_BYTES, *, copies: int = 2, timer: Callable[[], float] = time.perf_counter
    ) -> None:
        if nbytes < 4 or copies < 1:
            raise ValueError(f"a bandwidth meter needs >= 4 bytes and >= 1 copy, got {nbytes} bytes, {copies} copies")
        self.nbytes, self.copies, self.timer = nbytes, copies, timer
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def read(self) -> float:
        if self._buffers is None:
            source = torch.ones(self.nbytes // 4, dtype=torch.float32)
            self._buffers = (source, torch.empty_like(source))
            self._buffers[1].copy_(source)  # touch the destination's pages once, outside any reading
        source, target = self._buffers
        best = float("inf")
        for _ in range(self.copies):
            t0 = self.timer()
            target.copy_(source)
            best = min(best, self.timer() - t0)
        return best

    def gigabytes_per_second(self, seconds: float) -> float:
        """Bytes read and written per second, in GB/s, for a reading of ``seconds``."""
        return 2 * self.nbytes / seconds / 1e9
