"""Tests of xrdbatch.pipeline: the stage list, reruns, and the demo command end to end (small)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from xrdbatch import config, pipeline, store

SMALL = ["sources.specs=['synthetic:40']", "store.chunk_size=16", "conditions.two_theta_min_deg=10.0",
         "conditions.two_theta_max_deg=60.0", "conditions.two_theta_step_deg=0.05", "cluster.n_workers=2",
         "cluster.threads_per_worker=1"]


def test_stages_are_an_ordered_list_of_named_functions():
    names = [name for name, _ in pipeline.STAGES]
    assert names[:4] == ["ingest", "variants", "simulate", "augment"] and len(set(names)) == len(names)
    assert all(callable(fn) for _, fn in pipeline.STAGES)
    with pytest.raises(pipeline.PipelineError, match=r"unknown stage\(s\) \['simulat'\]; valid stages, in order"):
        pipeline.run(config.load_config(None), stages=["simulat"])


def test_demo_config_is_valid_and_sized_for_two_cores():
    cfg = config.load_config(pipeline.DEMO_CONFIG)
    assert cfg["out_dir"] == "xrdbatch-demo"
    assert "builtin:prototypes" in cfg["sources"]["specs"]
    assert any(s.startswith("synthetic:") for s in cfg["sources"]["specs"])
    config.resolve_conditions(cfg["conditions"])


@pytest.mark.slow
def test_run_makes_catalog_and_store_and_reruns_without_redoing(tmp_path):
    cfg = config.load_config(pipeline.DEMO_CONFIG, [*SMALL, f"out_dir='{tmp_path / 'run'}'"])
    lines: list[str] = []
    outputs = pipeline.run(cfg, stages=["ingest", "simulate"], log=lines.append)
    assert set(outputs) >= {"catalog", "store"}
    ds = store.open_dataset(outputs["store"])
    assert ds.sizes["structure"] == 40 and ds.attrs["conditions"] == config.resolve_conditions(cfg["conditions"]).to_json()
    ok = ds["sim_status"].values == "ok"
    assert ok.sum() >= 35
    np.testing.assert_allclose(ds["intensity"].values[ok].max(axis=1), 1.0)
    assert any("outputs in" in line for line in lines)

    again: list[str] = []
    pipeline.run(cfg, stages=["ingest", "simulate"], log=again.append)
    assert any("up to date" in line for line in again)
    assert any("0 run now, 3 already done" in line for line in again)


@pytest.mark.slow
def test_demo_command_says_where_its_outputs_are(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "xrdbatch.cli", "demo", "--out", str(out), "--stages", "ingest,simulate"]
    cmd += [a for s in SMALL for a in ("--set", s)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"outputs in {out}" in result.stdout
    assert str(out / "store.zarr") in result.stdout and str(out / "catalog.parquet") in result.stdout
    assert store.status(out / "store.zarr").complete


@pytest.mark.slow
def test_training_data_recipe_is_one_run(tmp_path):
    """variants -> simulate -> augment copies -> features -> train: the model trains on the augmented stores."""
    import json

    cfg = config.load_config(pipeline.DEMO_CONFIG, [
        *SMALL, "sources.specs=['synthetic:30', 'builtin:prototypes']", f"out_dir='{tmp_path / 'run'}'",
        "training.substitutions=1", "training.augment_copies=2", "training.class_mix='mineral'",
        "training.system_exponent=0.5", "training.space_group_synthetic_weight=0.0",
        "training.crystal_system_model='boosting'"])
    lines: list[str] = []
    outputs = pipeline.run(cfg, stages=["ingest", "variants", "simulate", "augment", "features", "train"],
                           log=lines.append)
    assert outputs["variants"].endswith("catalog_variants.parquet") and outputs["catalog"].endswith("catalog.parquet")
    assert len(outputs["training_stores"]) == 2
    base = store.open_dataset(outputs["store"])
    n = base.sizes["structure"]
    assert n > 30 + 288  # synthetic + prototypes + their element-substituted copies
    specs = [json.loads(store.open_dataset(p).attrs["augmentation"]) for p in outputs["training_stores"]]
    assert [s["copy"] for s in specs] == [0, 1] and specs[0]["params"] == specs[1]["params"]
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    assert manifest["feature_set"] == "measured" and manifest["peak_params"]["height_rel"] == 0.04
    assert manifest["training"]["class_mix"] == "mineral"
    assert manifest["training"]["model_params"]["crystal_system"]["model"] == "boosting"
    assert len(manifest["training"]["source"]["stores"]) == 2
    assert manifest["training"]["n_rows"] > n  # two copies of every ok structure
    # every row's origin reached the training stage through the augmented stores (source coordinate + variant ids)
    assert manifest["training"]["space_group_synthetic_weight"] == 0.0
    assert set(manifest["training"]["origins"]) == {"real", "variant", "synthetic"}
    assert all(s["origin_from"] == "store" for s in manifest["training"]["source"]["stores"])  # its source coord
    # the search-match library: the real structures (prototypes, not their variants) of the ideal store behind the
    # augmented copies
    assert manifest["library"]["source"] == outputs["store"] and 200 < manifest["library"]["entries"] <= 288

    # the recipe's scoring with shift averaging ([scoring] shift_average_deg / shift_views) on the same run
    cfg = config.load_config(pipeline.DEMO_CONFIG, [
        *SMALL, "sources.specs=['synthetic:30', 'builtin:prototypes']", f"out_dir='{tmp_path / 'run'}'",
        "scoring.optional_inputs=[]", "scoring.shift_average_deg=0.04", "scoring.shift_views=3"])
    pipeline.run(cfg, stages=["examples", "score"], log=lines.append)
    cfg["scoring"].update(shift_average_deg=0.0, out="plain.csv")
    pipeline.run(cfg, stages=["examples", "score"], log=lines.append)
    avg, plain = (pd.read_csv(tmp_path / "run" / f).sort_values("file") for f in ("scores.csv", "plain.csv"))
    assert len(avg) == len(plain) > 0 and (avg["status"] == "ok").all()
    assert not np.allclose(avg["crystal_system_prob"], plain["crystal_system_prob"])  # the averaging took place
    # measured prototypes are answered by their own structure in the library (default: on; 5 of 8 at this coarse
    # 10-60 deg, 0.05 deg step, 8 of 8 with the demo's conditions)
    matched = avg["matched"].astype(bool).to_numpy()
    named = avg["file"].map(lambda f: f.rsplit("/", 1)[-1][:-3])
    assert matched.sum() >= 4, avg[["file", "match_score", "match_formula"]]
    assert (avg["space_group_1"][matched] == named[matched].str.split("_").str[1].astype(int)).all()
    assert (avg["match_formula"][matched] == named[matched].str.split("_").str[0]).all()
    cfg["scoring"].update(search_match=False, out="model_only.csv")
    pipeline.run(cfg, stages=["examples", "score"], log=lines.append)
    assert pd.read_csv(tmp_path / "run" / "model_only.csv")["matched"].isna().all()

    # the report stage scores labelled measured patterns ([training] report_measured) as the score stage does:
    # here the example files, labelled by their names (FORMULA_SPACEGROUP.xy)
    from xrdbatch.crystal import crystal_system_of

    examples = sorted((tmp_path / "run" / "examples").glob("*.xy"))
    groups = [int(f.stem.split("_")[1]) for f in examples]
    pd.DataFrame({"file": [f.name for f in examples], "dataset": "examples", "space_group": groups,
                  "crystal_system": [crystal_system_of(g) for g in groups]}).to_csv(tmp_path / "labels.csv", index=False)
    cfg["training"].update(report_measured=str(tmp_path / "labels.csv"),
                           report_measured_root=str(tmp_path / "run" / "examples"))
    cfg["scoring"].update(search_match=None)
    lines.clear()
    pipeline.run(cfg, stages=["report"], log=lines.append)
    metrics = json.loads((tmp_path / "run" / "report" / "metrics.json").read_text())
    [row] = [r for r in metrics["measured"] if r["dataset"] == "examples"]
    assert row["files"] == len(examples) == 8 and row["crystal_system_accuracy"] >= 0.5, row
    # rows the search-match answered have their own accuracy; calibration covers the rows the model answered
    assert metrics["measured_search_match"]["rows"] == round(row["matched"] * 8) >= 4
    assert metrics.get("measured_calibration", {"n": 0})["n"] == 8 - metrics["measured_search_match"]["rows"]
    assert any(line.startswith("report: measured") for line in lines)
    # a labels file that is not on this machine is logged and left out
    cfg["training"].update(report_measured=str(tmp_path / "nowhere.csv"))
    lines.clear()
    pipeline.run(cfg, stages=["report"], log=lines.append)
    assert any("no measured labels file" in line for line in lines)
    assert "measured" not in json.loads((tmp_path / "run" / "report" / "metrics.json").read_text())