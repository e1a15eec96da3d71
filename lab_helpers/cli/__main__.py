"""`python -m lab_helpers.cli ...` runs the `vllm-lab` command."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())
