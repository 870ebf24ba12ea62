"""ptq.save / ptq.load: every default model x recipe reads back in a fresh process, bit for bit."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

import ptq
from ptq.errors import NotApplicable, UserError
from ptq.matrix import select_cases
from ptq.recipes import StaticInt8, get_recipe, list_recipes
from ptq.serialize import read_manifest, recipe_from_dict, savable
from ptq.size import state_dict_bytes

MODELS = ptq.list_models()
# The default matrix's recipes that ptq.save stores (eager modules); the others have their own formats.
RECIPES = [r for r in dict.fromkeys(c.recipe for c in select_cases("default")) if savable(get_recipe(r))]


def test_deployed_and_foreign_forms_are_refused_with_their_own_format(tmp_path: Path):
    entry = ptq.get_model("micro_linear_256")
    built = entry.build()
    for name in ("static_int8_jit", "ort_fp32"):
        with pytest.raises(UserError, match=f"ptq.save stores eager PyTorch modules; recipe '{name}'"):
            ptq.save(tmp_path / "m.ptq", built.model, entry=entry, recipe=name)
    assert not (tmp_path / "m.ptq").exists()


@pytest.mark.parametrize("name", list_recipes())
def test_every_registered_recipe_survives_its_dict(name):
    recipe = get_recipe(name)
    assert recipe_from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_unknown_recipe_type_names_the_known_ones():
    with pytest.raises(UserError, match=r"recipe type 'Nope' is not defined in this process.*StaticInt8"):
        recipe_from_dict({"_type": "Nope", "_version": 1, "_data": {"name": "x"}})


def test_a_file_that_is_not_ours_is_refused(tmp_path: Path):
    bad = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match=r"is not a model file written by ptq\.save"):
        ptq.load(bad)


def test_a_changed_model_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    entry = ptq.get_model("micro_linear_256")
    built = entry.build()
    path = ptq.save(tmp_path / "m.ptq", built.model, entry=entry, recipe="fp32", weights=built.weights)
    manifest = read_manifest(path)
    assert manifest["model"] == "micro_linear_256" and manifest["recipe"] == "fp32"
    assert manifest["recipe_config"]["_type"] == "Float32" and manifest["weights"] == built.weights
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("state_dict.pt").compress_type == zipfile.ZIP_STORED
    monkeypatch.setattr(ptq.models.base.ModelEntry, "version", 99, raising=False)
    monkeypatch.setitem(ptq.models._REGISTRY._items, entry.name, dataclasses.replace(entry, version=99))
    with pytest.raises(UserError, match="holds 'micro_linear_256' version 1, but the registry's is version 99"):
        ptq.load(path)


def test_state_dict_bytes_is_what_torch_save_writes(tmp_path: Path):
    model = torch.nn.Linear(300, 200)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert state_dict_bytes(model) == len(buffer.getvalue())
    # A file differs only by the archive name torch embeds (its stem; "archive" for a buffer).
    torch.save(model.state_dict(), tmp_path / "archive.pt")
    assert state_dict_bytes(model) == (tmp_path / "archive.pt").stat().st_size


# The round trip for the whole default matrix: quantize and save here, load in ONE fresh
# interpreter (which never saw these models quantized), compare outputs there.

LOADER = textwrap.dedent('''
    import json, sys, torch, ptq
    torch.set_num_threads(1)
    jobs = json.loads(open(sys.argv[1]).read())
    verdicts = {}
    for case, files in jobs.items():
        loaded = ptq.load(files["model"])
        inputs = torch.load(files["inputs"], weights_only=True)
        expected = torch.load(files["output"], weights_only=True)
        with torch.inference_mode():
            got = loaded.model(*inputs)
        if torch.equal(got, expected):
            verdicts[case] = "identical"
        else:
            verdicts[case] = f"differs: max |diff| {(got - expected).abs().max().item():.3g}"
    open(sys.argv[2], "w").write(json.dumps(verdicts))
''')


def _fast(recipe):
    """The real recipe, with a smaller calibration set: the file carries the calibrated values."""
    if isinstance(recipe, StaticInt8):
        return dataclasses.replace(recipe, calib_batches=2, calib_batch_size=2)
    return recipe


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("round_trip")
    jobs, outcome = {}, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels' reduction order on both sides
    try:
        for model in MODELS:
            entry = ptq.get_model(model)
            try:
                built = entry.build()
            except NotApplicable as exc:
                outcome.update({f"{model}-{r}": f"skip: {exc}" for r in RECIPES})
                continue
            inputs = entry.example_inputs(built)
            for name in RECIPES:
                case = f"{model}-{name}"
                recipe = _fast(get_recipe(name))
                try:
                    quantized = ptq.apply_recipe(recipe, entry, built)
                except NotApplicable as exc:
                    outcome[case] = f"skip: {exc}"
                    continue
                with torch.inference_mode():
                    output = quantized.model(*inputs)
                files = {k: str(root / f"{case}.{k}") for k in ("model", "inputs", "output")}
                ptq.save(files["model"], quantized.model, entry=entry, recipe=recipe, weights=built.weights)
                torch.save(inputs, files["inputs"])
                torch.save(output, files["output"])
                jobs[case] = files
    finally:
        torch.set_num_threads(threads)
    (root / "jobs.json").write_text(json.dumps(jobs))
    (root / "loader.py").write_text(LOADER)
    proc = subprocess.run(
        [sys.executable, str(root / "loader.py"), str(root / "jobs.json"), str(root / "verdicts.json")],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"the loading process failed:\n{proc.stderr[-3000:]}", pytrace=False)
    outcome.update(json.loads((root / "verdicts.json").read_text()))
    return outcome


@pytest.mark.slow
@pytest.mark.parametrize("case", [f"{m}-{r}" for m in MODELS for r in RECIPES])
def test_round_trip_in_a_fresh_process(round_trip: dict[str, str], case: str):
    verdict = round_trip[case]
    if verdict.startswith("skip: "):
        pytest.skip(verdict)
    assert verdict == "identical", f"{case}: the loaded model's outputs {verdict}"
