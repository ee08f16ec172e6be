"""User-facing errors: each one says where the problem is and what was expected."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class BenchError(Exception):
    """An error caused by the user's input (suite, data, options); shown without a traceback."""


class ConfigError(BenchError):
    """A suite or override that does not validate. `where` is 'file: key.path'."""

    def __init__(self, where: str, message: str):
        self.where = where
        super().__init__(f"{where}: {message}")


class DataError(BenchError):
    """A dataset root, annotation or frame that is missing or malformed."""


#: pydantic's names of the union members of a suite's dataset entries (not key paths).
UNION_TAGS = ("str", "DatasetSpec", "CrossSpec")


def format_loc(loc: tuple) -> str:
    """('ablations', 'iaunet', 0, 'x') -> 'ablations.iaunet[0].x'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def raise_validation(where: str, exc: ValidationError, prefix: tuple = ()) -> None:
    """Re-raise a pydantic error as a ConfigError naming the first bad key path."""
    errors = exc.errors()
    err = errors[0]
    loc = [p for p in (*prefix, *err["loc"]) if p not in UNION_TAGS]
    got = f" (got {shown(err['input'])})" if err["type"] != "missing" else ""
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    more = f" [and {len(errors) - 1} more]" if len(errors) > 1 else ""
    raise ConfigError(where, f"{format_loc(tuple(loc))}: {msg}{got}{more}")


def shown(value: Any, limit: int = 80) -> str:
    """repr of a bad value on one line, shortened."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
