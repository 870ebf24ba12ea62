"""What the peer runtimes (ONNX Runtime, OpenVINO) share: one ``nn.Module`` wrapper, so the suite
times, warms up and probes a peer exactly as it does a PyTorch model, and the calibration batches
of the PyTorch static recipes.

Only the tensor <-> numpy copies at the boundary are added to a peer's latency (microseconds, and
paid by any real deployment too).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ptq.errors import NotApplicable
from ptq.models.base import Built
from ptq.recipes.base import Quantized

__all__ = [
    "PEER_RUNTIMES",
    "LibraryLimits",
    "PeerModule",
    "calib_inputs",
    "first_line",
    "peer_result",
    "peer_runtime",
    "require",
]

#: Stack prefix -> the runtime's name, for the stacks whose model is not a PyTorch module.
PEER_RUNTIMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def peer_runtime(stack: str) -> str | None:
    """The peer runtime a stack string (``onnxruntime==1.2``) runs in, or None for PyTorch."""
    return next((name for prefix, name in PEER_RUNTIMES.items() if stack.startswith(prefix)), None)


class PeerModule(nn.Module):
    """Calls ``run(list of numpy inputs) -> sequence of numpy outputs`` with torch tensors.

    One output comes back as a tensor, several as a tuple, as the wrapped PyTorch model returned.
    Subclasses keep what their session was built from and deep-copy to a fresh session, so a
    placement (:mod:`ptq.run.placement`) re-allocates a peer's weights as it does a module's.
    """

    def __init__(self, run: Callable[[list[np.ndarray]], Sequence[Any]]) -> None:
        super().__init__()
        self._run = run

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outputs = [torch.from_numpy(np.asarray(o)) for o in self._run([t.detach().cpu().numpy() for t in inputs])]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def require(recipe: str, modules: Sequence[str], extra: str) -> None:
    """Skip (never fall back) when a peer's packages are missing, naming the extra that installs them."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise NotApplicable(f"recipe {recipe!r} needs {', '.join(missing)}; pip install 'pytest-ptq[{extra}]'")


def calib_inputs(built: Built, split: str, batches: int, batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """The calibration batches every static recipe of a peer sees: ``batches`` x ``batch_size`` of ``split``."""
    for i in range(batches):
        yield built.data.batch(split, i, batch_size).inputs


def peer_result(
    module: PeerModule, package: str, engine: str, layers: tuple[int, int], notes: dict[str, Any]
) -> Quantized:
    """A peer's :class:`Quantized`: its stack is the runtime's package and version, recorded with every result."""
    return Quantized(
        module,
        stack=f"{package}=={importlib.metadata.version(package)}",
        engine=engine,
        quantized_layers=layers[0],
        float_layers=layers[1],
        notes=notes,
    )


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, for a one-line skip reason."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else ""


@dataclass(frozen=True)
class LibraryLimits:
    """What a library raises when a model is beyond it, told apart from a bug in ptq's own code:
    an exception of one of ``kinds``, or any exception raised beneath one of ``beneath``
    (``"path/suffix.py:function"`` frames: FX tracing surfaces the model's own ``TypeError``).

    Only these become :class:`NotApplicable` (a skipped case); anything else propagates, and
    :func:`ptq.recipes.apply_recipe` reports it as :class:`~ptq.errors.RecipeFailed`.
    """

    kinds: tuple[type[BaseException], ...] = ()
    beneath: tuple[str, ...] = ()
    chars: int = 200  # of the error's first line kept in the skip reason

    def matches(self, exc: BaseException) -> bool:
        if isinstance(exc, self.kinds):
            return True
        frames = {
            f"{frame.filename.replace(chr(92), '/')}:{frame.name}" for frame in traceback.extract_tb(exc.__traceback__)
        }
        return any(frame.endswith(spot) for frame in frames for spot in self.beneath)

    @contextlib.contextmanager
    def skip_unsupported(self, reason: Callable[[str], str]) -> Iterator[None]:
        """Skip with ``reason("Type: first line")`` on the library's verdict; re-raise anything else."""
        try:
            yield
        except Exception as exc:
            if not self.matches(exc):
                raise
            raise NotApplicable(reason(f"{type(exc).__name__}: {first_line(exc, self.chars)}")) from exc
