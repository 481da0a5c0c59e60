"""Controller client library: `Controller` (see `client.py`), the command line
`python -m hub.controller` and a sine-wave demo (`demo.py`)."""

from hub.controller.client import Controller

__all__ = ["Controller"]
