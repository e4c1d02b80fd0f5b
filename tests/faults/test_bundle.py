"""Faults in a delivered bundle, through ``geofoundry predict --bundle`` as a site runs it: one ``error (predict): …``
message that names the bundle file, exit status 1, nothing written to ``--out`` and nothing run from the bundle.
Each case breaks one thing of the real bundle the export stage wrote; some keep SHA256SUMS consistent (a bundle
corrupted before its manifest was written), so that the check behind the checksums is reached."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import pytest

from .conftest import RGB_SCENE, assert_error, replace_bytes, rewrite_manifest, run_cli, snapshot

MANIFEST = "bundle/SHA256SUMS"


def _append_line(line: str | bytes):
    def tamper(b: Path) -> None:
        replace_bytes(b / "SHA256SUMS", (b / "SHA256SUMS").read_bytes() + (line if isinstance(line, bytes)
                                                                           else line.encode()))
    return tamper


def _content(name: str, data: bytes | str, consistent: bool = True):
    """Replace a file's bytes; with ``consistent``, rewrite SHA256SUMS to match (a bundle broken before sealing)."""
    def tamper(b: Path) -> None:
        replace_bytes(b / name, data.encode() if isinstance(data, str) else data)
        if consistent:
            rewrite_manifest(b)
    return tamper


def _json(name: str, change):
    """Edit a JSON file of the bundle (consistent manifest)."""
    def tamper(b: Path) -> None:
        data = json.loads((b / name).read_text())
        change(data)
        _content(name, json.dumps(data))(b)
    return tamper


def _symlink(b: Path) -> None:
    (b / "stats.json").unlink()
    (b / "stats.json").symlink_to(b.parent / "elsewhere.json")


def _four_band_model() -> bytes:
    """A valid ONNX model of another band count (4) than the bundle's stats.json (3)."""

    from onnx import TensorProto, helper

    raw = helper.make_tensor_value_info("raw", TensorProto.FLOAT, ["n", 4, "h", "w"])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 4, "h", "w"])
    graph = helper.make_graph([helper.make_node("Softmax", ["raw"], ["probabilities"], axis=1)], "g", [raw], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _checksum_message(b: Path, name: str) -> str:
    listed = next(ln.split()[0] for ln in (b / "SHA256SUMS").read_text().splitlines() if ln.endswith(f"  {name}"))
    got = hashlib.sha256((b / name).read_bytes()).hexdigest()
    return (f"bundle/{name}: checksum mismatch (sha256 {got}, SHA256SUMS says {listed}); the file was modified or "
            "corrupted")


# (name, tamper(bundle folder), expected message: a string, a pattern, or a function of the bundle folder)
CASES = [
    ("no manifest", lambda b: (b / "SHA256SUMS").unlink(),
     f"{MANIFEST}: missing or not a regular file; not a geofoundry bundle"),
    ("manifest not UTF-8", _append_line(f"{'0' * 64}  caf\xe9.json\n".encode("latin-1")),
     None),  # the line number depends on the manifest's length: below
    ("malformed manifest line", _append_line("deadbeef  card.json\n"), None),
    ("changed byte", lambda b: replace_bytes(b / "model.onnx", (b / "model.onnx").read_bytes()[:-1] + b"\0"),
     lambda b: _checksum_message(b, "model.onnx")),
    ("path escape", _append_line(f"{'0' * 64}  ../outside.json\n"),
     f"{MANIFEST}: path '../outside.json' escapes the bundle or is not a plain relative path"),
    ("absolute path", _append_line(f"{'0' * 64}  /etc/passwd\n"),
     f"{MANIFEST}: path '/etc/passwd' escapes the bundle or is not a plain relative path"),
    ("symbolic link", _symlink, "bundle: stats.json is a symbolic link; bundles hold plain files only"),
    ("unexpected file", lambda b: (b / "notes.txt").write_text("hi"),
     "bundle: unexpected file(s) not in SHA256SUMS: notes.txt"),
    ("listed file missing", lambda b: (b / "card.json").unlink(), "bundle/card.json: listed in SHA256SUMS but missing"),
    ("pickle file added", lambda b: (b / "weights.pkl").write_bytes(pickle.dumps([1])),
     "bundle file weights.pkl: a pickled/serialized object (.pkl); bundles never load pickles (they can run code); "
     "only ONNX, JSON, YAML, Markdown, text and shell files"),
    ("pickle posing as JSON", _content("card.json", pickle.dumps({"x": 1})),
     "bundle file card.json: its content is a pickle or zip archive, not .json"),
    ("zip posing as ONNX", _content("model.onnx", b"PK\x03\x04" + b"\0" * 64),
     "bundle file model.onnx: its content is a pickle or zip archive, not .onnx"),
    ("garbage ONNX", _content("model.onnx", b"\x08\x07garbage, not a protobuf" * 40),
     re.compile(r"bundle/model\.onnx: onnxruntime cannot load this model \(\w+: .+\)")),
    ("ONNX of other bands", _content("model.onnx", _four_band_model()),
     "bundle/model.onnx takes 4 bands but stats.json names 3"),
    ("stats.json wrong types", _json("stats.json", lambda d: d.update(bands="rgb", gsd_m="fine")),
     "bundle/stats.json: invalid input spec\n  bands: Input should be a valid list\n"
     "  gsd_m: Input should be a valid number, unable to parse string as a number"),
    ("stats.json inconsistent", _json("stats.json", lambda d: d.update(low=d["low"][:2])),
     "bundle/stats.json: invalid input spec\n  (top level): Value error, low and high need one value per band "
     "['red', 'green', 'blue']"),
    ("stats.json unknown key", _json("stats.json", lambda d: d.update(mean=[0, 0, 0])),
     "bundle/stats.json: invalid input spec\n  mean: Unexpected keyword argument"),
    ("stats.json not JSON", _content("stats.json", '{"bands": ["red", "green", "blue"],\n'),
     "bundle/stats.json:2: not valid JSON (Expecting property name enclosed in double quotes)"),
    ("stats.json not UTF-8", _content("stats.json", b'{"bands": ["r\xe9d"]}'),
     "bundle/stats.json:1: the stats.json file is not UTF-8 text (byte 0xe9); save it as UTF-8"),
    ("classes.json disagrees", _json("classes.json", lambda d: d.update(names=["background", "road"])),
     "bundle/classes.json (beside stats.json classes ['background', 'building']): output classes "
     "['background', 'road'], expected ['background', 'building'] or ['background', 'building', 'border'] or "
     "['background', 'building', 'border', 'contact']: the chip classes, then the auxiliary classes of the training "
     "target"),
    ("unknown postprocess operation", _content("postprocess.yaml", "steps:\n- treshold: {value: 0.5}\n"),
     "bundle/postprocess.yaml: invalid parameters\n  steps: Value error, step 0: unknown operation 'treshold'; did "
     "you mean 'threshold'? (`geofoundry postprocess --list` lists them)"),
    ("object-building YAML tag", _content("postprocess.yaml", "steps: !!python/object/apply:os.system ['touch PWNED']\n"),
     "bundle/postprocess.yaml:1: not valid YAML (could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object/apply:os.system'; only plain data (mappings, lists, strings, numbers, "
     "booleans, null) is read)"),
    ("absurd tile", _content("predict.yaml", "tile: 1000000\noverlap: 32\nbatch_size: 4\n"),
     "bundle/predict.yaml: invalid parameters\n  tile: Input should be less than or equal to 8192"),
    ("duplicate key", _content("predict.yaml", "tile: 256\noverlap: 32\nbatch_size: 4\ntile: 4096\n"),
     "bundle/predict.yaml: duplicate key tile at lines 1 and 4; YAML would keep only the last: remove one"),
]


@pytest.mark.parametrize("name, tamper, message", CASES, ids=[c[0] for c in CASES])
def test_broken_bundle_is_refused(bundle_copy, tmp_path, name, tamper, message):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "earlier.gpkg").write_text("an earlier result")
    tamper(bundle_copy)
    last = (bundle_copy / "SHA256SUMS").read_bytes().count(b"\n") if (bundle_copy / "SHA256SUMS").exists() else 0
    if name == "manifest not UTF-8":
        message = f"{MANIFEST}:{last}: the manifest file is not UTF-8 text (byte 0xe9); save it as UTF-8"
    elif name == "malformed manifest line":
        message = f"{MANIFEST}:{last}: not a '<sha256>  <path>' line: 'deadbeef  card.json'"
    elif callable(message):
        message = message(bundle_copy)
    before = snapshot(tmp_path)
    proc = run_cli("predict", "--bundle", "bundle", str(RGB_SCENE), "--out", "out", cwd=tmp_path)
    assert_error(proc, "predict", message)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "PWNED").exists()


def test_bundle_folder_missing_or_a_file(tmp_path):
    (tmp_path / "file").write_text("not a bundle")
    for path in ("missing", "file"):
        assert_error(run_cli("predict", "--bundle", path, str(RGB_SCENE), cwd=tmp_path), "predict",
                     f"{path}: not a bundle folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_wrong_expected_digest(bundle_copy, tmp_path):
    """``--sha256`` from the registry pins the bundle: another (even a valid one) is refused."""
    own = hashlib.sha256((bundle_copy / "SHA256SUMS").read_bytes()).hexdigest()
    proc = run_cli("predict", "--bundle", "bundle", "--sha256", "0" * 64, str(RGB_SCENE), "--out", "out",
                   cwd=tmp_path)
    assert_error(proc, "predict", f"{MANIFEST}: sha256 {own} is not the expected {'0' * 64}; wrong or altered bundle")
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_a_broken_bundle(bundle_copy, small_raw, tmp_path):
    """The acceptance run opens the bundle the same way."""
    (bundle_copy / "card.json").unlink()
    proc = run_cli("evaluate", "--bundle", "bundle", "--data", str(small_raw), "--out", "acc", cwd=tmp_path)
    assert_error(proc, "evaluate", "bundle/card.json: listed in SHA256SUMS but missing")
    assert not (tmp_path / "acc").exists()
