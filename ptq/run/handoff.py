"""Prepared cases handed from ``ptq ab``'s sessions to its duet workers, one side's to its own.

Each side of an A/B quantizes every case in its sessions, then again in every duet worker pair:
on the quick matrix a pair's preparation took most of a minute, two thirds of it OpenVINO
conversions and NNCF. The sessions' quantization stays (its memory is a judged figure), but
the workers need only the quantized model: where ``PTQ_AB_PREPARED`` names a directory (``ptq
ab`` sets one per side), a session pickles each case's quantized model, its inputs and its output
there, and a worker loads them instead of building and quantizing again. A model that does not
pickle (torchao's quantized tensors hold a ``functools.partial``) is prepared by the worker as before.

Every file is written by that side's code and read by that side's code, so an A/B still times
each side's own quantization result. A worker checks the loaded model's output against the one
the session recorded and prepares the case itself on any mismatch or unreadable file: the
hand-off can only save time, never change what is timed. The variable is an environment
variable, not an option, so a side whose code predates it runs as before.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any

from ptq.project import PROJECT_MODULE_PREFIX

__all__ = ["HANDOFF_ENV", "handoff_dir", "load_prepared", "save_prepared"]

#: The directory a side's sessions write prepared cases to and its workers read them from.
HANDOFF_ENV = "PTQ_AB_PREPARED"


def handoff_dir() -> Path | None:
    found = os.environ.get(HANDOFF_ENV)
    return Path(found) if found else None


def _path(folder: Path, case: str, *, weights: str, threads: int) -> Path:
    """One file per (case, weights, threads): a worker prepared with other settings finds none."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", case)
    digest = hashlib.sha256(f"{case}\0{weights}\0{threads}".encode()).hexdigest()[:12]
    return folder / f"{safe}.{digest}.pt"


def save_prepared(case: str, model: Any, inputs: tuple[Any, ...], *, weights: str, threads: int) -> bool:
    """Pickle ``model`` and ``inputs`` with the model's output for the workers, once per case.
    False where no hand-off is asked for, the model is not on the CPU, or it cannot be pickled (a
    user's model holding a lambda, say): the worker then prepares that case itself."""
    import torch

    from ptq.host.cache import atomic_write

    folder = handoff_dir()
    if folder is None:
        return False
    target = _path(folder, case, weights=weights, threads=threads)
    if target.exists():
        return True
    tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
    if any(t.device.type != "cpu" for t in tensors):
        return False
    try:
        with torch.inference_mode():
            output = model(*inputs)
        saved = {"model": _scripted(model) if isinstance(model, torch.jit.ScriptModule) else model}
        atomic_write(target, lambda fh: torch.save({**saved, "inputs": inputs, "output": output}, fh))
    except Exception:  # not picklable (torchao's dynamic activation quantization holds a functools.partial,
        return False  # a user's model a lambda): the hand-off only saves time, the worker prepares it instead
    return True


def _scripted(model: Any) -> dict[str, bytes]:
    """A TorchScript module pickles only through ``torch.jit.save``."""
    import torch

    buffer = io.BytesIO()
    torch.jit.save(model, buffer)
    return {"torch.jit": buffer.getvalue()}


def load_prepared(case: str, *, weights: str, threads: int) -> tuple[Any, tuple[Any, ...]] | None:
    """(model, inputs) a session of this side handed off, or None: none handed off, unreadable,
    or its output here differs from the session's (the caller then prepares the case itself)."""
    import torch

    from ptq.run.placement import same_output

    folder = handoff_dir()
    if folder is None:
        return None
    path = _path(folder, case, weights=weights, threads=threads)
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=False, pickle_module=_ProjectPickle)  # this side's own session's
        if isinstance(saved["model"], dict):
            saved["model"] = torch.jit.load(io.BytesIO(saved["model"]["torch.jit"]))
        with torch.inference_mode():
            output = saved["model"](*saved["inputs"])
        if not same_output(output, saved["output"]):
            return None
    except Exception:
        return None
    return saved["model"], tuple(saved["inputs"])


class _ProjectUnpickler(pickle.Unpickler):
    """Finds a class a project's conftest defines: pytest imported that conftest as ``conftest``
    (or ``benchmarks.conftest``...), a worker under :func:`ptq.project.load_project`'s own module
    name. Importing it again by pytest's name would register its models twice."""

    def find_class(self, module: str, name: str) -> Any:
        if module.rpartition(".")[2] == "conftest" and module not in sys.modules:
            for loaded in [m for key, m in list(sys.modules.items()) if key.startswith(PROJECT_MODULE_PREFIX)]:
                found: Any = loaded
                for part in name.split("."):
                    found = getattr(found, part, None)
                if found is not None:
                    return found
        return super().find_class(module, name)


class _ProjectPickle:
    """The ``pickle_module`` :func:`torch.load` takes: :mod:`pickle` with :class:`_ProjectUnpickler`."""

    Unpickler = _ProjectUnpickler
    load = staticmethod(pickle.load)
    __name__ = "pickle"
