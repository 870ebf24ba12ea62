"""``--ptq-image-folder``: the torchvision models evaluate on the user's labeled images.

Precedence: the option, then ``$PTQ_IMAGE_FOLDER``, then ``[tool.ptq.data] image_folder`` (a
relative path there is relative to the rootdir). The folder is set for the session's builders
at configure time and restored at unconfigure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ptq.models.image_folder import ENV_VAR, SECTION, set_image_folder

__all__: list[str] = []

_PREVIOUS = pytest.StashKey["Path | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ptq")
    group.addoption(
        "--ptq-image-folder",
        default=None,
        metavar="PATH",
        help="ImageFolder tree (<root>/<class>/<image>, class folders named by ImageNet index or "
        "category) the torchvision models calibrate and evaluate on; labeled top-1/top-5 with "
        f"pretrained weights. Also ${ENV_VAR} or [tool.ptq.{SECTION.name}] image_folder",
    )


def _chosen(config: pytest.Config) -> tuple[Path, str] | None:
    option = config.getoption("--ptq-image-folder")
    if option:
        return Path(option).absolute(), "--ptq-image-folder"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).absolute(), f"${ENV_VAR}"
    from ptq.plugins._state import STATE

    state = config.stash.get(STATE, None)
    value = state.options.config.section(SECTION.name).get("image_folder") if state is not None else None
    if state is None or value is None:
        return None
    return config.rootpath / value, f"[tool.ptq.{SECTION.name}] image_folder in {state.options.config.source}"


@pytest.hookimpl(trylast=True)  # after the core plugin has loaded the config
def pytest_configure(config: pytest.Config) -> None:
    chosen = _chosen(config)
    if chosen is None:
        return
    folder, where = chosen
    if not folder.is_dir():
        raise pytest.UsageError(
            f"{where}: image folder {str(folder)!r} is not a directory; point it at a <root>/<class>/<image> tree"
        )
    config.stash[_PREVIOUS] = set_image_folder(folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREVIOUS in config.stash:
        set_image_folder(config.stash[_PREVIOUS])
