"""Faults in params.yaml, through a real stage script: one ``error (<stage>): params.yaml…`` message that names the
key or line, exit status 1, nothing written. Property-based: whatever the file holds, loading it gives parameters
or that error, never another exception."""

from __future__ import annotations

import math
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofoundry.config import Params
from geofoundry.errors import GeofoundryError
from geofoundry.pipeline.params import load_params

from .conftest import PARAMS, assert_error, edit_params, run_stage, snapshot

LINES = len(PARAMS.read_text().splitlines())
PREDICT_LINE = next(i for i, ln in enumerate(PARAMS.read_text().splitlines(), 1) if ln.startswith("predict:"))
BOMB = "".join(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]\n" if i else "b0: &b0 [x, x, x, x, x, x, x, x, x, x]\n"
               for i in range(6))

def _set(section: str, key: str, value, **more):
    """A case that sets ``section.key`` (and ``more`` keys of the same section) in the project's params."""
    return lambda p: p[section].update({key: value, **more})


# (name, source, stage, expected message); source: text appended to the project's params.yaml, the whole file as
# bytes, or a change of the parsed project params.
CASES = [
    ("duplicate section", "predict: {tile: 256}\n", "predict",
     f"params.yaml: duplicate key predict at lines {PREDICT_LINE} and {LINES + 1}; YAML would keep only the last: "
     "remove one"),
    ("duplicate nested key", "extra:\n  a: 1\n  b: 2\n  a: 3\n", "select",
     f"params.yaml: duplicate key extra.a at lines {LINES + 2} and {LINES + 4}; YAML would keep only the last: "
     "remove one"),
    ("not UTF-8", PARAMS.read_bytes() + "# r\xe9sum\xe9\n".encode("latin-1"), "train",
     f"params.yaml:{LINES + 1}: the parameters file is not UTF-8 text (byte 0xe9); save it as UTF-8"),
    ("syntax error", "train: {epochs: 3\n", "train",
     f"params.yaml:{LINES + 2}: not valid YAML (expected ',' or '}}', but got '<stream end>')"),
    ("tab indentation", "evaluate:\n\tiou_threshold: 0.6\n", "evaluate",
     f"params.yaml:{LINES + 2}: not valid YAML (found character '\\t' that cannot start any token)"),
    ("object-building tag", "pwn: !!python/object/apply:os.system ['touch PWNED']\n", "select",
     f"params.yaml:{LINES + 1}: not valid YAML (could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object/apply:os.system'; only plain data (mappings, lists, strings, numbers, "
     "booleans, null) is read)"),
    ("several documents", "---\narch: unet\n", "train",
     f"params.yaml:{LINES + 1}: not valid YAML (but found another document)"),
    ("alias bomb", BOMB, "select", "params.yaml: b4 expands to more than 100000 values through aliases; refused"),
    ("recursive alias", "loop: &loop [*loop]\n", "select",
     f"params.yaml:{LINES + 1}: loop[0] refers to itself through an alias"),
    ("deep nesting", "deep: " + "[" * 5000 + "]" * 5000 + "\n", "select",
     "params.yaml: nested too deeply to be plain data"),
    ("a list, not a mapping", b"- arch: unet\n", "train",
     "params.yaml: invalid parameters\n  (top level): Input should be a valid dictionary or instance of Params"),
    ("empty file", b"", "predict", "params.yaml: empty; it needs the sections of every stage (see the project's params.yaml)"),
    ("typo", _set("predict", "tiles", 256), "predict",
     "params.yaml: invalid parameters\n  predict.tiles: unknown key (typo?)"),
    ("wrong type", _set("train", "lr", "fast"), "train",
     "params.yaml: invalid parameters\n  train.lr: Input should be a valid number, unable to parse string as a number"),
    ("absurd tile", _set("predict", "tile", 512000), "predict",
     "params.yaml: invalid parameters\n  predict.tile: Input should be less than or equal to 8192"),
    ("absurd chip size", _set("preprocess", "chip", {"size": 25600, "stride": 192}), "preprocess",
     "params.yaml: invalid parameters\n  preprocess.chip.size: Input should be less than or equal to 8192"),
    ("absurd batch size", _set("train", "batch_size", 80000), "train",
     "params.yaml: invalid parameters\n  train.batch_size: Input should be less than or equal to 1024"),
    ("too many pixels per predict batch", _set("predict", "tile", 8192, batch_size=1024, overlap=0), "predict",
     "params.yaml: invalid parameters\n  predict: Value error, tile × batch_size: 8192² px × 1024 = "
     "68,719,476,736 pixels per batch, more than 268,435,456; lower the batch size or the side"),
    ("too many pixels per train batch", lambda p: (p["preprocess"]["chip"].update(size=4096, stride=4096),
                                                   p["train"].update(batch_size=1024)), "train",
     "params.yaml: invalid parameters\n  (top level): Value error, preprocess.chip.size × train.batch_size: 4096² "
     "px × 1024 = 17,179,869,184 pixels per batch, more than 268,435,456; lower the batch size or the side"),
    ("infinite learning rate", _set("train", "lr", math.inf), "train",
     "params.yaml: invalid parameters\n  train.lr: Input should be a finite number"),
    ("not-a-number threshold", _set("evaluate", "iou_threshold", math.nan), "evaluate",
     "params.yaml: invalid parameters\n  evaluate.iou_threshold: Input should be a finite number"),
    ("zero epochs", _set("train", "epochs", 0), "train",
     "params.yaml: invalid parameters\n  train.epochs: Input should be greater than or equal to 1"),
    ("frozen random encoder", _set("train", "freeze_encoder_epochs", 2), "train",
     "params.yaml: invalid parameters\n  train: Value error, freeze_encoder_epochs needs init_from: a frozen random "
     "encoder learns nothing"),
    ("frozen longer than the run", _set("train", "freeze_encoder_epochs", 20, init_from="init/a.pt"), "train",
     "params.yaml: invalid parameters\n  train: Value error, freeze_encoder_epochs 20 > epochs 10"),
    ("unknown init part", _set("train", "init_parts", "decoder"), "train",
     "params.yaml: invalid parameters\n  train.init_parts: Input should be 'all' or 'encoder'"),
    ("empty init path", _set("train", "init_from", " "), "train",
     "params.yaml: invalid parameters\n  train.init_from: Value error, an empty path; null starts from random "
     "weights"),
    ("bad date", _set("select", "dates", ["2024-13-01", "2025-01-01"]), "select",
     "params.yaml: invalid parameters\n  select.dates.0: Input should be a valid date or datetime, month value is "
     "outside expected range of 1-12"),
    ("unknown postprocess operation", lambda p: p["postprocess"]["steps"].insert(0, {"treshold": {"value": 0.5}}),
     "select", "params.yaml: invalid parameters\n  postprocess.steps: Value error, step 0: unknown operation "
     "'treshold'; did you mean 'threshold'? (`geofoundry postprocess --list` lists them)"),
    ("unknown arch", lambda p: p.update(arch="unett"), "select",
     re.compile(r"params\.yaml: invalid parameters\n  arch: Value error, unknown arch 'unett'\. Did you mean unet\? "
                r"Known presets: unet, .*\(geofoundry models\)")),
]


def write_case(repo, source) -> None:
    if callable(source):
        params = yaml.safe_load(PARAMS.read_text())
        source(params)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    elif isinstance(source, bytes):
        (repo / "params.yaml").write_bytes(source)
    else:
        edit_params(repo, source)


@pytest.mark.parametrize("name, source, stage, message", CASES, ids=[c[0] for c in CASES])
def test_bad_params_stop_the_stage(workspace, name, source, stage, message):
    write_case(workspace, source)
    (workspace / "data/selection/classes.json").write_text('{"names": ["background", "building"]}')
    before = snapshot(workspace)
    assert_error(run_stage(workspace, stage), stage, message)
    assert snapshot(workspace) == before
    assert not (workspace / "PWNED").exists()


def test_params_file_missing(workspace):
    (workspace / "params.yaml").unlink()
    before = snapshot(workspace)
    assert_error(run_stage(workspace, "select"), "select",
                 "params.yaml: parameters file not found (run from the project root)")
    assert snapshot(workspace) == before


def test_params_file_is_a_folder(workspace):
    (workspace / "params.yaml").unlink()
    (workspace / "params.yaml").mkdir()
    before = snapshot(workspace)
    assert_error(run_stage(workspace, "train"), "train", "params.yaml: a folder, not a parameters file")
    assert snapshot(workspace) == before


def test_byte_order_mark_is_accepted(tmp_path):
    """Repair: a UTF-8 file that starts with a byte-order mark (Windows editors write one) loads as usual."""
    path = tmp_path / "params.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + PARAMS.read_bytes())
    assert load_params(path) == load_params(PARAMS)


# --- property-based: loading never fails in another way -----------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=12))
VALUES_ST = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                         max_leaves=12)
PROJECT = yaml.safe_load(PARAMS.read_text())
KEY_PATHS = [(s,) for s in PROJECT] + [(s, k) for s, v in PROJECT.items() if isinstance(v, dict) for k in v]


def _outcome(path) -> Params | str:
    try:
        return load_params(path)
    except GeofoundryError as e:
        assert str(e).startswith(str(path)), str(e)
        return str(e)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(KEY_PATHS), value=VALUES_ST)
def test_any_value_at_any_key_loads_or_names_the_file(tmp_path, key, value):
    params = yaml.safe_load(PARAMS.read_text())
    target = params
    for k in key[:-1]:
        target = target[k]
    target[key[-1]] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    _outcome(path)


RPS_KEYS = ["postprocess.threshold.value", "postprocess.open.radius_px", "postprocess.steps.5.min_area.area_m2",
            "predict.tta", "predict.overlap", "predict.ensemble.0.weight", "postprocess.steps.9.open.radius_px"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(settings_=st.dictionaries(st.sampled_from(RPS_KEYS), VALUES_ST | st.fixed_dictionaries(
    {"low": SCALARS, "high": SCALARS}, optional={"step": SCALARS, "log": SCALARS}), max_size=3),
    search=st.sampled_from(["grid", "random", "tpe"]))
def test_any_rps_settings_load_or_name_the_file(tmp_path, settings_, search):
    """What `rps.settings` may hold: lists and ranges of any values for real keys, under any search."""
    params = yaml.safe_load(PARAMS.read_text())
    params["rps"].update(settings=settings_, search=search)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    _outcome(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_load_or_name_the_file(tmp_path, data):
    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    _outcome(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(PARAMS.read_bytes())), noise=st.binary(max_size=20))
def test_damaged_project_params_load_or_name_the_file(tmp_path, cut, noise):
    """The real file, cut anywhere and followed by noise (a crash while saving, a bad merge)."""
    path = tmp_path / "params.yaml"
    raw = PARAMS.read_bytes()
    path.write_bytes(raw[:cut] + noise + raw[cut:])
    _outcome(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(repeat=st.sampled_from(sorted(PROJECT)))
def test_a_repeated_section_is_always_refused(tmp_path, repeat):
    """Whatever section comes twice, the second is never taken silently (what DVC refuses too)."""
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS.read_text() + yaml.safe_dump({repeat: PROJECT[repeat]}, sort_keys=False))
    with pytest.raises(GeofoundryError, match=f"duplicate key {repeat} at lines"):
        load_params(path)
