"""Logging for the plugin: one line per event, ``event=... key=value``.

Our records go to standard error next to Orthanc's own log lines, so
`make run` shows what happened to each study. Patient names and other
identifying text are never logged: UIDs and Orthanc IDs are enough to trace.
"""

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level="INFO", stream=None):
    root = logging.getLogger("plugin")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    root.propagate = False
    return root
