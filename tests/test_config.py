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


def test_the_repositorys_own_config_loads_in_a_fresh_process():
    # Sections register on import; a command that never imports the drift probe must still
    # accept [tool.ptq.tolerance] (ptq compare once refused this repository's pyproject).
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = "from ptq.config import load_config; c = load_config('.'); print(sorted(c.data))"
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "tolerance" in done.stdout
