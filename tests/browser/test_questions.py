"""Questions in a real browser: asking with similar questions and likely experts shown as
one types, answering from a second browser while the asker's badge updates live, votes,
acceptance, the routing history (the asker's alone), formalizing, and a private group's
question invisible to an outsider on every questions page.

Search and routing follow the bus: setup waits for them through the API, and the pages
are checked with expect timeouts, never sleeps.
"""

import re
import secrets
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from deploy.launch import Platform
from tests.browser.conftest import (
    Person,
    assert_accessible,
    new_person,
    screenshot,
    sign_in,
)
from tests.e2e.test_knowledge_flow import eventually

Json = dict[str, Any]
SLOW = 20_000  # ms: search and notifications follow the bus


def ask(api: httpx.Client, who: Person, **question: Any) -> Json:
    response = api.post("/questions", headers=who.headers, json=question)
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


def answer(api: httpx.Client, who: Person, question_id: str, body: str) -> Json:
    response = api.post(
        f"/questions/{question_id}/answers", headers=who.headers, json={"body": body}
    )
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


def similar_ids(api: httpx.Client, who: Person, title: str) -> list[str]:
    response = api.post("/questions/similar", headers=who.headers, json={"title": title})
    assert response.status_code == 200, response.text
    return [item["question_id"] for item in response.json()["items"]]


def expert_ids(api: httpx.Client, who: Person, tag: str) -> list[str]:
    response = api.get("/experts", params={"topic": tag}, headers=who.headers)
    assert response.status_code == 200, response.text
    return [expert["user_id"] for expert in response.json()["experts"]]


def private_group(api: httpx.Client, owner: Person, *members: Person) -> str:
    slug = f"private-{secrets.token_hex(3)}"
    created = api.post(
        "/groups",
        headers=owner.headers,
        json={"name": f"Vault {slug[-6:]}", "slug": slug, "visibility": "private"},
    )
    assert created.status_code == 201, created.text
    group_id: str = created.json()["id"]
    for member in members:
        added = api.post(
            f"/groups/{group_id}/members", headers=owner.headers, json={"user_id": member.id}
        )
        assert added.status_code == 201, added.text
    return group_id


def test_ask_with_similar_questions_and_experts_then_answer_vote_accept_and_formalize(
    page: Page,
    browser: Browser,
    platform: Platform,
    api: httpx.Client,
    axe: Axe,
    request: pytest.FixtureRequest,
) -> None:
    word = f"zorblax{secrets.token_hex(3)}"
    tag = f"certs-{secrets.token_hex(3)}"
    asker, knower, earlier_asker = (
        new_person(api, "Asker"),
        new_person(api, "Knower"),
        new_person(api, "Finn"),
    )
    earlier = ask(
        api,
        earlier_asker,
        title=f"How do I rotate the {word} certificates on the cluster?",
        body=f"The {word} certificates expire next week and rotation fails.",
        tags=[tag],
    )
    answer(api, knower, earlier["id"], f"Rotate the {word} certificates with the renew job.")
    eventually(lambda: earlier["id"] in similar_ids(api, asker, f"rotate {word} certificates"))
    eventually(lambda: knower.id in expert_ids(api, asker, tag))

    # Asking: similar questions and likely experts appear while typing.
    sign_in(page, asker)
    page.get_by_role("link", name="Ask a question").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ask a question")
    page.get_by_label("Title").fill(f"Why does {word} certificate rotation fail?")
    similar = page.locator("#similar")
    expect(similar.get_by_role("link", name=earlier["title"])).to_be_visible(timeout=SLOW)
    page.get_by_label("Tags").fill(tag)
    page.get_by_role("textbox", name="Details").fill(
        f"Rotating the {word} certificates stops at step two."
    )
    experts = page.locator("#experts")
    expect(experts.get_by_role("link", name=re.compile(knower.handle))).to_be_visible(timeout=SLOW)
    expect(experts).to_contain_text(earlier["title"])  # the evidence behind the suggestion
    assert_accessible(page, axe)
    screenshot(page, request, "ask-with-suggestions")

    # A refusal is shown next to the field it concerns, with what was typed kept.
    page.get_by_role("textbox", name="Details").fill("   ")
    page.get_by_role("button", name="Post your question").click()
    expect(page.locator("#f-body-error")).to_be_visible()
    expect(page.get_by_label("Title")).to_have_value(f"Why does {word} certificate rotation fail?")
    assert_accessible(page, axe)
    screenshot(page, request, "ask-refused")
    page.get_by_role("textbox", name="Details").fill(
        f"Rotating the **{word}** certificates stops at step two:\n\n```\nerror: expired\n```"
    )
    page.get_by_role("button", name="Post your question").click()
    expect(page.get_by_role("status").first).to_contain_text("Your question is posted")
    question_url = page.url
    question_id = question_url.rsplit("/", 1)[-1].split("?")[0]
    expect(page.locator(".question .prose strong")).to_have_text(word)  # Markdown rendered

    # The asker sees who the question was routed to, and why.
    def routed() -> bool:
        response = api.get(f"/routing/questions/{question_id}", headers=asker.headers)
        return response.status_code == 200 and bool(response.json()["rounds"])

    eventually(routed, timeout=40.0)
    page.reload()
    routing = page.get_by_role("region", name="Who was asked")
    expect(routing).to_contain_text(f"@{knower.handle}")
    expect(routing).to_contain_text("you were asked because")
    assert_accessible(page, axe)
    screenshot(page, request, "question-for-asker")

    # The knower answers from another browser; the asker's badge updates without reload.
    badge = page.locator("#unread-badge")
    unread_before = int(badge.get_attribute("data-count") or "0")
    other = browser.new_context(
        base_url=platform.gateway_url, viewport={"width": 1280, "height": 900}
    )
    other.set_default_timeout(15_000)
    try:
        knower_page = other.new_page()
        sign_in(knower_page, knower)
        knower_page.goto(f"/questions/{question_id}")
        expect(knower_page.get_by_role("heading", level=1)).to_contain_text(word)
        expect(knower_page.get_by_role("region", name="Who was asked")).to_have_count(0)
        knower_page.get_by_role("button", name="Upvote the question").click()
        expect(knower_page.get_by_role("status").first).to_contain_text("Vote recorded")
        expect(knower_page.locator(".question .score")).to_have_text("1")
        expect(knower_page.get_by_role("button", name="Upvote the question")).to_have_attribute(
            "aria-pressed", "true"
        )
        knower_page.get_by_role("textbox", name="Your answer").fill(
            f"Run the renew job first; the {word} issuer must be rotated before the leaves."
        )
        knower_page.get_by_role("button", name="Post your answer").click()
        expect(knower_page.get_by_role("status").first).to_contain_text("Your answer is posted")
        expect(knower_page.get_by_role("button", name="Accept this answer")).to_have_count(0)
        knower_page.get_by_role("link", name="Edit answer").click()
        knower_page.get_by_role("textbox", name="Your answer").fill(
            f"Run the renew job first: the {word} issuer must be rotated before the leaves."
        )
        assert_accessible(knower_page, axe)
        knower_page.get_by_role("button", name="Save").click()
        expect(knower_page.get_by_role("status").first).to_contain_text("Saved")
        expect(knower_page.locator("article.answer .prose")).to_contain_text("renew job first:")
        assert_accessible(knower_page, axe)
        screenshot(knower_page, request, "question-for-answerer")
    finally:
        other.close()

    expect(badge).to_be_visible(timeout=SLOW)
    expect(badge).not_to_have_attribute("data-count", str(unread_before), timeout=SLOW)
    screenshot(page, request, "badge-live")

    # The asker votes on the answer, accepts it, and comments on it.
    page.reload()
    answer_card = page.locator("article.answer").first
    expect(answer_card).to_contain_text("renew job first")
    answer_card.get_by_role("button", name="Upvote this answer").click()
    answer_card = page.locator("article.answer").first
    expect(answer_card.locator(".score")).to_have_text("1")
    answer_card.get_by_role("button", name="Accept this answer").click()
    expect(page.get_by_role("status").first).to_contain_text("Answer accepted")
    expect(page.locator("article.answer").first).to_contain_text("Accepted answer")
    page.locator("article.answer").first.get_by_text("Comment on this answer", exact=True).click()
    page.get_by_role("textbox", name="Your comment on this answer").fill("Thanks, that was it.")
    page.get_by_role("button", name="Add comment").last.click()
    expect(page.locator("article.answer .comment-list")).to_contain_text("Thanks, that was it.")
    assert_accessible(page, axe)
    screenshot(page, request, "accepted")

    # The thread becomes an article.
    page.get_by_role("button", name="Formalize into an article").click()
    expect(page).to_have_url(re.compile(r"/articles/[0-9a-f-]{36}$"))
    article_id = page.url.rsplit("/", 1)[-1]
    article = api.get(f"/articles/{article_id}", headers=asker.headers)
    assert article.status_code == 200, article.text
    page.goto(f"/questions/{question_id}")
    expect(page.get_by_role("link", name="read the article")).to_have_attribute(
        "href", f"/articles/{article_id}"
    )


def test_the_list_filters_by_tag_and_unanswered_and_pages_on(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    asker, helper = new_person(api, "Lister"), new_person(api, "Helper")
    tag = f"paging-{secrets.token_hex(3)}"
    asked = [
        ask(api, asker, title=f"Paging question {number}", body="Body.", tags=[tag])
        for number in range(22)
    ]
    answer(api, helper, asked[-1]["id"], "Answered.")
    sign_in(page, asker)
    page.get_by_role("link", name="Questions", exact=True).click()
    page.get_by_role("textbox", name="Tag", exact=True).fill(tag)
    page.get_by_role("button", name="Show").click()
    cards = page.locator("ol.questions > li.card")
    expect(cards).to_have_count(20)
    expect(cards.first).to_contain_text("Paging question 21")  # newest first
    assert_accessible(page, axe)
    screenshot(page, request, "list")
    page.get_by_role("link", name="Older").click()
    expect(cards).to_have_count(2)
    expect(cards.last).to_contain_text("Paging question 0")

    voted = api.put(f"/questions/{asked[5]['id']}/vote", headers=helper.headers, json={"value": 1})
    assert voted.status_code == 200, voted.text
    page.goto(f"/questions?tag={tag}")
    page.get_by_label("Order").select_option(label="Most votes")
    page.get_by_role("button", name="Show").click()
    expect(cards.first).to_contain_text("Paging question 5")

    page.goto(f"/questions?tag={tag}")
    page.get_by_label("Unanswered only").check()
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("link", name="Paging question 21")).to_have_count(0)
    expect(page.get_by_role("link", name="Paging question 20")).to_be_visible()

    # Editing one's own question (only if nobody changed it meanwhile).
    page.get_by_role("link", name="Paging question 19").click()
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit your question")
    page.get_by_label("Title").fill("Paging question 19, now clearer")
    assert_accessible(page, axe)
    api.patch(f"/questions/{asked[19]['id']}", headers=asker.headers, json={"body": "Changed."})
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Someone changed this")  # a 412
    expect(page.get_by_label("Title")).to_have_value("Paging question 19, now clearer")
    page.get_by_role("button", name="Save").click()  # knowingly, over the current version
    expect(page.get_by_role("status").first).to_contain_text("Saved")
    expect(page.get_by_role("heading", level=1)).to_have_text("Paging question 19, now clearer")

    # Deleting one's own question takes it off the list.
    page.goto(f"/questions?tag={tag}&unanswered=true")
    page.get_by_role("link", name="Paging question 20").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Deleted")
    page.goto(f"/questions?tag={tag}&unanswered=true")
    expect(page.get_by_role("link", name="Paging question 20")).to_have_count(0)


def test_a_private_groups_question_is_invisible_to_an_outsider(
    page: Page, api: httpx.Client, axe: Axe, request: pytest.FixtureRequest
) -> None:
    word = f"quuxle{secrets.token_hex(3)}"
    owner, member, outsider = (
        new_person(api, "Owner"),
        new_person(api, "Member"),
        new_person(api, "Outsider"),
    )
    group_id = private_group(api, owner, member)
    secret = ask(
        api,
        owner,
        title=f"Where is the {word} vault key kept?",
        body=f"The {word} vault key moved.",
        group_id=group_id,
    )
    public = ask(
        api,
        owner,
        title=f"Who rotates the {word} vault?",
        body=f"Asking about the {word} vault in public.",
    )
    # Both reached search: a member is offered both, so an outsider's view below is real.
    eventually(
        lambda: {secret["id"], public["id"]} <= set(similar_ids(api, member, f"{word} vault key"))
    )

    sign_in(page, outsider)
    page.goto(f"/questions/{secret['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing here")
    assert word not in page.content()
    assert_accessible(page, axe)
    screenshot(page, request, "outsider-404")

    page.goto(f"/questions/{secret['id']}/edit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing here")

    page.goto("/questions")
    expect(page.get_by_role("link", name=public["title"])).to_be_visible()
    expect(page.get_by_role("link", name=secret["title"])).to_have_count(0)
    page.goto(f"/questions?group_id={group_id}")
    expect(page.get_by_role("link", name=secret["title"])).to_have_count(0)
    assert_accessible(page, axe)

    page.goto("/questions/ask")
    page.get_by_label("Title").fill(f"Where is the {word} vault key?")
    similar = page.locator("#similar")
    expect(similar.get_by_role("link", name=public["title"])).to_be_visible(timeout=SLOW)
    expect(similar.get_by_role("link", name=secret["title"])).to_have_count(0)
    assert secret["title"] not in (similar.text_content() or "")
    assert_accessible(page, axe)
    screenshot(page, request, "outsider-similar")
    # Nor do the lookups name it, even asked within its group or for its experts.
    for lookup in (
        f"/questions/similar.json?title={word}+vault+key&group_id={group_id}",
        f"/questions/experts.json?title={word}+vault+key&body={word}+vault+key+moved",
    ):
        looked_up = page.request.get(lookup)
        assert looked_up.status == 200, (lookup, looked_up.status)
        assert secret["title"] not in looked_up.text(), lookup
    # Its forms refuse the outsider as if it did not exist.
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    forms = {"answers": {"body": "x"}, "comments": {"body": "x"}, "vote": {"value": "1"}}
    for action, fields in {**forms, "formalize": {"title": "x"}}.items():
        response = page.request.post(
            f"/questions/{secret['id']}/{action}", form={**fields, "csrf_token": csrf}
        )
        assert response.status == 404, (action, response.status)
        assert word not in response.text()
    # The member does see it, in the list filtered by the group.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, member)
    page.goto(f"/questions?group_id={group_id}")
    expect(page.get_by_role("link", name=secret["title"])).to_be_visible()
    screenshot(page, request, "member-group-list")


def test_a_visitor_without_a_session_is_sent_to_sign_in_and_changes_nothing(
    platform: Platform, api: httpx.Client
) -> None:
    asker = new_person(api, "Quiet")
    question = ask(api, asker, title="A public question", body="Body.")
    paths = [
        "/questions",
        "/questions/ask",
        f"/questions/{question['id']}",
        f"/questions/{question['id']}/edit",
        "/questions/similar.json?title=public+question",
        "/questions/experts.json?title=public+question",
    ]
    for cookie in ({}, {"knowflow_session": "forged.value"}):
        with httpx.Client(base_url=platform.gateway_url, cookies=cookie) as visitor:
            for path in paths:
                response = visitor.get(path)
                assert response.status_code == 303, (path, response.status_code)
                assert response.headers["location"].startswith("/login?next="), path
                assert "A public question" not in response.text
            for action in ("answers", "comments", "vote", "delete", "formalize"):
                refused = visitor.post(f"/questions/{question['id']}/{action}", data={"body": "x"})
                assert refused.status_code == 303, (action, refused.status_code)
                assert refused.headers["location"].startswith("/login?next="), action
    assert (
        api.get(f"/questions/{question['id']}/answers", headers=asker.headers).json()["items"] == []
    )
