"""The systemd units: rendered by the installer (shell only) and checked by systemd-analyze."""

from __future__ import annotations

import getpass
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "scripts" / "install_systemd.sh"
UNITS = (
    "sentinel42.target",
    "sentinel42-server.service",
    "sentinel42-worker.service",
    "sentinel42-metrics.service",
)
SERVICES = UNITS[1:]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze not installed (Debian: apt-get install systemd); .ci/run installs it",
)
needs_venv = pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "prefect").exists(),
    reason="the units' ExecStart binaries live in the checkout's .venv: run `make install`",
)


def _service_user() -> str:
    """A real user that is not root (the installer refuses to run the services as root)."""
    me = getpass.getuser()
    if me != "root":
        return me
    for name in ("daemon", "bin"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("no non-root user to render the units for")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL42_")}
    return {**env, **extra}


def _render(out: Path, *args: str, root: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(root / "scripts" / "install_systemd.sh"), "--render", str(out), *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _verify(folder: Path, *, user: bool = False) -> subprocess.CompletedProcess:
    assert ANALYZE is not None
    args = [ANALYZE, *(["--user"] if user else []), "verify", *(str(folder / u) for u in UNITS)]
    env = _env()
    if user:  # the user manager wants a runtime directory even offline
        runtime = folder / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def _fake_checkout(tmp_path: Path) -> Path:
    """A copy of the installer and templates, whose .venv/bin/python would leave a mark if run."""
    fake = tmp_path / "checkout"
    (fake / "scripts").mkdir(parents=True)
    shutil.copy2(INSTALLER, fake / "scripts" / "install_systemd.sh")
    shutil.copytree(ROOT / "deploy", fake / "deploy")
    venv = fake / ".venv" / "bin"
    venv.mkdir(parents=True)
    mark = tmp_path / "python-ran"
    (venv / "python").write_text(f"#!/bin/sh\ntouch {mark}\n", encoding="utf-8")
    (venv / "python").chmod(0o755)
    return fake


@needs_analyze
@needs_venv
def test_make_systemd_units_renders_units_that_systemd_analyze_verifies(tmp_path) -> None:
    user, data, out = _service_user(), tmp_path / "data", tmp_path / "units"
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "systemd-units",
            f"UNITDIR={out}",
            f"SYSTEMD_RUN_AS={user}",
        ],
        cwd=ROOT,
        env=_env(SENTINEL42_DATA_DIR=str(data), SENTINEL42_PREFECT_PORT="4311"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(UNITS)
    for name in SERVICES:
        text = (out / name).read_text(encoding="utf-8")
        assert not re.search(r"@[A-Z_]+@", text)  # every placeholder filled in
        assert f"User={user}\n" in text
        assert f"ReadWritePaths={data}" in text
        for line in (
            "Restart=always",
            "StartLimitBurst=5",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "UMask=0077",
            "After=network-online.target",
            "PartOf=sentinel42.target",
            "WantedBy=sentinel42.target",
        ):
            assert line in text.splitlines(), f"{name}: {line}"
    server = (out / "sentinel42-server.service").read_text(encoding="utf-8")
    assert "--port 4311" in server
    assert "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD=2592000" in server  # 30 days
    assert "WantedBy=multi-user.target" in (out / "sentinel42.target").read_text(encoding="utf-8")

    verified = _verify(out)
    assert verified.returncode == 0, verified.stderr
    assert str(out) not in verified.stdout + verified.stderr  # no warning about our units


@needs_analyze
@needs_venv
def test_user_units_leave_out_user_and_sandbox_and_verify(tmp_path) -> None:
    out = tmp_path / "units"
    result = _render(out, "--user", SENTINEL42_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    for name in SERVICES:
        text = (out / name).read_text(encoding="utf-8")
        assert "User=" not in text
        assert "ProtectSystem" not in text
        assert "network-online" not in text
        assert "NoNewPrivileges=yes" in text
    assert "WantedBy=default.target" in (out / "sentinel42.target").read_text(encoding="utf-8")

    verified = _verify(out, user=True)
    if "Failed to initialize manager" in verified.stderr:
        pytest.skip(f"no systemd user manager here: {verified.stderr.strip()}")
    assert verified.returncode == 0, verified.stderr
    assert str(out) not in verified.stdout + verified.stderr


def test_settings_come_from_the_environment_before_the_checkouts_env_file(tmp_path) -> None:
    fake = _fake_checkout(tmp_path)
    (fake / ".env").write_text(
        'SENTINEL42_DATA_DIR="/srv/sentinel42"\nSENTINEL42_PREFECT_RUN_RETENTION_DAYS=7\n',
        encoding="utf-8",
    )
    user = _service_user()
    from_file = _render(tmp_path / "a", user, root=fake)
    assert from_file.returncode == 0, from_file.stderr
    server = (tmp_path / "a" / "sentinel42-server.service").read_text(encoding="utf-8")
    assert "ReadWritePaths=/srv/sentinel42\n" in server
    assert "RETENTION_PERIOD=604800\n" in server  # 7 days

    from_env = _render(tmp_path / "b", user, root=fake, SENTINEL42_DATA_DIR="/var/lib/s42")
    assert from_env.returncode == 0, from_env.stderr
    server = (tmp_path / "b" / "sentinel42-server.service").read_text(encoding="utf-8")
    assert "ReadWritePaths=/var/lib/s42\n" in server
    assert not (tmp_path / "python-ran").exists()  # rendering never runs the checkout's Python


@pytest.mark.parametrize(
    ("line", "replacement"),
    [
        ("Type=simple", "Type=simple\nExecStartPre=+/bin/true"),
        ("Type=simple", "Type=simple\nAmbientCapabilities=CAP_NET_ADMIN"),
        ("User=@USER@", "User=root"),
    ],
)
def test_installer_refuses_templates_that_grant_more_than_the_service_user(
    tmp_path, line, replacement
) -> None:
    fake = _fake_checkout(tmp_path)
    template = fake / "deploy" / "systemd" / "sentinel42-worker.service"
    template.write_text(
        template.read_text(encoding="utf-8").replace(line, replacement, 1), encoding="utf-8"
    )
    result = _render(tmp_path / "out", _service_user(), root=fake)
    assert result.returncode != 0
    assert "sentinel42-worker.service" in result.stderr
    assert not (tmp_path / "out").exists()


def test_installer_refuses_to_run_the_services_as_root(tmp_path) -> None:
    result = _render(tmp_path / "out", "root")
    assert result.returncode == 2
    assert "root" in result.stderr


def test_installer_refuses_a_data_dir_a_unit_file_cannot_hold(tmp_path) -> None:
    result = _render(tmp_path / "out", _service_user(), SENTINEL42_DATA_DIR="/srv/my data%n")
    assert result.returncode == 2
    assert "cannot hold" in result.stderr
