"""The YAML round trip behind `select --write` and `rps --apply`: only the values changed differ."""

from __future__ import annotations

import pytest

from geofoundry.io.yaml_edit import flow, plain, round_trip

from .project import ROOT

OTHER_LAYOUT = """\
# indented by four, sequences offset, null written as ~
top:
    name: 'quoted'        # a comment
    empty: ~
    items:
      - a: {x: 1}
      - b: [1, 2]
    long: "a line far longer than eighty characters, which a default round trip would fold onto two lines"
"""


@pytest.mark.parametrize("text", [(ROOT / "params.yaml").read_text(), OTHER_LAYOUT], ids=["params.yaml", "other"])
def test_an_untouched_document_comes_back_byte_for_byte(text):
    assert round_trip(text, lambda doc: None) == text


def test_a_changed_value_changes_its_line_only():
    def edit(doc):
        doc["top"]["items"][0]["a"]["x"] = 2
        doc["top"]["empty"] = None
        doc["top"]["new"] = flow({"k": [1, 2]})

    out = round_trip(OTHER_LAYOUT, edit)
    before, after = OTHER_LAYOUT.splitlines(), out.splitlines()
    assert after[:len(before)] == [line.replace("{x: 1}", "{x: 2}") for line in before]
    assert after[len(before):] == ["    new: {k: [1, 2]}"]
    seen = []
    round_trip(out, lambda doc: seen.append(plain(doc)))
    assert seen[0]["top"]["new"] == {"k": [1, 2]} and type(seen[0]["top"]["items"][1]["b"]) is list


def test_an_error_in_the_edit_propagates():
    def edit(doc):
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        round_trip(OTHER_LAYOUT, edit)
