"""Vendor the dashboard's front-end libraries from npm into ``static/vendor/``: Leaflet (the map) and Leaflet.draw
(the geofence tools), their minified builds, stylesheets and images, with a LICENSES.txt.

    python -m geofoundry.dashboard.build_assets              # npm pack the pinned versions, write static/vendor/
    python -m geofoundry.dashboard.build_assets --check      # rebuild in memory; fail if static/vendor/ differs
    python -m geofoundry.dashboard.build_assets --tarballs D # use leaflet-1.9.4.tgz ... already in folder D (no npm)

Every tarball is checked against the npm registry's sha512 integrity pinned below before anything is read from it.
Leaflet draws with SVG/canvas (no WebGL), so the page works in any browser, GPU or not.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import sys
import tarfile
import tempfile
from pathlib import Path

from ..io import npm
from ..io.npm import BuildError

VENDOR = Path(__file__).with_name("static") / "vendor"

# name: (exact version, npm tarball integrity (sha512), licence, files to copy (tarball member → vendor path))
PACKAGES: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "leaflet": ("1.9.4",
                "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==",
                "BSD-2-Clause",
                {"package/dist/leaflet.js": "leaflet/leaflet.js", "package/dist/leaflet.css": "leaflet/leaflet.css",
                 **{f"package/dist/images/{n}": f"leaflet/images/{n}"
                    for n in ("layers.png", "layers-2x.png", "marker-icon.png", "marker-icon-2x.png",
                              "marker-shadow.png")}}),
    "leaflet-draw": ("1.0.4",
                     "sha512-rsQ6saQO5ST5Aj6XRFylr5zvarWgzWnrg46zQ1MEOEIHsppdC/8hnN8qMoFvACsPvTioAuysya/TVtog15tyAQ==",
                     "MIT",
                     {"package/dist/leaflet.draw.js": "leaflet-draw/leaflet.draw.js",
                      "package/dist/leaflet.draw.css": "leaflet-draw/leaflet.draw.css",
                      **{f"package/dist/images/{n}": f"leaflet-draw/images/{n}"
                         for n in ("spritesheet.png", "spritesheet-2x.png", "spritesheet.svg")}}),
}

# leaflet-draw's tarball carries no licence file; its package.json says MIT and its build header names the holders.
MIT_LEAFLET_DRAW = """Copyright 2012-2017 Jacob Toye, Jon West, Smartrak, Leaflet

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."""


def _clean(member: str, data: bytes) -> bytes:
    """Drop source-map comments (the maps are not shipped, and a browser would ask for them)."""
    if member.endswith((".js", ".css")):
        text = data.decode("utf-8")
        text = re.sub(r"\n?(//# sourceMappingURL=\S+|/\*# sourceMappingURL=\S+ \*/)\s*$", "", text.rstrip()) + "\n"
        return text.encode("utf-8")
    return data


def read_assets(tarballs: Path) -> dict[str, bytes]:
    """Vendor path → bytes of every file, LICENSES.txt included, from verified tarballs."""
    files: dict[str, bytes] = {}
    notes = ["Third-party code vendored by `python -m geofoundry.dashboard.build_assets` (do not edit by hand).", ""]
    for name, (version, integrity, licence, members) in PACKAGES.items():
        data = npm.verified_tarball(tarballs, name, version, integrity)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member, dest in members.items():
                files[dest] = _clean(member, tar.extractfile(member).read())
            text = (tar.extractfile("package/LICENSE").read().decode("utf-8")
                    if "package/LICENSE" in tar.getnames() else MIT_LEAFLET_DRAW)
        listing = "\n".join(f"  {dest} (sha256 {hashlib.sha256(files[dest]).hexdigest()})" for dest in members.values())
        notes += [f"==== {name} {version} ({licence}): npm tarball {npm.tarball_name(name, version)}, integrity "
                  f"{integrity}", listing, "", text.strip(), ""]
    files["LICENSES.txt"] = "\n".join(notes).encode("utf-8")
    return files


def build(tarballs: Path | None = None) -> dict[str, bytes]:
    if tarballs is not None:
        return read_assets(tarballs)
    with tempfile.TemporaryDirectory(prefix="dashboard-npm-") as tmp:
        npm.npm_pack([f"{n}@{v[0]}" for n, v in PACKAGES.items()], Path(tmp))
        return read_assets(Path(tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geofoundry.dashboard.build_assets",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=VENDOR, help=f"folder to write (default {VENDOR})")
    parser.add_argument("--tarballs", type=Path, help="folder with the pinned .tgz files (skips npm pack)")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)
    try:
        files = build(args.tarballs)
    except BuildError as e:
        print(f"error (dashboard-assets): {e}", file=sys.stderr)
        return 1
    present = {p.relative_to(args.out).as_posix() for p in args.out.rglob("*") if p.is_file()} \
        if args.out.is_dir() else set()
    if args.check:
        stale = sorted(p for p, data in files.items() if not (args.out / p).is_file()
                       or (args.out / p).read_bytes() != data) + sorted(present - set(files))
        if stale:
            print(f"error (dashboard-assets): {args.out} differs from a fresh build ({', '.join(stale)}); run "
                  "`make dashboard-assets`", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date ({len(files)} files)")
        return 0
    for rel in present - set(files):
        (args.out / rel).unlink()
    for rel, data in files.items():
        (args.out / rel).parent.mkdir(parents=True, exist_ok=True)
        (args.out / rel).write_bytes(data)
    print(f"wrote {len(files)} files to {args.out} ({sum(map(len, files.values())):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
