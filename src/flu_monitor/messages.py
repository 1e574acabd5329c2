"""Errors as the one line a user reads (no traceback): the first line of the message, or the
exception's type when it has none. psycopg and kafka-python messages often carry a second line of
detail (a hint, a connection string); the first says what went wrong."""


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Failure(RuntimeError):
    """The environment stops a command (a service unreachable, a file unwritable): its message
    is the one line the user reads, and the command exits 1."""


class BadInput(ValueError):
    """A value the user gave is wrong (exit 2); `option` names it when one option is to blame."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option
