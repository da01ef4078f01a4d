"""Keep asyncua's client-side failure chatter out of stderr and the log, precisely.

The driver reports every failure of the client in one line of its own (`describe_error`, logged
once, and again on recovery). asyncua also logs the same failures from inside, once per attempt:
an ERROR "Got error status from server" for every refused channel, "Exception raised while parsing
message from server" with a `NotEnoughData` traceback when a server closes the channel in the
middle of a message (what a server that does not trust our certificate does), warnings about
closing what never opened, and -- from its background tasks -- asyncio's "Task exception was never
retrieved" with a `BadSecurityModeRejected` traceback. Those are filtered here, on asyncua's own
client loggers and, for the unretrieved task exceptions, only for exceptions raised in asyncua's
code; nothing else in the process is touched (no global levels).

Records dropped: the ones listed in `_DROP` (the driver's line says the same thing). Any other ERROR
record of these loggers that carries a traceback is kept, as one line (`Type: message`).
"""

from __future__ import annotations

import logging
import traceback

from asyncua.common.utils import NotEnoughData

# Logger name -> message prefixes whose records are dropped.
_DROP: dict[str, tuple[str, ...]] = {
    "asyncua.client.ua_client.UASocketProtocol": (
        "Got error status from server",
    ),
    "asyncua.client.ua_client.UaClient": (
        "close_secure_channel was called but connection is closed",
        "disconnect_socket was called but transport is None",
    ),
    "asyncua.client.ua_session.UaSession": (
        "close_session but connection wasn't established",
        "close_session was called but connection is closed",
    ),
    "asyncua.client.client": (
        "create_session fault response",
    ),
}
_ASYNCUA_DIR = "/asyncua/"
_installed = False


def _one_line(record: logging.LogRecord, prefix: str = "") -> None:
    """Fold the record's exception into its message: one line, no traceback."""
    exc = record.exc_info[1] if record.exc_info else None
    text = prefix or record.getMessage()
    if exc is not None:
        text = f"{text}: {type(exc).__name__}: {exc}".rstrip(": ")
    record.msg, record.args = " ".join(text.split()), ()
    record.exc_info, record.exc_text, record.stack_info = None, None, None


class _ClientFilter(logging.Filter):
    def __init__(self, drop: tuple[str, ...]):
        super().__init__()
        self._drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else str(record.msg)
        if message.startswith(self._drop):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, NotEnoughData):
            return False  # a server that closed the channel mid-message: the driver says why
        if exc is not None:
            _one_line(record)
        return True


def _raised_in_asyncua(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return any(_ASYNCUA_DIR in f.filename for f in frames)


class _UnretrievedTaskFilter(logging.Filter):
    """asyncio's "Task exception was never retrieved" for exceptions raised inside asyncua."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.msg if isinstance(record.msg, str) else ""
        if (exc is not None and message.startswith("Task exception was never retrieved")
                and _raised_in_asyncua(exc)):
            if isinstance(exc, NotEnoughData):
                return False
            _one_line(record, "OPC-UA client background task ended")
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install() -> None:
    """Attach the filters (idempotent; called when an OPC-UA driver is created)."""
    global _installed
    if _installed:
        return
    _installed = True
    for name, drop in _DROP.items():
        logging.getLogger(name).addFilter(_ClientFilter(drop))
    logging.getLogger("asyncio").addFilter(_UnretrievedTaskFilter())
