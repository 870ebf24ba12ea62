import pytest

from ptq.errors import DuplicateRegistration, UserError
from ptq.registry import Registry, match_globs


def test_register_get_and_list_in_order():
    reg = Registry[int]("widget")
    reg.register("b", 2)
    reg.register("a", 1)
    assert reg.get("a") == 1
    assert reg.names() == ["b", "a"]
    assert "a" in reg and len(reg) == 2


def test_duplicate_is_refused_unless_replaced():
    reg = Registry[int]("widget")
    reg.register("a", 1)
    with pytest.raises(DuplicateRegistration, match="'a' is already registered") as caught:
        reg.register("a", 2)
    assert isinstance(caught.value, UserError)  # its own kind, still a user-facing error
    reg.register("a", 3, replace=True)
    assert reg.get("a") == 3


def test_unknown_name_lists_the_valid_ones():
    reg = Registry[int]("widget")
    reg.register("alpha", 1)
    reg.register("beta", 2)
    with pytest.raises(UserError, match=r"unknown widget 'gamma'; valid widgets: alpha, beta"):
        reg.get("gamma")


def test_empty_name_is_refused():
    with pytest.raises(UserError, match="non-empty string name"):
        Registry[int]("widget").register("", 1)


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (None, None, ["resnet18", "resnet50", "mobilenet_v2"]),
        ("resnet*", None, ["resnet18", "resnet50"]),
        ("resnet*,mobile*", "*50", ["resnet18", "mobilenet_v2"]),
        (["mobilenet_v2"], None, ["mobilenet_v2"]),
        ("nothing*", None, []),
    ],
)
def test_match_globs(include, exclude, expected):
    assert match_globs(["resnet18", "resnet50", "mobilenet_v2"], include, exclude) == expected
