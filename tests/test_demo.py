"""The README's main command, end to end (small): ingest -> simulate -> features -> train -> report -> score."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from test_pipeline import SMALL


@pytest.mark.slow
def test_demo_runs_every_stage_and_scores_measurement_like_examples(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "xrdbatch.cli", "demo", "--out", str(out)]
    cmd += [a for s in SMALL for a in ("--set", s)] + ["--set", "scoring.optional_inputs=[]"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("catalog.parquet", "model/manifest.json", "report/index.html", "report/metrics.json", "scores.csv"):
        assert (out / name).is_file(), f"demo did not write {name}:\n{result.stdout[-3000:]}"
        assert str(out / name.split("/")[0]) in result.stdout, f"demo does not say where {name} is"

    examples = sorted(p.name for p in (out / "examples").iterdir())
    assert examples == sorted(f"{k}.xy" for k in ("NaCl_225", "Si_227", "TiO2_141", "Al2O3_167", "CaTiO3_62",
                                                    "Mg_194", "ZnS_186", "MgAl2O4_227"))
    scores = pd.read_csv(out / "scores.csv")
    assert sorted(scores["file"].map(lambda f: f.rsplit("/", 1)[-1])) == examples  # one row per example file
    assert (scores["status"] == "ok").all()
    assert scores["space_group_1"].between(1, 230).all()
    assert scores["crystal_system_prob"].between(0, 1).all()
    # SMALL's sources are synthetic only: no real structure, so no search-match library and no match columns filled
    assert "matched" in scores and scores["matched"].isna().all()
