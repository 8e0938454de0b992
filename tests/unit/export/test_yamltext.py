"""The YAML writer of the manifests: what it writes reads back as the values given, comments included."""

from __future__ import annotations

import re

import pytest

from supervisor_pd.export.yamltext import (
    WIDTH,
    Document,
    Entry,
    Flow,
    Item,
    Raw,
    Text,
    m,
    render,
    scalar,
    seq,
)

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -e '.[test]'")

# Strings a YAML reader turns into something else when written bare (YAML 1.1 booleans, nulls,
# numbers, dates, merge keys), or cannot read bare (indicators, comment starts, line breaks,
# characters outside YAML's printable set), next to ones that must stay plain.
TRICKY = [
    "",
    " ",
    "true",
    "True",
    "TRUE",
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "n",
    "null",
    "Null",
    "~",
    "1",
    "01",
    "-1",
    "+1",
    "0x1F",
    "0o17",
    "0b101",
    "1e3",
    "1E-3",
    "1_000",
    ".5",
    "5.",
    "12:30",
    "1:20:30",
    "2001-12-14",
    ".inf",
    "-.inf",
    ".NaN",
    "=",
    "<<",
    "-",
    "---",
    "...",
    "- a",
    "a: b",
    "a:",
    ":a",
    "a #b",
    "#a",
    "*a",
    "&a",
    "!a",
    "|a",
    ">a",
    "%a",
    "@a",
    "`a",
    "'a",
    '"a',
    "a'b",
    'a"b',
    "{a}",
    "[a]",
    "a,b",
    "? a",
    "?a",
    " a",
    "a ",
    "a\nb",
    "a\n",
    "\n",
    "a\tb",
    "a\\b",
    "é",
    "名前",
    "a\u2028b",
    "a\u2029b",
    "a\x85b",
    "\ufeffa",
    "😀",
    "a\x00b",
    "a\x7fb",
    "a\x1bb",
    "\ud7ff",
    "\ue000",
    "256Gi",
    "/metrics",
    "IfNotPresent",
    "metadata.annotations['huawei.com/Ascend910']",
]
PLAIN = ["256Gi", "/metrics", "IfNotPresent", "metadata.annotations['huawei.com/Ascend910']", "a:b", "module-910b-8"]


def load(text: str) -> object:
    (document,) = list(yaml.safe_load_all(text))
    return document


@pytest.mark.parametrize("value", TRICKY, ids=ascii)
def test_a_string_reads_back_as_itself_as_a_value_a_key_and_a_list_item(value: str) -> None:
    text = render([Document(m(("value", value), (value, "key"), ("flow", Flow((value, 1)))))])
    assert load(text) == {"value": value, value: "key", "flow": [value, 1]}


@pytest.mark.parametrize("value", PLAIN)
def test_an_ordinary_string_is_written_bare(value: str) -> None:
    assert scalar(value) == value


def test_numbers_and_booleans_are_written_as_such() -> None:
    assert load(render([Document(m(("a", 80), ("b", True), ("c", False), ("d", "80"), ("e", 0)))])) == {
        "a": 80,
        "b": True,
        "c": False,
        "d": "80",
        "e": 0,
    }


TEXTS = [
    "x\n",
    "x",
    "x\n\n",
    "x\n\n\n",
    '{\n  "a": 1\n}\n',
    '{\n\t"tab": 1\n}\n',
    "a\n\nb\n",
    "a\n  \nb\n",
    " leading\n",
    "\tleading\n",
    "\nfirst empty\n",
    "a\r\nb\r\n",
    "# not a comment\n---\n...\n",
    "trailing  \nspaces\n",
    "名前\n",
    "bell\x07\n",
    "separator\u2028line\n",
    "",
    "\n",
]


@pytest.mark.parametrize("text", TEXTS, ids=ascii)
def test_a_file_reads_back_byte_for_byte(text: str) -> None:
    document = m(("data", m(("config.json", Text(text)), ("after", "x"))))
    assert load(render([Document(document)])) == {"data": {"config.json": text, "after": "x"}}


def test_a_json_file_is_a_literal_block_indented_under_its_key() -> None:
    text = render([Document(m(("data", m(("f.json", Text('{\n  "a": 1\n}\n'))))))])
    assert text == 'data:\n  f.json: |\n    {\n      "a": 1\n    }\n'.replace("data:", "---\ndata:", 1)


def test_comments_are_wrapped_at_the_width_and_never_inside_code() -> None:
    words = " ".join(f"word{i}" for i in range(60))
    note = (f"{words} `kubectl create secret generic x --from-literal=token=y` {words}", Raw("  kept   as written"))
    text = render([Document(m(("spec", m(Entry("key", 1, note)))))], header=("head", Raw("")))
    lines = text.splitlines()
    assert lines[:3] == ["# head", "#", "---"]
    comments = [line for line in lines if line.lstrip().startswith("#")]
    assert all(len(line) <= WIDTH for line in comments if "`" not in line)
    assert any("`kubectl create secret generic x --from-literal=token=y`" in line for line in comments)
    assert "  #   kept   as written" in lines
    assert all(line.startswith("  # ") for line in lines[lines.index("spec:") + 1 : -1])
    assert load(text) == {"spec": {"key": 1}}


def test_a_no_break_space_keeps_two_words_on_one_line() -> None:
    note = ("x " * 44 + "PID\u00a01 and more",)
    lines = render([Document(m(Entry("k", 1, note)))]).splitlines()
    assert any(line.endswith("PID 1 and more") or "PID 1" in line for line in lines)
    assert not any(line.endswith("PID") for line in lines)


def test_sequences_of_mappings_carry_notes_and_nest() -> None:
    body = m(
        (
            "containers",
            seq(
                Item(m(("name", "a"), ("ports", seq(m(("containerPort", 1)))), ("env", seq())), ("first",)),
                m(("name", "b"), ("args", Flow(("sleep", "5"))), ("empty", m())),
            ),
        )
    )
    text = render([Document(body, ("the doc",))])
    assert "  # first\n  - name: a\n" in text
    assert '    args: ["sleep", "5"]' in text
    assert load(text) == {
        "containers": [
            {"name": "a", "ports": [{"containerPort": 1}], "env": []},
            {"name": "b", "args": ["sleep", "5"], "empty": {}},
        ]
    }


def test_documents_follow_the_header_each_after_a_separator() -> None:
    text = render([Document(m(("a", 1)), ("one",)), Document(m(("b", 2)))], header=("top",))
    assert text == "# top\n---\n# one\na: 1\n---\nb: 2\n"
    assert list(yaml.safe_load_all(text)) == [{"a": 1}, {"b": 2}]


def test_the_same_values_give_the_same_bytes() -> None:
    def make() -> str:
        return render([Document(m(("a", Text("x\n")), ("b", seq("c", 1)), ("d", Flow((1, "e")))), ("n",))])

    assert make() == make()
    assert not re.search(r"[ \t]$", make(), re.MULTILINE), "no trailing whitespace"


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        m(("a", 1), ("a", 2))
