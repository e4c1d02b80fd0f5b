"""npm packages vendored at build time: fetched with the ordinary npm client, checked against pinned integrity."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path


class BuildError(Exception):
    pass


def sri(data: bytes) -> str:
    """npm's integrity string (subresource integrity, sha512) of a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def tarball_name(name: str, version: str) -> str:
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def npm_pack(specs: list[str], dest: Path) -> None:
    """Download ``name@version`` tarballs into ``dest`` with npm (from the registry npm is configured for)."""
    try:
        proc = subprocess.run(["npm", "pack", *specs, "--pack-destination", str(dest), "--silent"],
                              capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise BuildError("npm not found: install Node.js/npm, or pass --tarballs DIR with the .tgz files") from None
    if proc.returncode != 0:
        raise BuildError(f"npm pack {' '.join(specs)} failed ({proc.returncode}):\n{proc.stderr.strip()}")


def verified_tarball(folder: Path, name: str, version: str, integrity: str) -> bytes:
    """The bytes of ``name@version``'s tarball in ``folder``, refused unless they match ``integrity``."""
    path = folder / tarball_name(name, version)
    if not path.is_file():
        raise BuildError(f"{path}: missing")
    data = path.read_bytes()
    if sri(data) != integrity:
        raise BuildError(f"{path}: integrity {sri(data)} differs from the pinned {integrity}")
    return data
