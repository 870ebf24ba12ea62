import pytest

from ptq.config import Config, Section, load_config, register_section, validate
from ptq.errors import UserError

register_section(Section("test_section", {"limit": (int, float), "name": str}))


def test_resolve_most_specific_wins():
    cfg = validate(
        {
            "test_section": {
                "limit": 1,
                "models": {"resnet18": {"limit": 2}},
                "recipes": {"static_int8": {"limit": 3}},
                "cases": {"resnet18-static_int8": {"limit": 4}},
            }
        },
        "x",
    )
    assert cfg.resolve("test_section", model="other", recipe="other", defaults={"limit": 0, "name": "d"}) == {"limit": 1, "name": "d"}
    assert cfg.resolve("test_section", model="resnet18", recipe="fp32")["limit"] == 2
    assert cfg.resolve("test_section", model="resnet18", recipe="static_int8")["limit"] == 4
    assert cfg.resolve("test_section", model="mobilenet_v2", recipe="static_int8")["limit"] == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nope": {}}, r"unknown section \[tool.ptq.nope\]; valid sections: .*test_section"),
        ({"test_section": {"limt": 1}}, r"unknown key 'limt' in \[tool.ptq.test_section\]; valid keys: limit, name"),
        ({"test_section": {"limit": "high"}}, r"limit must be"),
        ({"test_section": {"limit": True}}, r"limit must be"),
        ({"test_section": {"models": {"resnet18": {"limt": 1}}}}, r"\[models.resnet18\]: unknown key 'limt'"),
    ],
)
def test_bad_config_names_the_key_and_the_fix(data, message):
    with pytest.raises(UserError, match=message):
        validate(data, "pyproject.toml")


def test_load_prefers_results_file_then_pyproject(tmp_path):
    assert load_config(tmp_path) == Config({})
    (tmp_path / "pyproject.toml").write_text('[tool.ptq.test_section]\nlimit = 5\n')
    assert load_config(tmp_path).section("test_section") == {"limit": 5}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "ptq.toml").write_text('[test_section]\nlimit = 6\n')
    assert load_config(tmp_path).section("test_section") == {"limit": 6}
    (tmp_path / "results" / "ptq.toml").write_text("[test_section\n")
    with pytest.raises(UserError, match="cannot parse ptq config"):
        load_config(tmp_path)
