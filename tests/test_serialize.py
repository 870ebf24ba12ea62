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
from ptq.probes.size import state_dict_bytes
from ptq.recipes import StaticInt8, get_recipe, list_recipes
from ptq.recipes.serialize import read_manifest, recipe_from_dict, savable
from ptq.run.matrix import select_cases

MODELS = list(dict.fromkeys(c.model for c in select_cases("default")))  # the marker says: default models x recipes
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

LOADER = textwrap.dedent("""
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
""")


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
        capture_output=True,
        text=True,
        timeout=600,
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


# ptq.load checks what it loads: every value's layout against the rebuilt model, and every error
# names the file. A packed quantized Linear takes another shape's weights without a word and fails
# on its first call ("packB should be equal to K"), so the check has to unpack them.


def _quantized(model: str, recipe: str) -> tuple[ptq.ModelEntry, torch.nn.Module]:
    entry = ptq.get_model(model)
    return entry, ptq.apply_recipe(_fast(get_recipe(recipe)), entry, entry.build(weights="random")).model


def _with_payload(path: Path, payload: bytes | None) -> Path:
    """``path`` rewritten with the same manifest and ``payload`` as its state_dict.pt (None: none)."""
    with zipfile.ZipFile(path) as archive:
        manifest = archive.read("manifest.json")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", manifest)
        if payload is not None:
            archive.writestr("state_dict.pt", payload)
    return path


def _saved_as(path: Path, value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


# (file's model, recipe, model whose tensors are put in the file, first differing key, its layout in each)
FOREIGN = [
    (
        "micro_linear_256",
        "dynamic_int8",
        "micro_linear_1024",
        "0._packed_params._packed_params",
        "qint8 [1024, 1024] per_tensor_affine",
        "qint8 [256, 256] per_tensor_affine",
    ),
    (
        "micro_linear_256",
        "static_int8",
        "micro_linear_1024",
        "0._packed_params._packed_params",
        "qint8 [1024, 1024] per_channel_affine",
        "qint8 [256, 256] per_channel_affine",
    ),
    (
        "micro_conv_16",
        "static_int8",
        "micro_conv_64",
        "0.weight",
        "qint8 [64, 64, 3, 3] per_channel_affine",
        "qint8 [16, 16, 3, 3] per_channel_affine",
    ),
    (
        "micro_lstm_128",
        "dynamic_int8_rnn",
        "micro_lstm_512",
        "0.lstm._all_weight_values.0.param",
        "float32 [2048]",
        "float32 [512]",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "recipe", "other", "key", "in_file", "in_model"), FOREIGN, ids=[f"{m}-{r}" for m, r, *_ in FOREIGN]
)
def test_another_models_tensors_are_refused_naming_file_key_both_layouts_and_fix(
    tmp_path: Path, model, recipe, other, key, in_file, in_model
):
    entry, quantized = _quantized(model, recipe)
    path = ptq.save(tmp_path / "m.ptq", quantized, entry=entry, recipe=recipe)
    loaded = ptq.load(path)  # the genuine file passes the check
    inputs = entry.example_inputs(entry.build(weights="random"))
    with torch.inference_mode():
        assert torch.equal(loaded.model(*inputs), quantized(*inputs))
    _with_payload(path, _saved_as(path, _quantized(other, recipe)[1].state_dict()))
    with pytest.raises(UserError) as caught:
        ptq.load(path)
    assert str(caught.value).startswith(
        f"{str(path)!r}: tensor {key!r} is {in_file} in the file, but {in_model} in model {model!r} quantized by "
        f"{recipe!r}"
    ), str(caught.value)
    assert str(caught.value).endswith(
        "save the model again with ptq.save, naming the entry and recipe that produced it"
    )


@pytest.mark.parametrize(
    ("recipe", "other", "message"),
    [
        (
            "static_int8",
            "dynamic_int8",
            r"keys differ from model 'micro_linear_256' quantized by 'static_int8' \(missing "
            r"0_input_scale_0, 0_input_zero_point_0\): the weights are another",
        ),
        (
            "dynamic_int8",
            "dynamic_fp16",
            r"tensor '0._packed_params.dtype' is float16 in the file, but qint8 in model "
            r"'micro_linear_256' quantized by 'dynamic_int8' \(1 more tensor\(s\) differ\): the weights",
        ),
    ],
    ids=["keys", "dtype"],
)
def test_another_recipes_state_is_refused_by_its_keys_or_its_dtype(tmp_path: Path, recipe, other, message):
    entry, quantized = _quantized("micro_linear_256", recipe)
    path = ptq.save(tmp_path / "m.ptq", quantized, entry=entry, recipe=recipe)
    _with_payload(path, _saved_as(path, _quantized("micro_linear_256", other)[1].state_dict()))
    with pytest.raises(UserError, match=f"^'{path}': {message}"):
        ptq.load(path)


class _Hostile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_refused_unpickle_says_the_file_may_be_malicious_and_never_suggests_weights_only_false(tmp_path: Path):
    entry, quantized = _quantized("micro_linear_256", "dynamic_int8")
    path = ptq.save(tmp_path / "m.ptq", quantized, entry=entry, recipe="dynamic_int8")
    marker = tmp_path / "executed"
    _with_payload(path, _saved_as(path, {"0.weight": _Hostile(marker)}))
    with pytest.raises(UserError) as caught:
        ptq.load(path)
    message = str(caught.value)
    assert message.startswith(f"{str(path)!r}: refused to unpickle its state_dict.pt: it holds more than tensors")
    assert "may be malicious or not a ptq file" in message and "weights_only" not in message
    assert len(message.splitlines()) == 1 and not marker.exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not a pickle at all", r"refused to unpickle its state_dict.pt: .*may be malicious or not a ptq file"),
        (None, r"no state_dict.pt in it; it is damaged or not written by ptq.save"),
        (_saved_as(Path("x"), [torch.zeros(1)]), r"its state_dict.pt holds a list, not a state_dict"),
    ],
    ids=["garbage", "no-weights", "not-a-dict"],
)
def test_every_load_error_names_the_file(tmp_path: Path, payload, message):
    entry, quantized = _quantized("micro_linear_256", "dynamic_int8")
    path = _with_payload(ptq.save(tmp_path / "m.ptq", quantized, entry=entry, recipe="dynamic_int8"), payload)
    with pytest.raises(UserError, match=f"^'{path}': {message}"):
        ptq.load(path)


def test_an_unknown_model_in_the_manifest_names_the_file(tmp_path: Path):
    entry, quantized = _quantized("micro_linear_256", "fp32")
    path = ptq.save(tmp_path / "m.ptq", quantized, entry=entry, recipe="fp32")
    with zipfile.ZipFile(path) as archive:
        manifest, weights = json.loads(archive.read("manifest.json")), archive.read("state_dict.pt")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", json.dumps({**manifest, "model": "nope"}))
        archive.writestr("state_dict.pt", weights)
    with pytest.raises(UserError, match=f"^'{path}': unknown model 'nope'; valid models: "):
        ptq.load(path)


def _flip(path: Path, member: str) -> None:
    """Change one byte inside ``member``'s stored data, as a bad copy would (its CRC then fails)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    name_len, extra_len = (
        int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    data[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("member", ["state_dict.pt", "manifest.json"])
def test_a_file_whose_member_fails_its_crc_is_one_error_naming_the_file(tmp_path: Path, member):
    """Issue 29: a .ptq whose weights (or manifest) fail their CRC: one line naming the file and the fix."""
    entry, quantized = _quantized("micro_linear_256", "fp32")
    path = ptq.save(tmp_path / "m.ptq", quantized, entry=entry, recipe="fp32")
    _flip(path, member)
    damaged = path.read_bytes()
    with pytest.raises(UserError) as caught:
        ptq.load(path)
    message = str(caught.value)
    assert message == (
        f"{str(path)!r}: damaged: its {member} does not read back as ptq.save wrote it (BadZipFile: Bad "
        f"CRC-32 for file {member!r}); the file was truncated or changed after it was written: copy it "
        "again, or save the model again with ptq.save"
    )
    assert path.read_bytes() == damaged and sorted(p.name for p in tmp_path.iterdir()) == ["m.ptq"]


def test_a_truncated_file_is_damaged_not_foreign(tmp_path: Path):
    entry, quantized = _quantized("micro_linear_256", "fp32")
    path = ptq.save(tmp_path / "m.ptq", quantized, entry=entry, recipe="fp32")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(
        UserError,
        match=rf"^'{path}': damaged: its zip directory does not read back as ptq.save wrote "
        r"it \(BadZipFile: File is not a zip file\); the file was truncated",
    ):
        ptq.load(path)
