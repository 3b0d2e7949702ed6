"""``sentinel42 doctor``: one line per check, exit 1 on any FAIL, and it never writes."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import numpy as np
import pytest
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.persistence import make_engine, migrate, open_store

AT = datetime(2026, 11, 27, 17, 45, tzinfo=UTC)
NO_SERVER = "http://127.0.0.1:1/api"  # nothing listens on port 1


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    with open_store(url=f"sqlite:///{folder / 'sentinel42.db'}") as store:
        for i in range(200):
            store.record_event("pad", "AAPL", {"i": i, "pad": f"{i:x}" * 400}, AT)
    return folder


def _doctor(data_dir, *args, **env):
    result = CliRunner().invoke(
        app,
        ["doctor", "--prefect-api-url", NO_SERVER, *args],
        env={"SENTINEL42_DATA_DIR": str(data_dir), **env},
    )
    return result


def _checks(result) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["status"], c["message"]) for c in json.loads(result.stdout)["checks"]}


def test_a_healthy_install_without_model_or_server_only_warns(data_dir):
    result = _doctor(data_dir)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["OK", "settings"],
        ["OK", "data-dir"],
        ["OK", "store"],
        ["OK", "migrations"],
        ["WARN", "model"],
        ["WARN", "prefect"],
    ]
    assert "make prefect-start" in lines[-1] and "sentinel42 model train" in lines[-2]


def test_a_corrupted_store_fails(data_dir):
    path = data_dir / "sentinel42.db"
    with path.open("r+b") as fh:
        fh.seek(path.stat().st_size // 2 // 4096 * 4096)
        fh.write(bytes((i * 151 + 7) % 256 for i in range(4096)))
    result = _doctor(data_dir, "--json")
    assert result.exit_code == 1
    status, message = _checks(result)["store"]
    assert status == "FAIL" and message.startswith(f"store {path} is corrupted")
    assert json.loads(result.stdout)["ok"] is False


def test_doctor_creates_no_store(tmp_path):
    result = _doctor(tmp_path / "nothing-here", "--json")
    assert result.exit_code == 0, result.output
    checks = _checks(result)
    assert checks["data-dir"][0] == "WARN" and checks["store"][0] == "WARN"
    assert "no store at" in checks["store"][1]
    assert not (tmp_path / "nothing-here").exists()


def test_an_older_schema_warns_and_loose_permissions_warn(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    engine = make_engine(f"sqlite:///{folder / 'sentinel42.db'}")
    migrate(engine, "0003")
    engine.dispose()
    (folder / "sentinel42.db").chmod(0o644)
    checks = _checks(_doctor(folder, "--json"))
    assert checks["migrations"][0] == "WARN" and "schema 0003" in checks["migrations"][1]
    assert checks["data-dir"][0] == "WARN"
    assert f"chmod 700 {folder}" in checks["data-dir"][1]
    assert f"chmod 600 {folder / 'sentinel42.db'}*" in checks["data-dir"][1]


def test_a_bad_setting_fails_and_the_rest_still_runs(data_dir):
    result = _doctor(data_dir, "--json", SENTINEL42_INTERVAL="7m")
    assert result.exit_code == 1
    checks = _checks(result)
    assert checks["settings"][0] == "FAIL" and "SENTINEL42_INTERVAL" in checks["settings"][1]
    assert list(checks) == ["settings", "prefect"]


def test_a_running_prefect_server_is_ok(data_dir, httpserver):
    httpserver.expect_request("/api/health").respond_with_json(True)
    result = CliRunner().invoke(
        app,
        ["doctor", "--json"],
        env={"SENTINEL42_DATA_DIR": str(data_dir), "PREFECT_API_URL": httpserver.url_for("/api")},
    )
    assert _checks(result)["prefect"][0] == "OK"


def _save_model(models_dir):
    from sentinel42.model.features import FeatureSpec, Normalizer
    from sentinel42.model.network import DirectionLSTM, NetworkConfig
    from sentinel42.model.registry import ModelRegistry

    spec = FeatureSpec(window=8, horizon=1)
    config = NetworkConfig(input_size=len(spec.names), hidden_size=4)
    n = len(spec.names)
    metadata = {
        "feature_spec": spec.to_dict(),
        "network": config.to_dict(),
        "normalization": Normalizer(np.zeros(n), np.ones(n), 1.0).to_dict(),
    }
    registry = ModelRegistry(models_dir)
    version = "20261127T000000Z-deadbeef"
    registry.save(version, DirectionLSTM(config), metadata)
    registry.promote(version)
    return models_dir / version


def test_the_current_model_must_load_and_match_its_checksum(data_dir):
    folder = _save_model(data_dir / "models")
    assert _checks(_doctor(data_dir, "--json"))["model"][0] == "OK"
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    result = _doctor(data_dir, "--json")
    assert result.exit_code == 1
    status, message = _checks(result)["model"]
    assert status == "FAIL" and "hash" in message
    (data_dir / "models" / "current").write_text("20990101T000000Z-gone\n")
    status, message = _checks(_doctor(data_dir, "--json"))["model"]
    assert status == "FAIL" and "has no checkpoint" in message


def test_a_data_dir_below_the_free_space_floor_fails(data_dir):
    """Issue 18 item 5: a full disk is not OK. The floor is raised above what this disk has
    free, which is what a full disk looks like to the check."""
    from sentinel42.ops.doctor import DATA_DIR_MIN_FREE_BYTES, run_checks

    free = shutil.disk_usage(data_dir).free
    checks = {
        c.name: c for c in run_checks(NO_SERVER, min_free_bytes=free + 2**30, data_dir=data_dir)
    }
    assert checks["data-dir"].status == "FAIL"
    assert "free on its disk, below the" in checks["data-dir"].message
    assert f"df -h {data_dir}" in checks["data-dir"].message
    roomy = {c.name: c for c in run_checks(NO_SERVER, min_free_bytes=0, data_dir=data_dir)}
    assert roomy["data-dir"].status == "OK" and "MiB free" in roomy["data-dir"].message
    assert DATA_DIR_MIN_FREE_BYTES == 256 * 2**20  # the floor docs/operations.md states
