#!/usr/bin/env python3
"""The hub's command line: `python run.py --help`."""

import sys

from hub.cli import main

if __name__ == "__main__":
    sys.exit(main())
