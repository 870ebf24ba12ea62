"""The benchmark suite: every selected model x recipe case, timed with warm-up excluded.

Run ``pytest --benchmark-only``; narrow with ``--ptq-models`` / ``--ptq-recipes`` / ``-k``.
"""

from ptq.recipes import get_recipe


def test_case(ptq_bench):
    result = ptq_bench()
    assert result.quantized_layers > 0 or not get_recipe(result.recipe).quantizes(), (
        f"{result.case}: recipe reported success but quantized no layer"
    )
