"""The user's image folder as evaluation data for the torchvision models (ptq.models.image_folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from ptq.errors import UserError
from ptq.models import get_model
from ptq.models.image_folder import ENV_VAR, class_label, load_image_folder, preprocessing, set_image_folder
from ptq.probes.drift.measures import accuracy

CATEGORIES = torchvision.models.MobileNet_V2_Weights.DEFAULT.meta["categories"]


def _write_images(root: Path, classes: dict[str, int], per_class: int = 4) -> None:
    for c, folder in enumerate(classes):
        (root / folder).mkdir(parents=True)
        for i in range(per_class):
            shade = (40 * c + 10 * i) % 256
            Image.new("RGB", (40 + i, 32), (shade, 255 - shade, 128)).save(root / folder / f"img{i}.png")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    _write_images(root, {"207": 0, "tench": 1})
    return root


def _load(root: Path, **kw):
    return load_image_folder(root, categories=CATEGORIES, transform=preprocessing(None), **kw)


def test_splits_are_disjoint_cover_the_folder_and_repeat(folder: Path):
    a, b = _load(folder), _load(folder)
    assert (a.calib, a.eval) == (b.calib, b.eval)
    calib, evaluation = {p for p, _ in a.calib}, {p for p, _ in a.eval}
    assert not calib & evaluation
    assert calib | evaluation == {str(p) for p in folder.rglob("*.png")}
    assert (a.size("calib"), a.size("eval")) == (2, 6)  # 20% of 8, rounded
    assert _load(folder, seed=1).calib != a.calib  # the seed picks the split


def test_labels_from_indices_and_category_names(folder: Path):
    data = _load(folder)
    for path, label in data.calib + data.eval:
        assert label == (207 if "/207/" in path else 0)  # "tench" is ImageNet class 0
    batch = data.batch("eval", 0, 6)
    assert batch.inputs[0].shape == (6, 3, 224, 224)
    assert batch.target.tolist() == [label for _, label in data.eval]
    assert "labels: categories+indices" in data.description


def test_category_names_match_case_and_underscores():
    assert class_label("golden_retriever", CATEGORIES) == (207, "categories")
    assert class_label("Golden Retriever", CATEGORIES) == (207, "categories")
    assert class_label("999", CATEGORIES) == (999, "indices")
    # only case tells these two apart: the exact spelling decides
    assert (class_label("Cardigan", CATEGORIES)[0], class_label("cardigan", CATEGORIES)[0]) == (264, 474)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "n01440764",
            "'n01440764' in /x looks like a WordNet id, but torchvision ships no WordNet-id list; "
            "name class folders by ImageNet class index (0-999) or category name",
        ),
        ("kitten", "'kitten' in /x is not a known class; name class folders by ImageNet class index (0-999)"),
        ("1000", "'1000' in /x: index out of range; class indices run 0-999"),
        (
            "CARDIGAN",
            "'CARDIGAN' in /x names 2 categories (indices 264, 474); rename the folder to one of those indices",
        ),
    ],
)
def test_unknown_folder_names_are_clear_errors(name: str, message: str):
    with pytest.raises(UserError, match="^image folder class " + message.replace("(", r"\(").replace(")", r"\)")):
        class_label(name, CATEGORIES, where="/x")


def test_bad_class_folder_is_named_when_loading(tmp_path: Path):
    _write_images(tmp_path, {"tench": 0, "n01440764": 1}, per_class=1)
    with pytest.raises(UserError, match=f"'n01440764' in {tmp_path} looks like a WordNet id"):
        _load(tmp_path)


def test_missing_or_empty_folder_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="is not a directory"):
        _load(tmp_path / "nope")
    (tmp_path / "tench").mkdir()
    with pytest.raises(UserError, match=r"expected layout <root>/<class>/<image>"):
        _load(tmp_path)


def test_calib_and_eval_subfolders_are_the_split(tmp_path: Path):
    _write_images(tmp_path / "calib", {"1": 0}, per_class=1)
    _write_images(tmp_path / "eval", {"1": 0, "2": 1}, per_class=2)
    data = _load(tmp_path, labeled=False)
    assert (data.size("calib"), data.size("eval")) == (1, 4)
    assert all("/calib/" in p for p, _ in data.calib) and all("/eval/" in p for p, _ in data.eval)
    assert data.batch("calib", 3, 2).target is None  # unlabeled: no targets, cyclic batches
    assert f"ImageFolder {tmp_path} (4 eval images, 1 calib; calib/eval subfolders; labels: unused" in data.description


def test_weights_bring_their_own_preprocessing(folder: Path):
    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2  # resize 232, not 256
    own = load_image_folder(folder, categories=CATEGORIES, transform=preprocessing(weights))
    path = own.calib[0][0]
    assert torch.equal(own.batch("calib", 0, 1).inputs[0][0], weights.transforms()(Image.open(path).convert("RGB")))


def test_without_weights_images_are_center_cropped_and_imagenet_normalised(folder: Path):
    data = _load(folder)
    x = data.batch("calib", 0, 1).inputs[0][0]
    r, g, b = Image.open(data.calib[0][0]).getpixel((0, 0))  # the test images are one flat colour
    expected = torch.tensor([(r / 255 - 0.485) / 0.229, (g / 255 - 0.456) / 0.224, (b / 255 - 0.406) / 0.225])
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x.mean(dim=(1, 2)), expected, atol=1e-3, rtol=0)


def test_top5_accuracy_counts_labels_within_the_five_best():
    logits = torch.tensor([[6.0, 5, 4, 3, 2, 1, 0], [0.0, 1, 2, 3, 4, 5, 6]])
    assert accuracy(logits, torch.tensor([4, 6]), 5) == 1.0
    assert accuracy(logits, torch.tensor([5, 1]), 5) == 0.0
    assert accuracy(logits, torch.tensor([0, 0]), 1) == 0.5


@pytest.mark.slow
def test_vision_entry_uses_the_folder_from_the_environment(folder: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(ENV_VAR, str(folder))
    built = get_model("mobilenet_v2").build(weights="random")
    assert built.data.description.startswith(f"ImageFolder {folder} (6 eval images, 2 calib;")
    assert built.data.batch("eval", 0, 2).target is None  # random weights: labels are not used
    assert "bn-recalibrated" in built.weights
    # the option / config key route sets the folder explicitly; it wins over the environment
    previous = set_image_folder(folder / "missing")
    try:
        with pytest.raises(UserError, match="missing' is not a directory"):
            get_model("mobilenet_v2").build(weights="random")
    finally:
        set_image_folder(previous)


@pytest.mark.slow
def test_option_beats_environment_beats_config_key(
    pytester: pytest.Pytester, folder: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(ENV_VAR, raising=False)
    pytester.makepyprojecttoml(f'[tool.ptq.data]\nimage_folder = "{folder.name}"\n')
    (pytester.path / folder.name).symlink_to(folder)
    other = pytester.mkdir("other")
    pytester.makepyfile("""
        import os
        from pathlib import Path
        from ptq.models.image_folder import image_folder

        def test_folder():
            assert image_folder() == Path(os.environ["EXPECTED"])
    """)
    for env, option, expected in (
        (None, None, pytester.path / folder.name),
        (str(folder), None, folder),
        (str(folder), str(other), other),
    ):
        if env is not None:
            monkeypatch.setenv(ENV_VAR, env)
        monkeypatch.setenv("EXPECTED", str(expected))
        args = [f"--ptq-image-folder={option}"] if option else []
        pytester.runpytest("-p", "no:cacheprovider", *args).assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "no:cacheprovider", "--ptq-image-folder=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ptq-image-folder: image folder '*nowhere' is not a directory*"])
