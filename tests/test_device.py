"""--ptq-device: resolution, timing, device memory and keys, driven through a fake ``torch.cuda``
so every test runs on a machine without a GPU."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from fnmatch import fnmatch

import pytest
import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.host.device import CPU, Device, module_device, nvidia_driver, resolve
from ptq.host.env import DEVICE_KEYS, KEYS, differing_keys, environment, fingerprint, key_hash
from ptq.probes.memory import device_peaks
from ptq.probes.speedup import time_pairs
from ptq.recipes import get_recipe
from ptq.run.matrix import AXES, MATRICES
from ptq.run.workbench import DEVICE_RECIPES, DeviceData, _check_device


class FakeCuda:
    """The parts of ``torch.cuda`` the device uses; ``log`` records synchronisations in call order."""

    def __init__(
        self,
        *,
        available: bool = True,
        count: int = 2,
        current: int = 0,
        name: str = "Fake GPU",
        capability: tuple[int, int] = (8, 9),
    ) -> None:
        self.available, self.count, self.current = available, count, current
        self.name, self.cap = name, capability
        self.log: list[str] = []
        self.allocated = {i: 0 for i in range(count)}
        self.reserved = {i: 0 for i in range(count)}

    def is_available(self) -> bool:
        return self.available

    def device_count(self) -> int:
        return self.count

    def current_device(self) -> int:
        return self.current

    def get_device_name(self, index: int) -> str:
        return f"{self.name} #{index}"

    def get_device_capability(self, index: int) -> tuple[int, int]:
        return self.cap

    def synchronize(self, index: int) -> None:
        self.log.append(f"sync {index}")

    def reset_peak_memory_stats(self, index: int) -> None:
        self.log.append(f"reset {index}")
        self.allocated[index] = self.reserved[index] = 0

    def max_memory_allocated(self, index: int) -> int:
        return self.allocated[index]

    def max_memory_reserved(self, index: int) -> int:
        return self.reserved[index]


def cuda_device(fake: FakeCuda | None = None, spec: str = "cuda") -> Device:
    return resolve(spec, cuda=fake or FakeCuda(), runtime="12.4", driver="550.54.15")


@pytest.mark.parametrize(
    ("spec", "available", "expected"),
    [
        ("cpu", True, "cpu"),
        ("auto", False, "cpu"),
        ("auto", True, "cuda:1"),
        ("cuda", True, "cuda:1"),
        ("cuda:0", True, "cuda:0"),
        (" CUDA:1 ", True, "cuda:1"),
    ],
)
def test_resolve_maps_each_spec_to_its_device(spec, available, expected):
    assert resolve(spec, cuda=FakeCuda(available=available, current=1)).name == expected


@pytest.mark.parametrize(
    ("spec", "fake", "message"),
    [
        (
            "cuda",
            FakeCuda(available=False),
            "--ptq-device=cuda: CUDA is not available here (this torch is a CPU-only "
            "build and sees no GPU); run on a machine with a GPU, or pass "
            "--ptq-device=cpu (or auto)",
        ),
        (
            "cuda:2",
            FakeCuda(count=2),
            "--ptq-device=cuda:2: there is no CUDA device 2; this machine has 2 (cuda:0 to cuda:1): pass one of them",
        ),
        ("gpu", FakeCuda(), "--ptq-device=gpu: not a device; valid: auto, cpu, cuda, cuda:N"),
        ("cuda:", FakeCuda(), "--ptq-device=cuda:: not a device; *"),
    ],
    ids=["no-cuda", "no-such-index", "unknown", "blank-index"],
)
def test_resolve_refuses_what_is_not_there_in_one_line(spec, fake, message):
    with pytest.raises(UserError) as caught:
        resolve(spec, cuda=fake)
    assert fnmatch(str(caught.value), message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_cpu_device_times_and_calls_exactly_as_before():
    def fn() -> int:
        return 1

    assert CPU.timer() is time.perf_counter
    assert CPU.synchronized(fn) is fn
    CPU.synchronize()
    CPU.reset_peak()
    assert (CPU.peak_allocated(), CPU.peak_reserved(), CPU.capability()) == (None, None, None)
    assert CPU.describe() == {"device": "cpu"}


def test_cuda_clock_synchronises_before_each_reading_so_a_call_covers_its_kernels():
    fake = FakeCuda()
    device = cuda_device(fake, "cuda:1")
    clock = device.timer()
    clock()
    fake.log.append("kernel queued")
    clock()
    assert fake.log == ["sync 1", "kernel queued", "sync 1"]  # each reading waited for the queued kernels


def test_cuda_synchronized_callable_returns_the_output_after_waiting():
    fake = FakeCuda()
    call = cuda_device(fake).synchronized(lambda x: fake.log.append("call") or x * 2)
    assert call(21) == 42
    assert fake.log == ["call", "sync 0"]


def test_time_pairs_with_the_device_clock_brackets_every_timed_call():
    fake = FakeCuda()
    pairs = time_pairs(
        lambda: fake.log.append("ref"),
        lambda: fake.log.append("cand"),
        budget_s=0.0,
        warmup=0,
        min_pairs=2,
        timer=cuda_device(fake).timer(),
    )
    assert len(pairs) == 2
    calls = [i for i, e in enumerate(fake.log) if e in ("ref", "cand")]
    assert [fake.log[i] for i in calls] == ["ref", "cand", "cand", "ref"]  # ABBA
    assert all(fake.log[i - 1] == fake.log[i + 1] == "sync 0" for i in calls)


@pytest.mark.slow
def test_device_peaks_are_reset_per_step_and_recorded_next_to_host_memory():
    fake = FakeCuda()
    device = cuda_device(fake)
    fake.allocated[0] = fake.reserved[0] = 1 << 30  # left over from an earlier step
    with device_peaks(device) as tracking:
        fake.allocated[0], fake.reserved[0] = 3 << 20, 4 << 20
    memory = tracking.memory
    assert fake.log[0] == "reset 0" and "sync 0" in fake.log
    assert (memory.device_peak_allocated_bytes, memory.device_peak_reserved_bytes) == (3 << 20, 4 << 20)
    figures = memory.to_dict()
    assert (figures["device_peak_allocated_bytes"], figures["device_peak_reserved_bytes"]) == (3 << 20, 4 << 20)


def test_cpu_steps_record_host_memory_only():
    with device_peaks(CPU) as tracking:
        torch.ones(1024)
    assert not any(k.startswith("device_") for k in tracking.memory.to_dict())


def test_cuda_run_records_the_gpu_in_both_keys():
    env = environment(1, cuda_device(FakeCuda(name="H200", capability=(9, 0))))
    assert {k: env[k] for k in ("device", "device_name", "compute_capability", "cuda_runtime", "cuda_driver")} == {
        "device": "cuda:0",
        "device_name": "H200 #0",
        "compute_capability": "9.0",
        "cuda_runtime": "12.4",
        "cuda_driver": "550.54.15",
    }
    other = {**env, "compute_capability": "8.0"}
    assert fingerprint(env) != fingerprint(other)
    assert differing_keys(env, other, "timing") == differing_keys(env, other, "numerics") == ["compute_capability"]
    assert differing_keys(env, {**env, "cuda_driver": "560.1"}, "numerics") == []  # a driver selects no kernel
    assert differing_keys(env, environment(1), "timing")[0] == "device"


def test_cpu_key_hashes_are_those_of_runs_stored_before_the_option():
    env = environment(1)
    assert {k: env[k] for k in DEVICE_KEYS} == dict.fromkeys(DEVICE_KEYS)  # recorded, as null
    stored = {k: v for k, v in env.items() if k not in DEVICE_KEYS}  # a CPU run stored before the option
    for kind, keys in KEYS.items():
        before = [k for k in keys if k not in DEVICE_KEYS]  # the keys as they were
        unchanged = ptq_hash({k: env.get(k) for k in before})
        assert key_hash(env, kind) == key_hash(stored, kind) == unchanged
        assert differing_keys(env, stored, kind) == []


def ptq_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def test_nvidia_driver_reads_the_kernel_module_version(tmp_path):
    report = tmp_path / "version"
    report.write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  "
        "(dvs-builder@U16)  Tue Mar  5 22:15:33 UTC 2024\nGCC version:  gcc version 12.3.0\n"
    )
    assert nvidia_driver(report) == "550.54.15"
    assert nvidia_driver(tmp_path / "absent") is None


def test_module_device_is_where_the_first_tensor_lives():
    assert module_device(nn.Linear(2, 2)) == "cpu"
    assert module_device(nn.ReLU()) == "cpu"


def test_recipes_with_cpu_kernels_skip_on_cuda_naming_what_runs_there():
    device = cuda_device()
    _check_device(get_recipe("fp32"), device)
    _check_device(get_recipe("dynamic_int8"), CPU)
    with pytest.raises(
        NotApplicable,
        match=r"recipe 'dynamic_int8' \(DynamicQuant\) runs on CPU only; on cuda:0 "
        r"the suite runs Float32, Bfloat16, TorchaoRecipe recipes",
    ):
        _check_device(get_recipe("dynamic_int8"), device)
    with pytest.raises(NotApplicable, match="bf16_compile"):
        _check_device(get_recipe("bf16_compile"), device)  # a Deployed form of bf16 compiles CPU kernels


def test_gpu_matrix_holds_only_recipes_that_run_on_cuda():
    recipes = AXES["recipe"].names(MATRICES["gpu"])
    assert {"fp32", "bf16", "ao_int4_weight_only", "ao_float8_dynamic"} <= set(recipes)
    assert all(type(get_recipe(r)) in DEVICE_RECIPES["cuda"] for r in recipes)


def test_torchao_gpu_recipe_skips_on_a_cpu_model_naming_the_option():
    from ptq.models import get_model
    from ptq.recipes import apply_recipe

    entry = get_model("micro_linear_256")
    with pytest.raises(NotApplicable, match=r"--ptq-device=cuda\).*; the model is on cpu"):
        apply_recipe(get_recipe("ao_float8_dynamic"), entry, entry.build(weights="random"))


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_option_without_cuda_is_one_usage_error_before_any_case(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite="def test_case(ptq_bench):\n    ptq_bench()\n")
    result = pytester.runpytest_subprocess(
        "--benchmark-only",
        "--ptq-models=micro_linear_256",
        "--ptq-recipes=fp32",
        "--ptq-device=cuda",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.startswith("ERROR:")] == [
        "ERROR: --ptq-device=cuda: CUDA is not available here (this torch is built for CUDA "
        f"{torch.version.cuda} and sees no GPU); run on a machine with a GPU, or pass --ptq-device=cpu (or auto)"
        if torch.version.cuda
        else "ERROR: --ptq-device=cuda: CUDA is not available here (this torch is a CPU-only build and sees no GPU); "
        "run on a machine with a GPU, or pass --ptq-device=cpu (or auto)"
    ]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_device_data_moves_batches_and_passes_everything_else_through():
    from ptq.models import get_model

    entry = get_model("micro_linear_256")
    source = entry.build(weights="random").data
    data = DeviceData(source, CPU)
    assert data.description == source.description
    got, want = data.batch("eval", 0, 4), source.batch("eval", 0, 4)
    assert all(torch.equal(a, b) for a, b in zip(got.inputs, want.inputs, strict=True))
    assert copy.deepcopy(data).description == source.description
