"""Word-level differences between two notice texts, for the re-consent page."""

import difflib
import re
from dataclasses import dataclass
from typing import Literal

# Words, runs of whitespace and single punctuation marks; each CJK character is a token of its
# own because those scripts do not separate words with spaces.
_TOKEN = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]|\w+|\s+|[^\w\s]")

Op = Literal["equal", "insert", "delete"]


@dataclass(frozen=True)
class DiffSegment:
    op: Op
    text: str


def text_diff(old: str, new: str) -> list[DiffSegment]:
    """The new text as segments that are unchanged, inserted or deleted relative to the old one."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    segments: list[DiffSegment] = []

    def add(op: Op, tokens: list[str]) -> None:
        if not tokens:
            return
        text = "".join(tokens)
        if segments and segments[-1].op == op:
            segments[-1] = DiffSegment(op, segments[-1].text + text)
        else:
            segments.append(DiffSegment(op, text))

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            add("equal", a[i1:i2])
        else:
            add("delete", a[i1:i2])
            add("insert", b[j1:j2])
    return segments
