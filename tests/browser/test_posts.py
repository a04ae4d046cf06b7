"""Posts, articles and tags in a real browser: write, reply, thank, formalize; an article
edited twice, compared and restored; a tag followed; a private group's items hidden."""

import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Person, assert_accessible, new_person, screenshot, sign_in
from tests.e2e.conftest import every_item


def visit(page: Page, path: str, axe: Axe) -> None:
    response = page.goto(path)
    assert response is not None and response.status == 200, path
    assert_accessible(page, axe)


def textbox(page: Page, name: str) -> Locator:
    """A text field by its label (fields with autocomplete also label their suggestions)."""
    return page.get_by_role("textbox", name=name, exact=True)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Knowflow")).to_be_visible()


def wait_for_tag(api: httpx.Client, person: Person, tag: str) -> None:
    """Until search has indexed the tag (items reach it by events, asynchronously)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = api.get("/tags", params={"prefix": tag}, headers=person.headers).json()
        if any(item["tag"] == tag for item in found["items"]):
            return
        time.sleep(0.2)
    raise AssertionError(f"#{tag} never reached search")


def private_group(api: httpx.Client, owner: Person, *members: Person) -> dict[str, Any]:
    slug = f"secret-{secrets.token_hex(4)}"
    response = api.post(
        "/groups",
        json={"name": f"Secret {slug[-8:]}", "slug": slug, "visibility": "private"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    group: dict[str, Any] = response.json()
    for member in members:
        added = api.post(
            f"/groups/{group['id']}/members", json={"user_id": member.id}, headers=owner.headers
        )
        assert added.status_code in (200, 201), added.text
    return group


def test_a_post_with_a_tag_and_a_mention_gets_a_reply_thanks_and_becomes_an_article(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    ada = new_person(api, "Ada")
    bob = new_person(api, "Bob")
    tag = f"canary{secrets.token_hex(3)}"
    used = api.post("/posts", json={"body": f"Trying #{tag}"}, headers=bob.headers)
    assert used.status_code == 201, used.text
    wait_for_tag(api, ada, tag)
    sign_in(page, ada)
    page.get_by_role("link", name="Posts", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Posts")
    assert_accessible(page, axe)
    body = textbox(page, "What did you learn?")
    body.fill("Rolling out with a ")
    # The tag exists (Bob used it); suggestions come from what search has indexed.
    body.press_sequentially(f"#{tag[:8]}")
    suggestion = page.get_by_role("option", name=re.compile(f"#{tag}"))
    expect(suggestion).to_be_visible(timeout=20_000)
    assert_accessible(page, axe)
    screenshot(page, request, "compose-tag-suggested")
    body.press("ArrowDown")
    expect(suggestion).to_have_attribute("aria-selected", "true")
    body.press("Enter")
    expect(body).to_have_value(f"Rolling out with a #{tag} ")
    body.press_sequentially(f"first, thanks to @{bob.handle[:-1]}")
    person = page.get_by_role("option", name=re.compile(f"@{bob.handle}"))
    expect(person).to_be_visible(timeout=10_000)
    screenshot(page, request, "compose-person-suggested")
    body.press("ArrowDown")
    expect(person).to_have_attribute("aria-selected", "true")
    body.press("Enter")
    expect(body).to_have_value(f"Rolling out with a #{tag} first, thanks to @{bob.handle} ")
    body.press("Backspace")
    body.press_sequentially(": **watch the errors**.")
    screenshot(page, request, "compose")
    page.get_by_role("button", name="Post", exact=True).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Post by @{ada.handle}")
    expect(page.get_by_role("status").first).to_contain_text("Posted.")
    prose = page.locator(".prose")
    expect(prose.locator("strong")).to_have_text("watch the errors")
    expect(prose.get_by_role("link", name=f"#{tag}")).to_have_attribute("href", f"/tags/{tag}")
    expect(prose.get_by_role("link", name=f"@{bob.handle}")).to_have_attribute(
        "href", f"/people/@{bob.handle}"
    )
    # Not one's own post to thank: edit and delete instead.
    expect(page.get_by_role("button", name="Thanks")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit")).to_be_visible()
    assert_accessible(page, axe)
    screenshot(page, request, "post")
    post_url = urlsplit(page.url).path

    textbox(page, "Reply").fill(f"Also see #{tag} dashboards.")
    page.get_by_role("button", name="Reply", exact=True).click()
    expect(page.get_by_role("heading", name="1 reply")).to_be_visible()
    expect(page.locator(".reply")).to_contain_text("dashboards")

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit your post")
    assert_accessible(page, axe)
    textbox(page, "Your post").fill(f"Rolling out with a #{tag} first. Edited.")
    # Changed in another tab meanwhile: told so, the text kept, the other version shown.
    post_id = urlsplit(post_url).path.rsplit("/", 1)[1]
    other = api.patch(f"/posts/{post_id}", json={"body": "From my phone."}, headers=ada.headers)
    assert other.status_code == 200, other.text
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("changed meanwhile")
    expect(textbox(page, "Your post")).to_have_value(f"Rolling out with a #{tag} first. Edited.")
    expect(page.locator(".prose")).to_contain_text("From my phone.")
    assert_accessible(page, axe)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_contain_text("Your post is updated.")
    expect(page.locator(".prose")).to_contain_text("Edited.")

    sign_out(page)
    sign_in(page, bob)
    page.goto("/posts")
    card = page.locator(".post-card", has_text="Edited.")
    expect(card).to_contain_text("1 reply")
    expect(card).to_contain_text("0 thanks")
    expect(card.get_by_role("link", name=f"#{tag}", exact=True)).to_be_visible()
    card.get_by_role("link", name=re.compile("Rolling out")).click()
    thanks = page.get_by_role("button", name="Thanks")
    expect(thanks).to_have_attribute("aria-pressed", "false")
    thanks.click()
    expect(page.get_by_role("status").first).to_contain_text("You thanked the author.")
    expect(page.locator("#thanks-count")).to_have_text("1 thanks")
    expect(thanks).to_have_attribute("aria-pressed", "true")
    assert_accessible(page, axe)
    screenshot(page, request, "thanked")
    thanks.click()
    expect(page.locator("#thanks-count")).to_have_text("0 thanks")
    expect(thanks).to_have_attribute("aria-pressed", "false")
    thanks.click()
    expect(page.locator("#thanks-count")).to_have_text("1 thanks")

    # A reply to the reply shows on the thread's page too, under the reply it answers.
    page.get_by_role("link", name=f"Open this reply by @{ada.handle}").click()
    textbox(page, "Reply").fill("Which dashboards?")
    page.get_by_role("button", name="Reply", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Your reply is posted.")
    page.goto(post_url)
    nested = page.get_by_role("list", name=f"Replies to @{ada.handle}")
    expect(nested).to_contain_text("Which dashboards?")
    expect(page.locator(".reply").first).to_contain_text("1 reply")
    assert_accessible(page, axe)
    screenshot(page, request, "nested")
    page.get_by_role("link", name="Formalize into an article").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Formalize into an article")
    assert_accessible(page, axe)
    page.get_by_label("Article title").fill("Canary releases, as we do them")
    page.get_by_role("button", name="Create the article").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Canary releases, as we do them")
    expect(page.get_by_role("link", name="The thread it came from")).to_have_attribute(
        "href", re.compile(r"/posts/")
    )
    credited = page.locator("aside")
    expect(credited.get_by_role("link", name=f"@{ada.handle}")).to_be_visible()
    expect(credited.get_by_role("link", name=f"@{bob.handle}")).to_be_visible()
    assert_accessible(page, axe)
    screenshot(page, request, "formalized")
    page.goto(post_url)
    expect(page.get_by_role("link", name="Read the article made from this thread")).to_be_visible()

    sign_out(page)
    sign_in(page, ada)
    page.goto(post_url)
    page.get_by_role("link", name=f"Open this reply by @{ada.handle}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Reply by @{ada.handle}")
    expect(page.get_by_text("In reply to")).to_be_visible()
    assert_accessible(page, axe)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").first).to_contain_text("Your post is deleted.")
    expect(page.locator(".post-card", has_text="Edited.")).to_contain_text("0 replies")


def test_an_article_edited_twice_shows_the_diff_and_an_old_revision_is_restored(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    ada = new_person(api, "Ada")
    sign_in(page, ada)
    page.goto("/articles")
    assert_accessible(page, axe)
    page.get_by_role("link", name="Write an article").click()
    # Refused by the API (a blank title, a tag it cannot be): the form comes back, kept.
    page.get_by_label("Title").fill("   ")
    textbox(page, "Article").fill("Draft text")
    page.get_by_label("Tags").fill("fine, not/ok")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator(".field.invalid")).not_to_have_count(0)
    expect(textbox(page, "Article")).to_have_value("Draft text")
    expect(page.get_by_label("Tags")).to_have_value("fine, not/ok")
    assert_accessible(page, axe)
    screenshot(page, request, "new-article-refused")
    page.get_by_label("Title").fill("Deploying on Fridays")
    textbox(page, "Article").fill("# Rules\n\nDo not deploy late.\nAsk first.\nKeep a rollback.")
    page.get_by_label("Tags").fill("deployment, #release")
    assert_accessible(page, axe)
    screenshot(page, request, "new-article")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Deploying on Fridays")
    expect(page.locator("main .tags").first).to_contain_text("#deployment")
    article_url = urlsplit(page.url).path

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit “Deploying on Fridays”")
    assert_accessible(page, axe)
    textbox(page, "Article").fill(
        "# Rules\n\nDo not deploy after 3 pm.\nAsk first.\nKeep a rollback."
    )
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_contain_text("Saved as a new revision.")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Title").fill("Deploying on Fridays, safely")
    textbox(page, "Article").fill(
        "# Rules\n\nDo not deploy after 3 pm.\nAsk first.\nKeep a rollback.\nWatch the graphs."
    )
    page.get_by_label("Tags").fill("deployment ops")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Deploying on Fridays, safely")
    expect(page.get_by_text("revision 3")).to_be_visible()

    page.get_by_role("link", name="3 revisions").click()
    expect(page.get_by_role("table")).to_contain_text("Revision 1")
    assert_accessible(page, axe)
    screenshot(page, request, "revisions")
    page.get_by_label("Compare from revision 1").check()
    page.get_by_label("Compare to revision 3").check()
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Changes from revision 1 to 3")
    removed = page.locator(".line-diff del")
    added = page.locator(".line-diff ins")
    expect(removed).to_have_count(1)
    expect(removed).to_contain_text("Do not deploy late.")
    expect(added).to_have_count(2)
    expect(added.first).to_contain_text("Do not deploy after 3 pm.")
    expect(added.last).to_contain_text("Watch the graphs.")
    # Said in words too, for whoever does not see the colours and marks.
    expect(removed).to_contain_text("Removed line 3: Do not deploy late.")
    expect(added.last).to_contain_text("Added line 6: Watch the graphs.")
    summary = page.locator("section", has=page.get_by_role("heading", name="Summary"))
    expect(summary).to_contain_text("Title changed from “Deploying on Fridays” to")
    expect(summary).to_contain_text("added: #ops; removed: #release")
    expect(summary).to_contain_text("2 lines added, 1 line removed")
    expect(page.get_by_role("heading", name="How to read this")).to_be_visible()
    assert_accessible(page, axe)
    screenshot(page, request, "diff")

    page.goto(article_url + "/revisions")
    page.get_by_role("link", name="Revision 1", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Revision 1 of “Deploying on Fridays, safely”"
    )
    assert_accessible(page, axe)
    screenshot(page, request, "revision-1")
    # Someone saves meanwhile (another tab): the restore must not overwrite it blindly.
    article_id = article_url.rsplit("/", 1)[1]
    sneaked = api.patch(
        f"/articles/{article_id}", json={"body": "Sneaked in."}, headers=ada.headers
    )
    assert sneaked.status_code == 200, sneaked.text
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restore this revision").click()
    expect(page.get_by_role("alert")).to_contain_text("changed meanwhile")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Revision 1 of “Deploying on Fridays, safely”"
    )
    assert_accessible(page, axe)
    screenshot(page, request, "restore-stale")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restore this revision").click()
    expect(page.get_by_role("status").first).to_contain_text("Restored")
    expect(page.get_by_role("heading", level=1)).to_have_text("Deploying on Fridays")
    expect(page.locator(".prose")).to_contain_text("Do not deploy late.")
    expect(page.get_by_text("revision 5")).to_be_visible()
    expect(page.locator("main .tags").first).to_contain_text("#release")
    screenshot(page, request, "restored")

    # An edit from a stale form keeps the person's text and says what happened.
    page.get_by_role("link", name="Edit").click()
    textbox(page, "Article").fill("My careful rewrite.")
    api.patch(f"/articles/{article_id}", json={"body": "Another tab."}, headers=ada.headers)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("changed meanwhile")
    expect(textbox(page, "Article")).to_have_value("My careful rewrite.")
    expect(page.locator(".prose")).to_contain_text("Another tab.")
    assert_accessible(page, axe)
    screenshot(page, request, "edit-stale")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_contain_text("Saved as a new revision.")
    expect(page.locator(".prose")).to_contain_text("My careful rewrite.")
    page.get_by_role("link", name="What changed last").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Changes from revision 6 to 7")
    expect(page.locator(".line-diff del")).to_contain_text("Another tab.")
    expect(page.locator(".line-diff ins")).to_contain_text("My careful rewrite.")
    page.goto(f"{article_url}/diff")
    expect(page.get_by_role("heading", level=1)).to_have_text("Changes from revision 6 to 7")


def test_a_tag_page_lists_what_carries_it_and_the_tag_is_followed_and_unfollowed(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    ada = new_person(api, "Ada")
    tag = f"observability{secrets.token_hex(3)}"
    assert api.post("/posts", json={"body": f"Tracing tips #{tag}"}, headers=ada.headers).is_success
    assert api.post(
        "/articles",
        json={"title": "Tracing handbook", "body": "Spans.", "tags": [tag]},
        headers=ada.headers,
    ).is_success
    assert api.post(
        "/questions",
        json={"title": "How do we sample traces?", "body": "Which rate?", "tags": [tag]},
        headers=ada.headers,
    ).is_success
    sign_in(page, ada)
    visit(page, f"/tags/{tag}", axe)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"#{tag}")
    expect(page.get_by_role("link", name="How do we sample traces?")).to_be_visible()
    expect(page.get_by_role("link", name="Tracing handbook")).to_be_visible()
    expect(page.get_by_role("link", name="Tracing tips")).to_be_visible()
    page.get_by_role("button", name=f"Follow #{tag}").click()
    expect(page.get_by_role("status").first).to_contain_text("You follow this tag")
    expect(page.get_by_role("button", name=f"Unfollow #{tag}")).to_be_visible()
    follows = every_item(api, "/follows", ada.headers)
    assert {(item["target_type"], item["target"]) for item in follows} >= {("tag", tag)}
    assert_accessible(page, axe)
    screenshot(page, request, "followed")
    wait_for_tag(api, ada, tag)
    visit(page, "/tags", axe)
    page.get_by_label("Tags starting with").fill(tag[:10])
    page.get_by_role("button", name="Show").click()
    row = page.get_by_role("row", name=re.compile(f"#{tag}"))
    expect(row).to_contain_text("3 times")
    expect(row).to_contain_text("following")
    assert_accessible(page, axe)
    screenshot(page, request, "tags")
    row.get_by_role("link", name=f"#{tag}").click()
    page.get_by_role("button", name=f"Unfollow #{tag}").click()
    expect(page.get_by_role("button", name=f"Follow #{tag}")).to_be_visible()
    assert all(item["target"] != tag for item in every_item(api, "/follows", ada.headers))
    # A tag that cannot exist is no page.
    assert page.goto("/tags/not%20a%20tag") is not None
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing here")


def test_a_private_groups_post_and_article_never_reach_an_outsider(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    owner = new_person(api, "Owner")
    member = new_person(api, "Member")
    outsider = new_person(api, "Outsider")
    group = private_group(api, owner, member)
    tag = f"secret{secrets.token_hex(3)}"

    # The owner posts into the group from the page, choosing it in the form.
    sign_in(page, owner)
    page.goto("/posts")
    textbox(page, "What did you learn?").fill(f"Merger plans #{tag}")
    page.get_by_label("Post in").select_option(label=f"{group['name']} (private group)")
    page.get_by_role("button", name="Post", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Post by @{owner.handle}")
    expect(page.locator("main .meta").first).to_contain_text(f"in {group['name']} (private)")
    post_id = urlsplit(page.url).path.rsplit("/", 1)[1]
    reply = api.post(
        "/posts", json={"body": "Quiet please", "parent_id": post_id}, headers=member.headers
    )
    assert reply.status_code == 201, reply.text
    article = api.post(
        "/articles",
        json={
            "title": "Merger handbook",
            "body": "Secret",
            "tags": [tag],
            "group_id": group["id"],
        },
        headers=owner.headers,
    ).json()
    api.patch(f"/articles/{article['id']}", json={"body": "Still secret"}, headers=owner.headers)
    sign_out(page)

    sign_in(page, member)
    visit(page, f"/posts/{post_id}", axe)
    expect(page.locator(".prose")).to_contain_text("Merger plans")
    visit(page, f"/tags/{tag}", axe)
    expect(page.get_by_role("link", name="Merger handbook")).to_be_visible()
    sign_out(page)

    sign_in(page, outsider)
    for path in (
        f"/posts/{post_id}",
        f"/posts/{reply.json()['id']}",
        f"/posts/{post_id}/edit",
        f"/posts/{post_id}/formalize",
        f"/articles/{article['id']}",
        f"/articles/{article['id']}/edit",
        f"/articles/{article['id']}/revisions",
        f"/articles/{article['id']}/revisions/1",
        f"/articles/{article['id']}/diff?from=1&to=2",
    ):
        response = page.goto(path)
        assert response is not None and response.status == 404, path
        expect(page.get_by_role("heading", level=1)).to_have_text("Nothing here")
        expect(page.locator("main")).not_to_contain_text("Merger")
        expect(page.locator("main")).not_to_contain_text("secret")
    assert_accessible(page, axe)
    screenshot(page, request, "outsider-404")
    for path in (
        "/posts",
        "/articles",
        f"/tags/{tag}",
        f"/posts?tag={tag}",
        f"/articles?tag={tag}",
    ):
        visit(page, path, axe)
        expect(page.locator("main")).not_to_contain_text("Merger")
    screenshot(page, request, "outsider-tag")
    # Forms posted anyway are refused the same way.
    page.goto("/posts")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    for path, data in (
        (f"/posts/{post_id}/replies", {"body": "let me in"}),
        (f"/posts/{post_id}/thanks", {"thanked": "no"}),
        (f"/articles/{article['id']}/revisions/1/restore", {"etag": "*"}),
    ):
        refused = page.request.post(path, form={"csrf_token": csrf or "", **data})
        assert refused.status == 404, path
    assert api.get(f"/posts/{post_id}/replies", headers=outsider.headers).status_code == 404
    sign_out(page)

    # Nobody signed in: sent to sign in, nothing shown.
    page.goto(f"/posts/{post_id}")
    expect(page.get_by_role("heading", name="Sign in to Knowflow")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Merger")
