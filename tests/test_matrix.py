import fnmatch

import pytest

from ptq.errors import UserError
from ptq.run.matrix import MATRICES, Case, select_cases


def test_default_matrix_is_model_major_with_fp32_first():
    cases = select_cases("default")
    models = list(dict.fromkeys(c.model for c in cases))
    for m in models:
        recipes = [c.recipe for c in cases if c.model == m]
        assert recipes[0] == "fp32"
    assert Case("mobilenet_v2", "dynamic_int8").id == "mobilenet_v2-dynamic_int8"


def test_quick_matrix_covers_every_default_recipe_and_family():
    from ptq.models import get_model
    from ptq.recipes import list_recipes
    from ptq.run.matrix import COMPILED, FAST_PATHS, SLOW_KERNELS

    cases = select_cases("quick")
    assert {c.recipe for c in cases} == set(list_recipes(exclude=f"{COMPILED},{FAST_PATHS},{SLOW_KERNELS}"))
    assert {c.recipe for c in select_cases("default")} == {c.recipe for c in cases}
    assert "ao_int4_weight_only_cpu" in {c.recipe for c in select_cases("all")}
    assert {get_model(c.model).family for c in cases} == {"vision", "sequence", "micro", "lm"}


def test_globs_narrow_the_matrix():
    cases = select_cases("default", models="resnet*", recipes="fp32,static_*")
    assert [c.id for c in cases] == ["resnet18-fp32", "resnet18-static_int8", "resnet18-static_int8_jit"]


def test_compile_recipes_are_only_in_the_deploy_matrix():
    default = {c.recipe for c in select_cases("default")}
    deploy = {c.recipe for c in select_cases("deploy")}
    assert {"fp32_compile", "pt2e_static_int8"} <= deploy
    assert not default & {"fp32_compile", "ao_int8_dynamic_compile", "pt2e_static_int8"}
    assert {"fp32_jit", "ort_static_int8"} <= default


def test_deploy_matrix_holds_both_peers_and_the_bf16_forms():
    deploy = {c.recipe for c in select_cases("deploy")}
    assert {"ort_fp32", "ort_static_int8", "ov_fp32", "ov_int8", "bf16", "bf16_compile", "pt2e_static_int8"} <= deploy
    assert "bf16_compile" not in {c.recipe for c in select_cases("default")}


def test_each_runtimes_own_fast_path_is_in_the_deploy_matrix_only():
    deploy = select_cases("deploy")
    fast = {
        "ov_default",
        "fp32_channels_last",
        "fp32_channels_last_compile",
        "bf16_autocast",
        "bf16_autocast_compile",
        "pt2e_static_int8_bf16",
    }
    for model in ("mobilenet_v2", "resnet18"):
        assert fast <= {c.recipe for c in deploy if c.model == model}
    for matrix in ("default", "quick"):
        assert not fast & {c.recipe for c in select_cases(matrix)}


def test_bad_selection_is_a_clear_error():
    with pytest.raises(UserError, match=r"--ptq-models='vgg\*' matches no model"):
        select_cases("default", models="vgg*")
    with pytest.raises(UserError, match=f"unknown matrix 'nightly'; valid matrices: {', '.join(MATRICES)}"):
        select_cases("nightly")


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (
            {"recipes": "fp32,dynamci_int8"},
            "--ptq-recipes='fp32,dynamci_int8': 'dynamci_int8' matches no recipe of matrix 'default'; "
            "nearest: dynamic_int8, ort_dynamic_int8, dynamic_int8_rnn",
        ),
        (
            {"recipes": "fp32,*_compile"},
            "--ptq-recipes='fp32,*_compile': '*_compile' matches no recipe of matrix 'default'; it is in matrices deploy, llm, "
            "all: pass --ptq-matrix=deploy",
        ),
        (
            {"models": " "},
            "--ptq-models=' ' is blank; give comma-separated globs of model names, or drop the option "
            "for every model of matrix 'default'",
        ),
        ({"models": ","}, "--ptq-models=',' is blank; *"),
    ],
)
def test_every_glob_must_match_and_a_blank_selection_is_an_error(selection, message):
    with pytest.raises(UserError) as info:
        select_cases("default", **selection)
    assert fnmatch.fnmatchcase(str(info.value), message), str(info.value)
