"""User-facing errors: each one says where the problem is and what was expected."""


class BenchError(Exception):
    """An error caused by the user's input (suite, data, options); shown without a traceback."""


class ConfigError(BenchError):
    """A suite or override that does not validate. `where` is 'file: key.path'."""

    def __init__(self, where: str, message: str):
        self.where = where
        super().__init__(f"{where}: {message}")


class DataError(BenchError):
    """A dataset root, annotation or frame that is missing or malformed."""
