"""A steady-state refresh (nothing new to score) neither imports torch nor loads a model.

The steady-state refresh runs in a fresh interpreter, so ``sys.modules`` there shows exactly what
that refresh imported (this test process may hold torch from other tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

from sentinel42 import pipeline
from sentinel42.settings import load_settings
from tests.conftest import ROOT

REFRESH = """
import json, sys
from datetime import datetime
from sentinel42 import pipeline
from sentinel42.settings import load_settings

summary = pipeline.refresh_all(load_settings(), datetime.fromisoformat(sys.argv[1]))
print(json.dumps({
    "new": summary.headlines_new,
    "scored": summary.headlines_scored,
    "scorer": summary.scorer,
    "modules": sorted(m for m in ("torch", "transformers") if m in sys.modules),
}))
"""


def _refresh_in_fresh_process(as_of: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", REFRESH, as_of],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_steady_state_refresh_imports_no_torch_and_new_headlines_are_scored(replay_env):
    settings = load_settings()
    lines = (replay_env / "news" / "synthetic.jsonl").read_text(encoding="utf-8").splitlines()
    newest = datetime.fromisoformat(json.loads(lines[-1])["published_at"])  # lines sorted by time
    earlier, end = newest - timedelta(minutes=1), newest + timedelta(minutes=1)

    first = pipeline.refresh_all(settings, earlier)
    assert first.headlines_new > 0
    assert first.headlines_scored > 0

    steady = _refresh_in_fresh_process(earlier.isoformat())
    assert steady["new"] == 0
    assert steady["scored"] == 0
    assert steady["scorer"] == first.scorer  # named from the store, not from a loaded model
    assert steady["modules"] == []

    later = pipeline.refresh_all(settings, end)  # the newest headline arrives: scored
    assert later.headlines_new > 0
    assert later.headlines_scored > 0
