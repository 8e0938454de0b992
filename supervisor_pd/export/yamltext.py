"""YAML text with comments, the same bytes for the same values: a tree of typed nodes in, text out.

The manifests are read by people before they are applied, so they carry comments, which no YAML
library writes; and they are checked into the repository as the exporter's output, so every
choice of layout is fixed here: block style, two-space indentation, sequences indented under
their key, comments wrapped at WIDTH columns, and a scalar plain only where every YAML 1.1 and 1.2
reader (PyYAML, kubectl's go-yaml) reads it back as the same string; otherwise double-quoted.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

WIDTH = 100
INDENT = 2


@dataclass(frozen=True)
class Raw:
    """A comment line kept as written (commands, commented-out YAML); an empty one is a bare `#`."""

    text: str


Note = tuple[str | Raw, ...]  # a str is a paragraph, wrapped to the comment's width


@dataclass(frozen=True)
class Flow:
    """A short list of scalars on one line: `[a, b]`."""

    items: tuple[str | int, ...]


@dataclass(frozen=True)
class Text:
    """A string of several lines (a file): a literal block where it can be one."""

    text: str


@dataclass(frozen=True)
class Entry:
    key: str
    value: Node
    note: Note = ()


@dataclass(frozen=True)
class Map:
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Item:
    value: Node
    note: Note = ()


@dataclass(frozen=True)
class Seq:
    items: tuple[Item, ...]


Node = str | int | bool | Flow | Text | Map | Seq


@dataclass(frozen=True)
class Document:
    body: Map
    note: Note = ()


def m(*entries: Entry | tuple[str, Node] | tuple[str, Node, Note]) -> Map:
    """A mapping from (key, value) or (key, value, note) tuples, in the order given."""
    made = [entry if isinstance(entry, Entry) else Entry(*entry) for entry in entries]
    keys = [entry.key for entry in made]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a key appears twice: {keys}")
    return Map(tuple(made))


def seq(*items: Item | Node) -> Seq:
    return Seq(tuple(item if isinstance(item, Item) else Item(item) for item in items))


def render(documents: Sequence[Document], header: Note = ()) -> str:
    """The stream: the header's comments, then each document after `---`."""
    lines = _comment(header, 0)
    for document in documents:
        lines.append("---")
        lines += _comment(document.note, 0)
        lines += _map(document.body, 0)
    return "\n".join(lines) + "\n"


# --- comments -----------------------------------------------------------------------------------


def _comment(note: Note, indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for part in note:
        if isinstance(part, Raw):
            lines.append(f"{pad}# {part.text}".rstrip())
            continue
        width = max(40, WIDTH - indent - 2)
        for line in textwrap.wrap(_bound(part), width=width, break_long_words=False, break_on_hyphens=False):
            lines.append(f"{pad}# {line.replace(_KEEP, ' ')}")
    return lines


_KEEP = "\x00"  # a space that does not break a line: inside `code`, and where the text says so (NBSP)
_CODE = re.compile(r"`[^`]*`")


def _bound(text: str) -> str:
    """`text` with the spaces inside code spans, and no-break spaces, made unbreakable for wrapping."""
    text = text.replace("\u00a0", _KEEP)
    return _CODE.sub(lambda match: match.group(0).replace(" ", _KEEP), text)


# --- collections --------------------------------------------------------------------------------


def _map(node: Map, indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for entry in node.entries:
        lines += _comment(entry.note, indent)
        head = f"{pad}{scalar(entry.key)}:"
        lines += _attach(head, entry.value, indent)
    return lines


def _attach(head: str, value: Node, indent: int) -> list[str]:
    """`head` (a key and its colon, or a dash) followed by `value`, nested below when it is one."""
    if isinstance(value, Map):
        return [f"{head} {{}}"] if not value.entries else [head, *_map(value, indent + INDENT)]
    if isinstance(value, Seq):
        return [f"{head} []"] if not value.items else [head, *_seq(value, indent + INDENT)]
    if isinstance(value, Text):
        return _text(head, value.text, indent + INDENT)
    return [f"{head} {_inline(value)}"]


def _seq(node: Seq, indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for item in node.items:
        lines += _comment(item.note, indent)
        value = item.value
        if isinstance(value, Map) and value.entries:
            # The first key shares the dash's line; the rest line up under it.
            first, *rest = value.entries
            lines += _comment(first.note, indent)
            lines += _attach(f"{pad}- {scalar(first.key)}:", first.value, indent + INDENT)
            lines += _map(Map(tuple(rest)), indent + INDENT)
        elif isinstance(value, Seq):
            raise ValueError("a sequence directly inside a sequence is not written here")
        else:
            lines += _attach(f"{pad}-", value, indent)
    return lines


def _inline(value: str | int | bool | Flow) -> str:
    if isinstance(value, Flow):
        return "[" + ", ".join(_flow_scalar(item) for item in value.items) + "]"
    return scalar(value)


def _flow_scalar(value: str | int) -> str:
    # Strings in a one-line list are always quoted, as a command's words usually are.
    return quoted(value) if isinstance(value, str) else scalar(value)


# --- scalars ------------------------------------------------------------------------------------

# Characters of a plain scalar this writer allows; anything else (indicators, `#`, `:` before a
# space, quotes at the start, non-ASCII) is quoted rather than reasoned about.
_PLAIN = re.compile(r"[A-Za-z0-9/_.][A-Za-z0-9/_.'\[\]()@=+,:-]*(?: [A-Za-z0-9/_.'\[\]()@=+,:-]+)*")
# What could read as a number, date, or time in YAML 1.1 or 1.2 (1e3, 0x1F, 0o7, 1_000, 12:30,
# 2001-12-14, .5, +1): quoted. "256Gi" has other letters and stays plain.
_NUMBERLIKE = re.compile(r"[-+.]?[0-9][0-9a-fA-FxXoObB_.:+-]*|[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN)")
# YAML 1.1 booleans and nulls, in any case: quoted.
_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}


def scalar(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if _is_plain(value):
        return value
    return quoted(value)


def _is_plain(text: str) -> bool:
    return (
        _PLAIN.fullmatch(text) is not None
        and ": " not in text
        and not text.endswith(":")
        and _NUMBERLIKE.fullmatch(text) is None
        and text.lower() not in _WORDS
    )


def quoted(text: str) -> str:
    """A double-quoted scalar: YAML's escapes for what is not printable, the rest as it is."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _printable(ch: str) -> bool:
    """YAML's c-printable, less the line breaks (YAML 1.1 counts U+2028 and U+2029 too), the BOM and
    the C1 block: written as they are."""
    code = ord(ch)
    return (
        0x20 <= code <= 0x7E
        or (0xA0 <= code <= 0xD7FF and code not in (0x2028, 0x2029))
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
        or 0x10000 <= code <= 0x10FFFF
    )


def _text(head: str, text: str, indent: int) -> list[str]:
    """`text` as a literal block (`|`, `|-` or `|+` by its final line breaks), else double-quoted."""
    body = text.rstrip("\n")
    lines = body.split("\n")
    if not _literal_fits(lines):
        return [f"{head} {quoted(text)}"]
    trailing = len(text) - len(body)
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    pad = " " * indent
    block = [f"{pad}{line}" if line else "" for line in lines]
    return [f"{head} |{chomp}", *block, *[""] * max(0, trailing - 1)]


def _literal_fits(lines: Iterable[str]) -> bool:
    """Whether each line reads back unchanged from a literal block: printable (tabs allowed), the
    first one not starting with a space (which would set the block's indentation), and no line of
    only spaces (which a reader may take as indentation)."""
    lines = list(lines)
    if not lines or not lines[0] or lines[0][0] in " \t":
        return False
    for line in lines:
        if line and not line.strip(" \t"):
            return False
        if not all(ch == "\t" or _printable(ch) for ch in line):
            return False
    return True
