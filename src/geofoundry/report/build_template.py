"""Build the offline DVC plots HTML template: vega, vega-lite and vega-embed from npm, inlined into one page.

``dvc plots show/diff`` writes a page whose ``<script src>`` tags load vega from a CDN, so it is blank offline. DVC
drops those tags when the page template has no ``{scripts}`` placeholder; this template has none and carries the
three libraries inline instead, so the page renders from ``file://`` with no network.

    python -m geofoundry.report.build_template              # npm pack the pinned versions, write vega_template.html
    python -m geofoundry.report.build_template --check      # rebuild in memory; fail if the committed file differs
    python -m geofoundry.report.build_template --tarballs D # use vega-5.33.1.tgz ... already in folder D (no npm)

Every tarball is checked against the npm registry's sha512 integrity pinned below before anything is read from it.
The versions match what dvc-render emits: vega-lite v5 specs (``$schema .../vega-lite/v5.json``). They are the
latest releases of the major versions that dvc-render's own page loads from the CDN (vega@5.20.2, vega-lite@5.2.0,
vega-embed@6.18.2), so the specs DVC writes are the ones these builds were made for. All three are BSD-3-Clause,
(c) University of Washington Interactive Data Lab.
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

TEMPLATE = Path(__file__).with_name("vega_template.html")

# name: (exact version, npm tarball integrity (sha512), minified UMD build inside the tarball); order = load order
PACKAGES: dict[str, tuple[str, str, str]] = {
    "vega": ("5.33.1",
             "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
             "package/build/vega.min.js"),
    "vega-lite": ("5.23.0",
                  "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
                  "package/build/vega-lite.min.js"),
    "vega-embed": ("6.29.0",
                   "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
                   "package/build/vega-embed.min.js"),
}

# What the minified builds bundle besides the package itself (from their package.json dependencies).
BUNDLED = {
    "vega": "vega-* modules (BSD-3-Clause), d3-* modules (ISC), topojson-client (ISC)",
    "vega-lite": "vega-event-selector, vega-expression, vega-util (BSD-3-Clause), "
                 "json-stringify-pretty-compact (MIT), tslib (0BSD)",
    "vega-embed": "vega-themes, vega-tooltip, vega-interpreter, vega-schema-url-parser (BSD-3-Clause), "
                  "fast-json-patch (MIT), json-stringify-pretty-compact (MIT), semver (ISC), tslib (0BSD)",
}

# The tarball of vega carries no LICENSE file (its package.json says BSD-3-Clause); vega-lite's text is used for it.
FALLBACK_LICENSE_FROM = "vega-lite"

PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")  # what dvc-render substitutes with str.replace

# Renders each plot as SVG (crisp, inspectable), hides the "Open in Vega Editor" action (it needs the web), says
# so when DVC found no data for a plot (it passes an empty spec), and writes a visible error under a plot whose
# spec fails instead of leaving an empty box.
WRAPPER_JS = """\
(function () {
  var embed = window.vegaEmbed;
  function offlineEmbed(el, spec, opt) {
    var node = typeof el === "string" ? document.querySelector(el) : el;
    if (spec && typeof spec === "object" && Object.keys(spec).length === 0) {
      var p = document.createElement("p");
      p.className = "plot-empty";
      p.textContent = (node ? node.id : String(el)) + ": no data in these revisions (file missing or empty)";
      if (node) node.appendChild(p);
      return Promise.resolve(null);
    }
    opt = Object.assign({renderer: "svg", actions: {export: true, source: true, compiled: true, editor: false}},
                        opt || {});
    return embed(el, spec, opt).catch(function (err) {
      var pre = document.createElement("pre");
      pre.className = "plot-error";
      pre.textContent = "plot failed to render: " + err;
      if (node) node.appendChild(pre);
      console.error(err);
    });
  }
  Object.assign(offlineEmbed, embed);
  window.vegaEmbed = offlineEmbed;
})();"""

STYLE = """\
body { font-family: system-ui, sans-serif; margin: 1em 2em; }
table { border-spacing: 15px; }
.plot-error { color: #b00020; white-space: pre-wrap; }
.plot-empty { color: #666; font-style: italic; }
.vega-embed { margin: 1em 0; }"""


def npm_pack(dest: Path) -> None:
    """Download the pinned tarballs into ``dest`` with the ordinary npm client (the registry npm is configured for)."""
    npm.npm_pack([f"{name}@{version}" for name, (version, _, _) in PACKAGES.items()], dest)


def read_packages(tarballs: Path) -> dict[str, dict]:
    """Verify each pinned tarball and read its minified build and licence text."""
    found: dict[str, dict] = {}
    for name, (version, integrity, member) in PACKAGES.items():
        data = npm.verified_tarball(tarballs, name, version, integrity)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            js = tar.extractfile(member).read().decode("utf-8")
            names = tar.getnames()
            licence = (tar.extractfile("package/LICENSE").read().decode("utf-8")
                       if "package/LICENSE" in names else None)
        found[name] = {"version": version, "integrity": integrity, "member": member, "js": clean_js(name, js),
                       "licence": licence}
    for p in found.values():
        p["licence_note"] = ""
    if found["vega"]["licence"] is None:
        found["vega"]["licence"] = found[FALLBACK_LICENSE_FROM]["licence"]
        found["vega"]["licence_note"] = (f" (its tarball has no LICENSE file; same licence and holder as "
                                         f"{FALLBACK_LICENSE_FROM}, whose text follows)")
    return found


def clean_js(name: str, js: str) -> str:
    """Drop the source-map comment (the map is not shipped) and refuse text that would break an inline script."""
    js = re.sub(r"\n?//# sourceMappingURL=\S+\s*$", "", js.rstrip()) + "\n"
    if re.search(r"</script", js, re.IGNORECASE):
        raise BuildError(f"{name}: the build contains '</script' and cannot be inlined as is")
    for placeholder in PLACEHOLDERS:
        if placeholder in js:
            raise BuildError(f"{name}: the build contains {placeholder}, which dvc-render would substitute")
    return js


def render_template(packages: dict[str, dict]) -> str:
    sha = {name: hashlib.sha256(p["js"].encode()).hexdigest() for name, p in packages.items()}
    listing = "\n".join(
        f"    {name} {p['version']}: npm tarball {name}-{p['version']}.tgz, integrity {p['integrity']},\n"
        f"      file {p['member']} (sha256 {sha[name]}, source-map comment removed)\n"
        f"      bundles: {BUNDLED[name]}"
        for name, p in packages.items())
    licences = "\n".join(
        f"  ---- {name} {p['version']}: BSD-3-Clause{p['licence_note']} ----\n"
        + p["licence"].strip().replace("--", "- -")  # nothing may close the HTML comment
        for name, p in packages.items())
    generator = ", ".join(f"{name} {p['version']}" for name, p in packages.items())
    scripts = "\n".join(
        f'<script data-package="{name}" data-version="{p["version"]}">\n{p["js"]}</script>'
        for name, p in packages.items())
    return f"""<!DOCTYPE html>
<!--
  Offline page template for `dvc plots show` / `dvc plots diff` (their html_template option; see docs/PLOTS.md).
  GENERATED by `make plots-template` (python -m geofoundry.report.build_template): do not edit by hand.
  It has no scripts placeholder on purpose, so DVC leaves out its CDN script tags; the libraries are inline below:
{listing}

  Licences of the inlined code:
{licences}
-->
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="geofoundry offline vega template ({generator})">
{{refresh_tag}}
<title>geofoundry plots</title>
<style>
{STYLE}
</style>
{scripts}
<script data-package="geofoundry">
{WRAPPER_JS}
</script>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def build(tarballs: Path | None = None) -> str:
    if tarballs is not None:
        return render_template(read_packages(tarballs))
    with tempfile.TemporaryDirectory(prefix="vega-npm-") as tmp:
        npm_pack(Path(tmp))
        return render_template(read_packages(Path(tmp)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geofoundry.report.build_template",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=TEMPLATE, help=f"template to write (default {TEMPLATE})")
    parser.add_argument("--tarballs", type=Path, help="folder with the pinned .tgz files (skips npm pack)")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)
    try:
        text = build(args.tarballs)
    except BuildError as e:
        print(f"error (plots-template): {e}", file=sys.stderr)
        return 1
    if args.check:
        if not args.out.is_file() or args.out.read_text(encoding="utf-8") != text:
            print(f"error (plots-template): {args.out} differs from a fresh build; run `make plots-template`",
                  file=sys.stderr)
            return 1
        print(f"{args.out}: up to date ({len(text.encode()):,} bytes)")
        return 0
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out} ({len(text.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
