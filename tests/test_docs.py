"""The documentation: the MkDocs site builds with no warning and no broken link, the generated
command reference matches the parsers, the README stays a ten-minute read whose links resolve,
and its two commands are the ones CI runs."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The README is the ten-minute read; the rest belongs in docs/ (issue 28 asks for about 250 lines).
README_MAX_LINES = 260
#: Markdown files outside docs/ that link into it; MkDocs checks the links inside docs/.
ROOT_PAGES = ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")


def _mkdocs_missing() -> bool:
    return importlib.util.find_spec("mkdocs") is None


def test_the_site_config_is_strict_and_checks_every_link():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["strict"] is True
    assert config["validation"] == dict.fromkeys(
        ("omitted_files", "absolute_links", "unrecognized_links", "anchors"), "warn"
    )
    nav = [next(iter(entry.values())) if isinstance(entry, dict) else entry for entry in config["nav"]]
    assert sorted(nav) == sorted(p.name for p in (ROOT / "docs").glob("*.md")), "every docs page in the nav, once"


@pytest.mark.slow
@pytest.mark.skipif(
    _mkdocs_missing(), reason="mkdocs is not installed: pip install -e '.[dev]' (or pip install mkdocs)"
)
def test_the_docs_build_with_no_warning_and_no_broken_link(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "WARNING" not in log, log
    assert (tmp_path / "site" / "index.html").exists()


def _cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_command_reference_is_generated_from_the_parsers():
    # In a fresh process: the commands are listed in the order a plain `ptq` imports them, which
    # other tests' imports (ptq.cli.init first, say) would change in this one.
    reference = _cli_reference()
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"docs/cli.md is stale: run {reference.REGENERATE}\n{done.stdout}{done.stderr}"


def test_the_command_reference_names_every_command_and_option():
    from ptq.cli import COMMANDS, build_parser

    page = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name in COMMANDS:
        assert f"## `ptq {name}`" in page, name
        for action in subs[name]._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help") and action.help != "==SUPPRESS==":
                    assert f"`{option}" in page or f", {option}" in page, f"ptq {name} {option}"


def test_the_readme_is_a_ten_minute_read():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"
    )


def test_the_readmes_two_commands_are_what_ci_runs():
    section = README.read_text().split("## Two commands\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert [b.strip() for b in blocks] == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt -e '.[all,dev]'",
        "pytest --benchmark-only",
        "pytest tests",
    ]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert blocks[0].strip() in ci and "pytest tests" in ci


def _slugs(markdown_text: str) -> set[str]:
    """The anchors MkDocs gives a page's headings (Python-Markdown's toc slugs)."""
    from markdown.extensions.toc import slugify

    text = re.sub(r"```.*?```", "", markdown_text, flags=re.S)
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.M)}


@pytest.mark.parametrize("page", ROOT_PAGES)
def test_the_links_of_the_root_pages_resolve(page):
    text = (ROOT / page).read_text()
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))  # code is not a link
    links = re.findall(r"\]\(([^)\s]+)\)", prose)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert local or page != "README.md", "the README links into docs/"
    for link in local:
        path, _, anchor = link.partition("#")
        target = (ROOT / page).parent / path if path else ROOT / page
        assert target.exists(), f"{page}: {link} does not exist"
        if anchor and target.suffix == ".md" and importlib.util.find_spec("markdown") is not None:
            assert anchor in _slugs(target.read_text()), f"{page}: {link}: no heading gives #{anchor}"
