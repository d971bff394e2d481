"""structlog set-up: JSON lines when not on a terminal, readable text when on one.

Every record goes out through one handler on the standard library's root
logger, rendered by structlog's ``ProcessorFormatter``: the node's own
structlog lines and the records of the standard library's loggers alike
(gRPC's Python loggers, SQLAlchemy, Alembic), so a log collector parses one
format. Each line carries what the call bound with structlog's contextvars
(``rpc``, ``caller``; see ``federation.api.errors``). What the node logs
names members, items and cases by id, never a reported URL or hash.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

#: Run on every record, the node's and the standard library's, before rendering.
_SHARED: tuple[structlog.types.Processor, ...] = (
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)


def configure_logging(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _route_stdlib(_formatter(use_json), numeric)
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.add_logger_name,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        # Filtering here keeps a disabled level (debug on the Deliver path)
        # at the cost of one method call: nothing is formatted.
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def _formatter(use_json: bool) -> structlog.stdlib.ProcessorFormatter:
    """Renders structlog's event dicts and foreign records the same way."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def _route_stdlib(formatter: logging.Formatter, level: int) -> None:
    """One stderr handler on the root logger; earlier handlers are replaced."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
