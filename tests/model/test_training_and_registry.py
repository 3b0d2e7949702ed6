from __future__ import annotations

import json
from datetime import timedelta

import pytest

from sentinel42.errors import ModelError
from sentinel42.model.config import InferenceConfig, RegistryConfig, TrainingConfig
from sentinel42.model.predictor import NO_MODEL, predict_latest
from sentinel42.model.registry import METADATA_FILE, WEIGHTS_FILE, ModelRegistry
from sentinel42.model.walk_forward import evaluate_model, train_and_register
from sentinel42.synthetic import synthetic_bars
from tests.model.conftest import NOW, TICKERS, fast_settings

KEYS = {"accuracy", "log_loss", "brier", "ic", "n"}


def test_learnable_sign_pattern_is_learned_out_of_sample_and_promoted(trained: dict) -> None:
    doc = trained["doc"]
    assert doc["promoted"] is True, doc["reason"]
    assert doc["model"]["accuracy"] > 0.6  # test window: never seen in training or gating
    for name, base in doc["baselines"].items():
        assert set(base) == KEYS
        assert doc["model"]["log_loss"] < base["log_loss"], name
    registry = ModelRegistry(trained["settings"].models_dir)
    assert registry.current_version() == doc["version"] == doc["model"]["version"]
    assert any(line.startswith("fold 1/1: epoch 1/") for line in trained["progress"])
    assert set(doc["folds"][0]) >= {"model", "baselines", "ranges"}


def test_random_walk_is_refused_and_the_promoted_model_stays(
    trained: dict, walk_bars: dict, tmp_path
) -> None:
    settings = fast_settings(tmp_path)
    registry = ModelRegistry(settings.models_dir)
    first = train_and_register(
        TrainingConfig.from_settings(settings),
        synthetic_bars(TICKERS, 40, seed=3),
        now=NOW,
        n_folds=1,
    )
    assert first["promoted"] is True
    doc = train_and_register(
        TrainingConfig.from_settings(settings), walk_bars, now=NOW + timedelta(days=7), n_folds=1
    )
    assert doc["promoted"] is False
    assert "baseline" in doc["reason"]
    # same dates as the incumbent's data: no test window is out of sample for it
    assert f"incumbent {first['version']} does not defend: only 0 test windows" in doc["reason"]
    assert registry.current_version() == first["version"] != doc["version"]
    refused = registry.decisions()[-1]
    assert refused["version"] == doc["version"] and refused["promoted"] is False
    assert refused["gate"] == doc["gate"] and refused["gate"]["block"] == "test"
    assert refused["validation"]["model"]["log_loss"] == doc["validation"]["model"]["log_loss"]
    assert [row["current"] for row in registry.list()] == [True, False]


def test_one_seed_gives_identical_metrics(tmp_path, walk_bars: dict) -> None:
    docs = [
        train_and_register(
            TrainingConfig.from_settings(fast_settings(tmp_path / str(i), model_epochs=3)),
            walk_bars,
            now=NOW,
            n_folds=1,
        )
        for i in range(2)
    ]
    assert docs[0]["validation"] == docs[1]["validation"]
    assert docs[0]["model"] == docs[1]["model"]


def test_evaluate_reproduces_the_test_metrics_from_the_saved_checkpoint(
    trained: dict, pattern_bars: dict
) -> None:
    doc = evaluate_model(RegistryConfig.from_settings(trained["settings"]), pattern_bars)
    trained_doc = trained["doc"]
    assert doc["version"] == trained_doc["version"] and doc["promoted"] is True
    for key in ("accuracy", "log_loss", "brier", "ic"):
        assert doc["model"][key] == pytest.approx(trained_doc["model"][key], abs=1e-6)
        for name in ("majority", "persistence", "momentum"):
            assert doc["baselines"][name][key] == pytest.approx(
                trained_doc["baselines"][name][key], abs=1e-9
            )


def test_evaluate_without_out_of_sample_bars_says_so(trained: dict, pattern_bars: dict) -> None:
    early = {t: f.iloc[: 26 * 20] for t, f in pattern_bars.items()}
    with pytest.raises(ModelError, match="no out-of-sample windows"):
        evaluate_model(RegistryConfig.from_settings(trained["settings"]), early)


def test_predict_latest_batches_every_ticker_with_version_and_accuracy(
    trained: dict, pattern_bars: dict
) -> None:
    frame = pattern_bars["AAA"]
    as_of = frame.index[-3].to_pydatetime() + timedelta(minutes=20)  # mid-bar
    bars = dict(pattern_bars, NEW=frame.iloc[:10])
    result = predict_latest(InferenceConfig.from_settings(trained["settings"]), bars, as_of)
    version = trained["doc"]["version"]
    assert result.model_version == version
    assert set(result.predictions) == set(TICKERS)
    p = result.predictions["AAA"]
    # newest bar *ending* at or before as_of: index[-3] ended 5 minutes before as_of
    assert p.bar_ts == frame.index[-3].to_pydatetime()
    assert 0.0 < p.p_up < 1.0
    assert p.model_version == version and p.horizon_bars == 1
    assert p.model_accuracy == pytest.approx(trained["doc"]["model"]["accuracy"])
    assert "too little history" in result.skipped["NEW"]


def test_predict_latest_without_a_promoted_model_skips_every_ticker(tmp_path, walk_bars) -> None:
    result = predict_latest(InferenceConfig.from_settings(fast_settings(tmp_path)), walk_bars, NOW)
    assert result.predictions == {} and result.model_version is None
    assert result.skipped == {t: NO_MODEL for t in TICKERS}


def _copy_registry(trained: dict, tmp_path):
    import shutil

    src = trained["settings"].models_dir
    shutil.copytree(src, tmp_path / "models")
    return ModelRegistry(tmp_path / "models"), trained["doc"]["version"]


def test_a_checkpoint_whose_feature_spec_differs_fails_with_a_clear_error(
    trained: dict, tmp_path
) -> None:
    registry, version = _copy_registry(trained, tmp_path)
    path = tmp_path / "models" / version / METADATA_FILE
    meta = json.loads(path.read_text())
    meta["feature_spec"]["names"] = [*meta["feature_spec"]["names"][:-1], "rsi_14"]
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="do not match the features this code computes"):
        registry.load(version)


def test_tampered_weights_are_refused(trained: dict, tmp_path) -> None:
    registry, version = _copy_registry(trained, tmp_path)
    weights = tmp_path / "models" / version / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(ModelError, match="hash"):
        registry.load(version)


def test_promote_swaps_the_pointer_without_leaving_temp_files(trained: dict, tmp_path) -> None:
    registry, version = _copy_registry(trained, tmp_path)
    (tmp_path / "models" / "current").unlink()
    assert registry.current_version() is None
    registry.promote(version)
    assert registry.current_version() == version
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ModelError, match="no such checkpoint"):
        registry.promote("20990101T000000Z-deadbeef")


def test_a_partly_written_version_folder_does_not_block_the_next_save(trained, tmp_path) -> None:
    """A save killed half-way left a folder without metadata: the retrain at the same clock
    used to fail with FileExistsError for good."""
    import shutil

    from sentinel42.model.registry import ModelRegistry

    shutil.copytree(trained["settings"].models_dir, tmp_path / "models")
    registry = ModelRegistry(tmp_path / "models")
    version = trained["doc"]["version"]
    loaded = registry.load(version)
    leftover = tmp_path / "models" / "v-leftover"
    leftover.mkdir()
    (leftover / "weights.safetensors").write_bytes(b"half")
    assert "v-leftover" not in registry.versions()
    registry.save("v-leftover", loaded.network, registry.metadata(version))
    assert "v-leftover" in registry.versions()
    assert registry.load("v-leftover").version == "v-leftover"
    assert not [p for p in (tmp_path / "models").iterdir() if ".partial-" in p.name]
