"""Exception types: one line for the user, naming the bad value and the fix."""

from __future__ import annotations

__all__ = ["DuplicateRegistration", "NotApplicable", "PtqError", "RecipeFailed", "UserError"]


class PtqError(Exception):
    """Base of every error ptq raises on purpose."""


class UserError(PtqError, ValueError):
    """Bad input from the user: an unknown name, a bad option, a corrupt file.

    ``__tracebackhide__`` keeps pytest's report to the message itself.
    """

    __tracebackhide__ = True


class DuplicateRegistration(UserError):
    """A name registered twice (model, recipe, probe, command, handler, section...): its own
    kind, so a plugin's clash is told apart from bad input; still a ``UserError`` to callers."""


class NotApplicable(PtqError):
    """A recipe cannot apply to a model (no layer of its types, an op it cannot handle).

    The benchmark case is skipped with this reason; it is not a failure.
    """


class RecipeFailed(PtqError):
    """A recipe raised while quantizing a model: fails that one case, never the run."""

    def __init__(self, model: str, recipe: str, error: BaseException) -> None:
        self.model = model
        self.recipe = recipe
        self.error = error
        super().__init__(f"recipe {recipe!r} failed on model {model!r}: {type(error).__name__}: {error}")
