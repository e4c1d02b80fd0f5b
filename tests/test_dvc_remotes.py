"""`dvc push` to your own S3 storage: with the `s3` extra (dvc-s3, installed by `make setup`), DVC takes an s3://
remote and talks to its endpoint. No S3 service is reachable here, so the endpoint is a closed port on 127.0.0.1:
the push must fail to connect there, not for a missing plugin."""

from __future__ import annotations

import pytest

from .project import sh

pytestmark = pytest.mark.slow  # ~30 s: DVC's start-ups and one connection attempt


def test_s3_remote_is_supported(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no credential lookup beyond the local config
    assert "s3 (s3fs" in sh("dvc", "version", cwd=tmp_path).stdout
    sh("git", "init", "-q", cwd=tmp_path)
    sh("dvc", "init", "-q", cwd=tmp_path)
    (tmp_path / "data.txt").write_text("scene\n")
    sh("dvc", "add", "-q", "data.txt", cwd=tmp_path)
    # the README's recipe, with a local endpoint
    sh("dvc", "remote", "add", "--local", "mystore", "s3://geofoundry-test/dvc", cwd=tmp_path)
    sh("dvc", "remote", "default", "--local", "mystore", cwd=tmp_path)
    for key, value in (("endpointurl", "http://127.0.0.1:9"), ("access_key_id", "test"),
                       ("secret_access_key", "test")):
        sh("dvc", "remote", "modify", "--local", "mystore", key, value, cwd=tmp_path)
    proc = sh("dvc", "push", cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode != 0
    assert "missing dependencies" not in proc.stderr and "dvc-s3" not in proc.stderr
    assert 'Could not connect to the endpoint URL: "http://127.0.0.1:9/geofoundry-test/dvc/' in proc.stderr, \
        proc.stderr
