"""Where the shared data lives; `needs_shared` skips a test module with the reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TINYACT_SHARED_DATA") or REPO.parent / "shared" / "data")
HOTPOT = SHARED / "hotpotqa-distractor"
WIKI18 = SHARED / "wiki18-sample"

needs_shared = pytest.mark.skipif(
    not HOTPOT.is_dir() or not WIKI18.is_dir(),
    reason=f"shared data not found at {SHARED} (set TINYACT_SHARED_DATA to the folder holding "
    "hotpotqa-distractor/ and wiki18-sample/)",
)
