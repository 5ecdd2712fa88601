"""The Python usage example of examples/, run as a user runs it."""

import json
import os
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples")


def test_score_many_example_runs_as_written(tmp_path):
    script = os.path.join(EXAMPLES, "02_score_many.py")
    out = tmp_path / "scores.jsonl"
    p = subprocess.run(
        [sys.executable, script, str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert p.returncode == 0, p.stderr
    assert "scored 20 cells on cpu" in p.stdout and "best by WOT: |" in p.stdout, p.stdout
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(lines) == 20 and all("wot" in l and "run" in l for l in lines)
