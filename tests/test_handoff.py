"""ptq ab's sessions hand their quantized models to the side's duet workers (ptq.run.handoff)."""

import pytest
import torch

from ptq.run.duet import TimedCases
from ptq.run.handoff import HANDOFF_ENV, load_prepared, save_prepared
from ptq.run.matrix import Case
from ptq.run.workbench import RunOptions, Workbench

# One case per stack the quick matrix quantizes but torchao (its quantized tensors hold a functools.partial, so
# do not pickle: its workers quantize again, in under a second): eager int8, TorchScript, an RNN, ONNX Runtime, OpenVINO.
STACKS = [
    "micro_linear_256-dynamic_int8",
    "micro_conv_16-static_int8_jit",
    "micro_lstm_128-dynamic_int8_rnn",
    "micro_conv_16-ort_static_int8",
    "micro_linear_256-ov_fp32",
]


def _prepare(spec):
    model, _, recipe = spec.rpartition("-")
    return Workbench(RunOptions(threads=1, weights="random")).prepare(Case(model, recipe))


@pytest.mark.slow  # quantizes a model of each stack, OpenVINO's and ONNX Runtime's included
@pytest.mark.parametrize("spec", STACKS)
def test_a_session_hands_its_quantized_model_to_the_worker_which_computes_the_same(spec, tmp_path, monkeypatch):
    if spec.endswith("ov_fp32"):
        pytest.importorskip("openvino")
    if "ort_" in spec:
        pytest.importorskip("onnxruntime")
    monkeypatch.setenv(HANDOFF_ENV, str(tmp_path))
    session = _prepare(spec)  # a probed Workbench, as in a session, writes the hand-off
    assert len(list(tmp_path.glob("*.pt"))) == 1

    timed = TimedCases()
    got = timed.prepare([spec], threads=1, weights="random", calibrate_s=0.01)
    assert got["failed"] == {} and got["handed_off"] == 1
    with torch.inference_mode():
        expected = session.model(*session.inputs)
    model, _, output = timed._originals[spec]
    assert model is not session.model  # loaded, not the same object
    assert torch.equal(
        output if isinstance(output, torch.Tensor) else output[0],
        expected if isinstance(expected, torch.Tensor) else expected[0],
    )


def test_nothing_is_handed_off_without_the_variable_or_for_other_settings(tmp_path, monkeypatch):
    monkeypatch.delenv(HANDOFF_ENV, raising=False)
    model, inputs = torch.nn.Linear(4, 2).eval(), (torch.ones(1, 4),)
    assert save_prepared("m-fp32", model, inputs, weights="random", threads=1) is False
    monkeypatch.setenv(HANDOFF_ENV, str(tmp_path))
    assert save_prepared("m-fp32", model, inputs, weights="random", threads=1) is True
    assert load_prepared("m-fp32", weights="random", threads=1) is not None
    assert load_prepared("m-fp32", weights="random", threads=2) is None  # another thread count: its own file
    assert load_prepared("m-fp32", weights="pretrained", threads=1) is None


def test_a_model_that_cannot_be_pickled_is_not_handed_off_and_leaves_no_file(tmp_path, monkeypatch):
    class Holds(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fn = lambda x: x * 2

        def forward(self, x):
            return self.fn(x)

    monkeypatch.setenv(HANDOFF_ENV, str(tmp_path))
    assert save_prepared("m-fp32", Holds(), (torch.ones(2),), weights="random", threads=1) is False
    assert list(tmp_path.iterdir()) == []  # no half-written or temporary file left
    assert load_prepared("m-fp32", weights="random", threads=1) is None


def test_a_handed_off_model_whose_output_differs_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv(HANDOFF_ENV, str(tmp_path))
    model = torch.nn.Linear(4, 2).eval()
    assert save_prepared("m-fp32", model, (torch.ones(1, 4),), weights="random", threads=1)
    [path] = tmp_path.glob("*.pt")
    saved = torch.load(path, weights_only=False)
    saved["output"] = saved["output"] + 1  # what the session recorded no longer matches the model
    torch.save(saved, path)
    assert load_prepared("m-fp32", weights="random", threads=1) is None
    path.write_bytes(b"not a pickle")
    assert load_prepared("m-fp32", weights="random", threads=1) is None


def test_a_model_class_from_a_project_conftest_is_found_under_the_name_the_worker_imported_it(tmp_path, monkeypatch):
    """pytest imports a project's conftest as ``conftest``; a worker imports it through ptq.project
    under a name of its own, and must not import it a second time."""
    import importlib.util
    import sys

    from ptq.project import PROJECT_MODULE_PREFIX, load_project

    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(
        "import torch\n\nIMPORTS = []\nIMPORTS.append(1)\n\n\nclass Doubler(torch.nn.Module):\n"
        "    def forward(self, x):\n        return x * 2\n"
    )
    spec = importlib.util.spec_from_file_location("conftest", project / "conftest.py")
    as_pytest = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "conftest", as_pytest)  # as pytest names a project's root conftest
    spec.loader.exec_module(as_pytest)
    folder = tmp_path / "handoff"
    monkeypatch.setenv(HANDOFF_ENV, str(folder))
    assert save_prepared("doubler-fp32", as_pytest.Doubler(), (torch.ones(3),), weights="random", threads=1)

    monkeypatch.delitem(sys.modules, "conftest")  # a worker process: no pytest, no module named conftest
    before = set(sys.modules)
    try:
        load_project(project)
        [worker_module] = [sys.modules[m] for m in set(sys.modules) - before if m.startswith(PROJECT_MODULE_PREFIX)]
        model, inputs = load_prepared("doubler-fp32", weights="random", threads=1)
        assert type(model) is worker_module.Doubler and worker_module.IMPORTS == [1]  # imported once
        assert "conftest" not in sys.modules and torch.equal(model(*inputs), torch.full((3,), 2.0))
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]
