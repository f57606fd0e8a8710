"""User-facing errors.

A :class:`UserError` is something the person running lit-edge can fix (a wrong path, a tampered
bundle, a missing extra). The CLI prints its message as one line and exits non-zero; library code
raises it instead of calling ``sys.exit`` so that it stays usable from Python.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix. The message says what, where, and what to do."""

    exit_code = 2


class MissingExtraError(UserError):
    """A command needs an optional dependency group that is not installed."""

    def __init__(self, module: str, extra: str):
        super().__init__(
            f"this command needs '{module}', which is not installed; "
            f"install it with: pip install 'lit-edge[{extra}]'"
        )


def require(module: str, extra: str):
    """Import ``module`` or raise a :class:`MissingExtraError` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingExtraError(module, extra) from exc
