"""``SHA256SUMS``: the bundle's manifest (``sha256sum`` format), and the rules a bundle file must follow.

Only plain data files are accepted (never a pickle, which runs code when loaded): the manifest is checked for paths
that leave the bundle, and every file on disk must be listed, of an accepted type and match its checksum. The one
exception is ``model.pt2``, the compiled package: a zip of machine code and weights, accepted under that name alone,
with no member that leaves its folder or is a pickle; only the compiled engine loads it (see
:func:`geofoundry.models.engines.bundle_engine`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import GeofoundryError
from ..io.inputs import decode

MANIFEST = "SHA256SUMS"
SUFFIXES = (".onnx", ".json", ".yaml", ".md", ".txt", ".sh")
NAMES = ("Dockerfile",)
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".bin", ".joblib", ".npy", ".npz", ".pt2")
PACKAGE = "model.pt2"  # the compiled package: the one zip a bundle may hold
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_type(name: str, data: bytes | None = None) -> None:
    """Refuse a file that is not one of the accepted plain types, or whose bytes look like a pickle or zip archive
    (``model.pt2``: see :func:`check_package`)."""
    if name == PACKAGE:
        if data is not None:
            check_package(name, data)
        return
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise GeofoundryError(f"bundle file {name}: a pickled/serialized object ({suffix}); bundles never load "
                              "pickles (they can run code); only ONNX, JSON, YAML, Markdown, text and shell files")
    if suffix not in SUFFIXES and PurePosixPath(name).name not in NAMES:
        raise GeofoundryError(f"bundle file {name}: not an accepted file type; accepted: "
                              f"{', '.join(SUFFIXES + NAMES)}")
    if data is not None and (_pickle_header(data) or data[:4] == b"PK\x03\x04"):
        raise GeofoundryError(f"bundle file {name}: its content is a pickle or zip archive, not {suffix or name}")


def _pickle_header(data: bytes) -> bool:
    """Whether ``data`` starts like a pickle of protocol 2 to 5."""
    return data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def check_package(name: str, data: bytes) -> None:
    """A compiled package must be a readable zip whose members stay inside it and hold no pickle."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                member = info.filename
                parts = member.replace("\\", "/").split("/")
                if member.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", member):
                    raise GeofoundryError(f"bundle file {name}: member {member!r} leaves the package")
                with archive.open(info) as f:
                    if PurePosixPath(member).suffix.lower() in (".pkl", ".pickle") or _pickle_header(f.read(2)):
                        raise GeofoundryError(f"bundle file {name}: member {member!r} is a pickle; compiled "
                                              "packages hold machine code and raw weights only")
    except (zipfile.BadZipFile, EOFError) as e:
        raise GeofoundryError(f"bundle file {name}: not a compiled package (zip archive): {e}") from None


def check_path(root: Path, name: str) -> str:
    """A manifest path must be relative, normalised and stay inside ``root`` (no ``..``, no link out)."""
    p = PurePosixPath(name)
    if (not name or p.is_absolute() or "\\" in name or any(part in ("", ".", "..") for part in name.split("/"))
            or re.match(r"^[A-Za-z]:", name)):
        raise GeofoundryError(f"{root / MANIFEST}: path {name!r} escapes the bundle or is not a plain relative path")
    real_root = root.resolve()
    if not (root / name).resolve().is_relative_to(real_root):
        raise GeofoundryError(f"{root / MANIFEST}: path {name!r} resolves outside the bundle")
    return name


def write_manifest(root: Path) -> str:
    """Write ``root/SHA256SUMS`` for every file under ``root`` (sorted); return the manifest's own sha256."""
    names = sorted(str(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    for name in names:
        check_type(name)
    text = "".join(f"{sha256_file(root / n)}  {n}\n" for n in names)
    (root / MANIFEST).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(root: Path) -> tuple[dict[str, str], str]:
    """Parse and check ``root/SHA256SUMS``: {path: sha256} and the manifest's own sha256."""
    path = root / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise GeofoundryError(f"{path}: missing or not a regular file; not a geofoundry bundle")
    text = decode(path.read_bytes(), path, "manifest")
    entries: dict[str, str] = {}
    for i, line in enumerate(text.splitlines(), start=1):
        m = _LINE.match(line)
        if not m:
            raise GeofoundryError(f"{path}:{i}: not a '<sha256>  <path>' line: {line[:80]!r}")
        digest, name = m.groups()
        check_path(root, name)
        check_type(name)
        if name in entries or name == MANIFEST:
            raise GeofoundryError(f"{path}:{i}: {name!r} listed twice or lists the manifest itself")
        entries[name] = digest
    return entries, hashlib.sha256(text.encode()).hexdigest()


def files_on_disk(root: Path) -> list[str]:
    """Every file under ``root`` (hidden ones too), refusing symbolic links and anything but files and folders."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                raise GeofoundryError(f"{root}: {rel} is a symbolic link; bundles hold plain files only")
            if name in filenames:
                if not p.is_file():
                    raise GeofoundryError(f"{root}: {rel} is not a regular file")
                found.append(rel)
    return sorted(found)
