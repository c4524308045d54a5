"""Agent logging in hclog's line format (`2024-01-01T00:00:00.000Z [INFO]  agent: message: k=v`).

Log levels follow Consul's names (trace, debug, info, warn, error). Imports: stdlib.
"""

from __future__ import annotations

import logging
import sys
import time

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {"TRACE": TRACE, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
          "WARNING": logging.WARNING, "ERR": logging.ERROR, "ERROR": logging.ERROR}
_NAMES = {TRACE: "TRACE", logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN",
          logging.ERROR: "ERROR", logging.CRITICAL: "ERROR"}


class HclogFormatter(logging.Formatter):
    """Formats records as hclog does; the logger name after `consulpy.` is the subsystem."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        millis = int(record.msecs)
        level = f"[{_NAMES.get(record.levelno, record.levelname)}]"
        name = record.name.removeprefix("consulpy.")
        line = f"{stamp}.{millis:03d}Z {level:<7} {name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def level_number(name: str) -> int:
    return LEVELS.get(name.upper(), logging.INFO)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(HclogFormatter())
    root = logging.getLogger("consulpy")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(level_number(level))
    # aiohttp logs malformed requests with a traceback; the 400 it sends is the whole story.
    for noisy in ("aiohttp.server", "aiohttp.access", "aiohttp.internal", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


def set_level(level: str) -> None:
    logging.getLogger("consulpy").setLevel(level_number(level))
