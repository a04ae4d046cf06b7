"""What changed between two texts, line by line, as a page shows it (difflib on the source).

The diff is computed here, on the Markdown source the API keeps for each revision, so
the API needs no diff endpoint; templates render the lines as <del>/<ins> with words
("removed", "added") as well as colour.
"""

import difflib
from dataclasses import dataclass, field
from typing import Literal

LineKind = Literal["same", "added", "removed"]
CONTEXT_LINES = 3


@dataclass(frozen=True)
class DiffLine:
    kind: LineKind
    old_number: int | None
    new_number: int | None
    text: str


@dataclass(frozen=True)
class Hunk:
    """A stretch of changed lines with a few unchanged ones around them."""

    lines: list[DiffLine]

    @property
    def heading(self) -> str:
        first_old = next((line.old_number for line in self.lines if line.old_number), None)
        first_new = next((line.new_number for line in self.lines if line.new_number), None)
        return f"From line {first_old or 0} (before) and line {first_new or 0} (after)"


@dataclass(frozen=True)
class LineDiff:
    hunks: list[Hunk] = field(default_factory=list)
    added: int = 0
    removed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def line_diff(old: str, new: str, context: int = CONTEXT_LINES) -> LineDiff:
    """The lines removed from `old` and added in `new`, in hunks with `context` lines around."""
    before = old.splitlines()
    after = new.splitlines()
    if before == after:
        return LineDiff()
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    hunks: list[Hunk] = []
    added = removed = 0
    for group in matcher.get_grouped_opcodes(context):
        lines: list[DiffLine] = []
        for operation, old_start, old_end, new_start, new_end in group:
            if operation == "equal":
                lines.extend(
                    DiffLine("same", old_start + offset + 1, new_start + offset + 1, text)
                    for offset, text in enumerate(before[old_start:old_end])
                )
                continue
            if operation in ("delete", "replace"):
                lines.extend(
                    DiffLine("removed", old_start + offset + 1, None, text)
                    for offset, text in enumerate(before[old_start:old_end])
                )
                removed += old_end - old_start
            if operation in ("insert", "replace"):
                lines.extend(
                    DiffLine("added", None, new_start + offset + 1, text)
                    for offset, text in enumerate(after[new_start:new_end])
                )
                added += new_end - new_start
        hunks.append(Hunk(lines))
    return LineDiff(hunks=hunks, added=added, removed=removed)


def tag_changes(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    """Tags removed and tags added, each in the order they appear."""
    return [tag for tag in old if tag not in new], [tag for tag in new if tag not in old]
