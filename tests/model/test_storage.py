"""A registry shared by several hosts: a shared folder (any spelling of it) or an fsspec URL.

"Another host" is another registry object that reaches the same storage another way: a
symlinked mount point, a ``file://`` URL, or its own local mirror of a ``memory://`` URL.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from sentinel42.errors import ModelError
from sentinel42.model.features import FeatureSpec, Normalizer
from sentinel42.model.network import DirectionLSTM, NetworkConfig
from sentinel42.model.registry import ModelRegistry, is_remote, local_path
from sentinel42.model.storage import MirroredModelRegistry, open_registry

NOW = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)


def _checkpoint(seed: int) -> tuple[DirectionLSTM, dict]:
    spec = FeatureSpec(window=8, horizon=1)
    n = len(spec.names)
    config = NetworkConfig(input_size=n, hidden_size=8)
    torch.manual_seed(seed)
    network = DirectionLSTM(config)
    meta = {
        "created_at": NOW.isoformat(),
        "feature_spec": spec.to_dict(),
        "network": config.to_dict(),
        "normalization": Normalizer(np.zeros(n), np.ones(n), 1.0).to_dict(),
    }
    return network, meta


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    ("location", "remote"),
    [
        ("models", False),
        ("/srv/shared/models", False),
        ("file:///srv/shared/models", False),
        ("s3://bucket/models", True),
        ("memory://models", True),
        ("simplecache::s3://bucket/models", True),
    ],
)
def test_locations_are_folders_or_remote_urls(location, remote):
    assert is_remote(location) is remote
    assert is_remote(Path(location.removeprefix("file://"))) is False


def test_a_file_url_names_its_folder_and_another_hosts_url_is_refused(tmp_path):
    folder = tmp_path / "shared models"
    assert local_path(folder.as_uri()) == folder
    assert ModelRegistry(folder.as_uri()).models_dir == folder
    assert type(open_registry(folder)) is ModelRegistry
    assert type(open_registry(folder.as_uri())) is ModelRegistry
    with pytest.raises(ModelError, match="mount"):
        local_path("file://otherhost/srv/models")


def test_only_the_factory_picks_the_mirror_for_a_remote_url(tmp_path):
    """A plain registry given a remote URL refuses it, naming it; open_registry mirrors it."""
    with pytest.raises(ModelError, match="memory://models-x is not a local folder"):
        ModelRegistry("memory://models-x")
    mirrored = open_registry("memory://models-x", cache_dir=tmp_path / "cache")
    assert type(mirrored) is MirroredModelRegistry
    assert mirrored.models_dir == tmp_path / "cache"


def test_another_host_loads_the_promoted_model_through_another_spelling_of_the_mount(tmp_path):
    mount = tmp_path / "nfs" / "export"
    (mount / "models").mkdir(parents=True)
    other_mount = tmp_path / "mnt-shared"
    other_mount.symlink_to(mount)  # the same share, mounted elsewhere on the other host
    trainer = ModelRegistry(mount / "models")
    worker = ModelRegistry((other_mount / "models").as_uri())
    first, meta = _checkpoint(1)
    second, _ = _checkpoint(2)

    trainer.save("v1", first, meta)
    trainer.promote("v1")
    assert worker.current_version() == "v1"
    assert _same_weights(worker.load("v1").network, first)

    trainer.save("v2", second, meta)
    trainer.promote("v2")
    trainer.record_decision({"version": "v2", "promoted": True}, NOW)
    assert worker.current_version() == "v2"
    assert worker.versions() == ["v1", "v2"]
    assert worker.decisions()[-1]["version"] == "v2"
    assert _same_weights(worker.load("v2").network, second)

    weights = other_mount / "models" / "v2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)  # a torn or tampered copy
    with pytest.raises(ModelError, match="do not match their recorded hash"):
        trainer.load("v2")


def test_a_reader_never_sees_a_half_written_pointer_while_another_host_promotes(tmp_path):
    trainer = ModelRegistry(tmp_path / "models")
    worker = ModelRegistry((tmp_path / "models").as_uri())
    network, meta = _checkpoint(1)
    trainer.save("v1", network, meta)
    trainer.save("v2", network, meta)
    trainer.promote("v1")
    stop = threading.Event()

    def promote_back_and_forth() -> None:
        while not stop.is_set():
            for version in ("v1", "v2"):
                trainer.promote(version)

    writer = threading.Thread(target=promote_back_and_forth)
    writer.start()
    try:
        seen = {worker.current_version() for _ in range(2000)}
    finally:
        stop.set()
        writer.join()
    assert seen <= {"v1", "v2"}
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]


@pytest.fixture
def bucket() -> str:
    """A fresh in-memory fsspec "bucket" (stands in for s3://... without a network)."""
    import fsspec

    name = f"memory://sentinel42-test-{uuid.uuid4().hex[:8]}/models"
    yield name
    fs = fsspec.filesystem("memory")
    fs.rm(name.removeprefix("memory://").rsplit("/", 1)[0], recursive=True)


def test_a_registry_at_an_fsspec_url_is_shared_through_each_hosts_mirror(tmp_path, bucket):
    trainer = open_registry(bucket, cache_dir=tmp_path / "trainer-cache")
    worker = MirroredModelRegistry(bucket, cache_dir=tmp_path / "worker-cache")
    assert isinstance(trainer, MirroredModelRegistry)
    assert worker.current_version() is None and worker.versions() == []
    first, meta = _checkpoint(1)
    second, _ = _checkpoint(2)

    trainer.save("v1", first, meta)
    trainer.promote("v1")
    trainer.record_decision({"version": "v1", "promoted": True}, NOW)
    trainer.update_metadata("v1", promotion={"promoted": True, "reason": "beats baselines"})
    assert worker.current_version() == "v1"
    assert worker.load("v1").metadata["promotion"]["reason"] == "beats baselines"
    assert _same_weights(worker.load("v1").network, first)
    assert [d["version"] for d in worker.decisions()] == ["v1"]

    trainer.save("v2", second, meta)
    trainer.promote("v2")
    assert worker.load(worker.current_version()).version == "v2"
    assert trainer.prune(keep=1) == ["v1"]
    assert worker.versions() == ["v2"]
    assert not (tmp_path / "worker-cache" / "v1").exists()
    with pytest.raises(ModelError, match="exists already"):
        worker.save("v2", first, meta)


def test_weights_changed_at_the_remote_are_refused_by_their_checksum(tmp_path, bucket):
    import fsspec

    trainer = open_registry(bucket, cache_dir=tmp_path / "trainer-cache")
    network, meta = _checkpoint(1)
    trainer.save("v1", network, meta)
    trainer.promote("v1")
    remote_weights = f"{bucket}/v1/model.safetensors"
    with fsspec.open(remote_weights, "rb") as fh:
        data = fh.read()
    with fsspec.open(remote_weights, "wb") as fh:
        fh.write(data[:-8] + b"\x00" * 8)

    worker = MirroredModelRegistry(bucket, cache_dir=tmp_path / "worker-cache")
    assert worker.current_version() == "v1"
    with pytest.raises(ModelError, match="do not match their recorded hash"):
        worker.load("v1")


def test_an_unknown_url_scheme_says_what_to_install(tmp_path):
    with pytest.raises(ModelError, match="fsspec backend"):
        open_registry("nosuchfs://bucket/models", cache_dir=tmp_path)
