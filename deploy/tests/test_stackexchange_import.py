"""The importer's mapping of a dump to Knowflow's rules (pure functions, and the real dumps)."""

import re

import pytest

from deploy.stackexchange import DATA
from deploy.stackexchange_import import (
    display_name_for,
    fallback_handle,
    fit,
    handle_for,
    html_to_markdown,
    read_dump,
    tag_for,
)

HANDLE = re.compile(r"^[a-z0-9_]{2,32}$")
TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")


@pytest.mark.parametrize(
    ("name", "site_id", "handle"),
    [
        ("Ada Lovelace", 3, "ada_lovelace_3"),
        ("Zoë Ünicode!", 9, "zoe_unicode_9"),
        ("李小龍", 12, "user_12"),
        ("a" * 80, 123456789, "a" * 20 + "_123456789"),
        ("-- weird -- name --", 5, "weird_name_5"),
        ("Community", -1, "community_m1"),
    ],
)
def test_handles_fit_the_handle_rule_and_keep_the_site_id(
    name: str, site_id: int, handle: str
) -> None:
    assert handle_for(name, site_id) == handle
    assert HANDLE.match(handle)


def test_display_names_lose_what_identity_refuses() -> None:
    assert display_name_for("Ada\u202e Lovelace\u200b", 3) == "Ada Lovelace"
    assert display_name_for("\u3164\u200b", 7) == "user7"
    assert display_name_for("李小龍", 12) == "李小龍"


def test_a_fallback_handle_names_the_site_and_still_fits() -> None:
    fallback = fallback_handle("ada_lovelace_3", "cardano.stackexchange.com", 3)
    assert fallback == "ada_lovelace_cardan3" and HANDLE.match(fallback)


@pytest.mark.parametrize(
    ("tag", "mapped"),
    [("staking", "staking"), ("c#", "csharp"), ("c++", "cplusplus"), ("node.js", "node-js")],
)
def test_site_tags_become_knowflow_tags(tag: str, mapped: str) -> None:
    assert tag_for(tag) == mapped


def test_html_bodies_become_markdown() -> None:
    html = '<p>Use <code>nix</code>, see <a href="https://x.org">docs</a>.</p><pre><code>a = 1\n</code></pre>'
    markdown = html_to_markdown(html)
    assert "`nix`" in markdown and "[docs](https://x.org)" in markdown
    assert "```\na = 1\n```" in markdown


def test_a_cut_stays_within_the_limit_and_says_where_the_whole_is() -> None:
    cut = fit("x" * 50_000, 30_000, "https://site/q/1")
    assert len(cut) <= 30_000 and cut.endswith("(cut; the whole is at https://site/q/1)")
    assert fit("short", 30_000, "https://site/q/1") == "short"


@pytest.mark.parametrize("site", ["cardano", "quantumcomputing"])
def test_every_shared_site_maps_to_valid_handles_and_tags(site: str) -> None:
    folder = DATA / site
    if not folder.is_dir():
        pytest.skip(f"the shared Stack Exchange dumps are not beside this checkout: no {folder}")
    dump = read_dump(folder)
    people = dump.contributors()
    handles = [handle_for(dump.site.users[i].display_name, i) for i in people]
    assert all(HANDLE.match(handle) for handle in handles)
    assert len(set(handles)) == len(handles)
    tags = {tag for question in dump.site.questions.values() for tag in question.tags}
    assert all(TAG.match(tag_for(tag) or "") for tag in tags)
    assert all(dump.bodies[post_id] for post_id in dump.site.questions)
    assert dump.comments and all(len(comment.text) <= 600 for comment in dump.comments)
