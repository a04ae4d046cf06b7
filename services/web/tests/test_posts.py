"""The revision diff (pure logic) and how tags typed in a form are read."""

from services.web.diff import line_diff, tag_changes
from services.web.pages.base import parse_tags


def kinds(text_old: str, text_new: str) -> list[tuple[str, str]]:
    return [
        (line.kind, line.text)
        for hunk in line_diff(text_old, text_new).hunks
        for line in hunk.lines
    ]


def test_identical_texts_have_no_changes() -> None:
    diff = line_diff("same\ntext", "same\ntext")
    assert not diff.changed and diff.hunks == [] and (diff.added, diff.removed) == (0, 0)


def test_a_changed_line_is_removed_then_added_with_its_numbers() -> None:
    diff = line_diff("one\ntwo\nthree", "one\n2\nthree\nfour")
    assert (diff.added, diff.removed) == (2, 1)
    [hunk] = diff.hunks
    assert [(line.kind, line.old_number, line.new_number, line.text) for line in hunk.lines] == [
        ("same", 1, 1, "one"),
        ("removed", 2, None, "two"),
        ("added", None, 2, "2"),
        ("same", 3, 3, "three"),
        ("added", None, 4, "four"),
    ]
    assert hunk.heading == "From line 1 (before) and line 1 (after)"


def test_far_apart_changes_are_separate_hunks_with_three_lines_of_context() -> None:
    old = "\n".join(f"line {n}" for n in range(1, 21))
    new = old.replace("line 2\n", "line two\n").replace("line 19", "line nineteen")
    diff = line_diff(old, new)
    assert len(diff.hunks) == 2
    first, second = diff.hunks
    assert [line.text for line in first.lines if line.kind == "same"] == [
        "line 1", "line 3", "line 4", "line 5",
    ]  # fmt: skip
    assert [line.text for line in second.lines if line.kind == "same"] == [
        "line 16", "line 17", "line 18", "line 20",
    ]  # fmt: skip
    assert second.heading == "From line 16 (before) and line 16 (after)"


def test_text_from_nothing_is_all_added_and_to_nothing_all_removed() -> None:
    assert kinds("", "a\nb") == [("added", "a"), ("added", "b")]
    assert kinds("a\nb", "") == [("removed", "a"), ("removed", "b")]


def test_markup_in_lines_is_kept_as_text_for_the_template_to_escape() -> None:
    assert kinds("x", "<script>alert(1)</script>") == [
        ("removed", "x"),
        ("added", "<script>alert(1)</script>"),
    ]


def test_tag_changes_name_what_went_and_what_came() -> None:
    assert tag_changes(["a", "b", "c"], ["c", "d", "a"]) == (["b"], ["d"])


def test_tags_typed_with_commas_spaces_and_hashes_are_read_once_each() -> None:
    assert parse_tags("deploy, #Kubernetes  ops,deploy,,") == ["deploy", "Kubernetes", "ops"]
    assert parse_tags("  ") == []
