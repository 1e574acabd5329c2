"""Errors as the one line a user reads (no traceback): the first line of the message, or the
exception's type when it has none. psycopg and kafka-python messages often carry a second line of
detail (a hint, a connection string); the first says what went wrong."""


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
