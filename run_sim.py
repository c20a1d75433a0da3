#!/usr/bin/env python3
"""Entry point: ``python run_sim.py scenarios/payment_timeout.yaml [flags]``."""

import sys

from sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
