"""The ONNX Runtime peer's sessions (ptq.recipes.onnx_runtime)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_a_placement_is_a_fresh_session_that_logs_errors_only(capfd: pytest.CaptureFixture[str]):
    from onnx import TensorProto, helper, numpy_helper

    from ptq.recipes.onnx_runtime import OrtModule

    # An initializer no node reads: at onnxruntime's default level each session's optimizer says
    # so on stderr (CleanUnusedInitializersAndNodeArgs), once per placement ptq makes.
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [
            numpy_helper.from_array(np.ones((4, 4), np.float32), "w"),
            numpy_helper.from_array(np.ones(4, np.float32), "unused"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    module = OrtModule(model.SerializeToString())
    placed = copy.deepcopy(module)
    assert placed.session is not module.session
    assert "CleanUnusedInitializers" not in capfd.readouterr().err
