"""The digest over real NATS: what it shows, how it groups and ranks, what it leaves out."""

from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from fastapi.testclient import TestClient

from services.digests.tests.factories import content, read_digest, reply, section_ids, shown_ids
from shared.events.contracts import (
    ArticleCreated,
    FollowCreated,
    GroupCreated,
    GroupMemberAdded,
    PostDeleted,
    PostUpdated,
    UserRegistered,
)
from shared.ids import new_id, utcnow

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]


def user(handle: str) -> tuple[UUID, UserRegistered]:
    user_id = new_id()
    return user_id, UserRegistered(user_id=user_id, handle=handle, display_name=handle.title())


def follow(follower: UUID, target_type: str, target: object) -> FollowCreated:
    return FollowCreated(follower_id=follower, target_type=target_type, target=str(target))


def test_digest_groups_followed_person_tag_and_group_items_each_once_ranked(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, alice_registered = user("alice")
    bob, bob_registered = user("bob")
    carol, dave = new_id(), new_id()
    guild = new_id()
    bob_post = content(author=bob, tags=("pkm",), hours_ago=2)
    bob_article = content(
        author=bob, model=ArticleCreated, kind="article", group_id=guild, title="Notes", hours_ago=5
    )
    carol_tagged = content(author=carol, tags=("PKM",), hours_ago=3)
    dave_in_guild = content(author=dave, group_id=guild, hours_ago=4)
    publish(
        alice_registered,
        bob_registered,
        GroupCreated(
            group_id=guild, visibility="open", slug="guild", name="The Guild", owner_id=dave
        ),
        follow(alice, "user", bob),
        follow(alice, "tag", "pkm"),
        follow(alice, "group", guild),
        bob_post,
        bob_article,
        carol_tagged,
        dave_in_guild,
    )

    digest = read_digest(client, auth_header(alice, "alice"))

    assert digest["period"] == "daily"
    assert section_ids(digest) == {
        # The article outranks the newer post; bob's tagged post is shown only under bob.
        ("person", str(bob)): [str(bob_article.content_id), str(bob_post.content_id)],
        ("group", str(guild)): [str(dave_in_guild.content_id)],
        ("tag", "pkm"): [str(carol_tagged.content_id)],
    }
    assert [s["reason"] for s in digest["sections"]] == ["person", "group", "tag"]
    assert digest["total_items"] == 4
    assert len(set(shown_ids(digest))) == 4
    person, group, tag = digest["sections"]
    assert person["label"] == "Bob (@bob)"
    assert group["label"] == "The Guild"
    assert tag["label"] == "#pkm"
    article = person["items"][0]
    assert article["kind"] == "article"
    assert article["title"] == "Notes"
    assert article["author_handle"] == "bob"
    assert article["why"] == "by Bob (@bob), whom you follow; an article"
    assert group["items"][0]["why"] == "posted in The Guild, a group you follow"
    assert tag["items"][0]["tags"] == ["pkm"]


def test_digest_excludes_own_deleted_and_out_of_period_items(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    own = content(author=alice, tags=("pkm",))
    deleted = content(author=bob, tags=("pkm",))
    too_old = content(author=bob, tags=("pkm",), hours_ago=30)
    fresh = content(author=bob, tags=("pkm",), hours_ago=2)
    publish(
        follow(alice, "tag", "pkm"),
        follow(alice, "user", alice),  # a self-follow must not bring one's own items in
        own,
        deleted,
        too_old,
        fresh,
        PostDeleted(
            content_id=deleted.content_id,
            kind="post",
            author_id=bob,
            group_id=None,
            visibility="public",
            version=2,
            deleted_at=utcnow(),
        ),
    )

    digest = read_digest(client, auth_header(alice))

    assert shown_ids(digest) == [str(fresh.content_id)]


def test_replies_count_as_thread_activity_and_mentions_boost_rank(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, alice_registered = user("alice")
    bob, carol, erin = new_id(), new_id(), new_id()
    quiet = content(author=bob, hours_ago=1)
    busy = content(author=bob, hours_ago=10)
    mentioning = content(author=bob, hours_ago=20, mentions=("@Alice",))
    old_thread = content(author=bob, hours_ago=72)
    stranger_thread = content(author=erin, hours_ago=30)
    publish(
        alice_registered,
        follow(alice, "user", bob),
        follow(alice, "user", carol),
        quiet,
        busy,
        mentioning,
        old_thread,
        stranger_thread,
        reply(author=carol, to=busy),
        reply(author=erin, to=busy),
        reply(author=alice, to=busy),
        reply(author=erin, to=old_thread, hours_ago=40),  # before the window: not activity
        reply(author=carol, to=stranger_thread, mentions=("alice",)),
    )

    digest = read_digest(client, auth_header(alice, "alice"))

    sections = section_ids(digest)
    assert sections[("person", str(bob))] == [
        str(mentioning.content_id),  # 1 + 4 (mention) + ~0.3
        str(busy.content_id),  # 1 + 1.5 (3 replies) + ~1.2
        str(quiet.content_id),  # 1 + ~1.9
    ]
    # A followed person's reply brings a thread from someone not followed, older than the day.
    assert sections[("person", str(carol))] == [str(stranger_thread.content_id)]
    items = {item["content_id"]: item for s in digest["sections"] for item in s["items"]}
    assert items[str(busy.content_id)]["replies"] == 3
    assert "3 replies in the day" in items[str(busy.content_id)]["why"]
    assert "mentions you" in items[str(mentioning.content_id)]["why"]
    assert "mentions you" in items[str(stranger_thread.content_id)]["why"]
    # Replies are folded into their thread, never listed on their own; a thread with no
    # activity in the window stays out.
    assert len(items) == 4
    assert str(old_thread.content_id) not in items


def test_callers_own_reply_does_not_bring_back_an_old_thread(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    old_thread = content(author=bob, hours_ago=48)
    publish(follow(alice, "user", bob), old_thread, reply(author=alice, to=old_thread))

    assert read_digest(client, auth_header(alice))["sections"] == []


def test_section_is_capped_at_ten_and_counts_the_rest(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    posts = [content(author=bob, hours_ago=1 + hour) for hour in range(12)]
    publish(follow(alice, "user", bob), *posts)

    digest = read_digest(client, auth_header(alice))

    (section,) = digest["sections"]
    assert [item["content_id"] for item in section["items"]] == [
        str(post.content_id) for post in posts[:10]
    ]
    assert section["omitted"] == 2
    assert digest["total_items"] == 10
    assert digest["omitted_items"] == 2


def test_weekly_window_includes_what_daily_leaves_out_and_until_selects_a_past_window(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    today = content(author=bob, hours_ago=2)
    three_days = content(author=bob, hours_ago=60)
    last_month = content(author=bob, hours_ago=8 * 24)
    publish(follow(alice, "user", bob), today, three_days, last_month)
    header = auth_header(alice)

    daily = read_digest(client, header, period="daily")
    weekly = read_digest(client, header, period="weekly")
    until_now = read_digest(client, header, until=utcnow().isoformat())
    two_days_ago = (utcnow() - timedelta(hours=48)).isoformat()
    earlier_day = read_digest(client, header, period="daily", until=two_days_ago)

    assert shown_ids(daily) == [str(today.content_id)]
    assert shown_ids(until_now) == [str(today.content_id)]
    assert sorted(shown_ids(weekly)) == sorted([str(today.content_id), str(three_days.content_id)])
    assert shown_ids(earlier_day) == [str(three_days.content_id)]
    assert earlier_day["until"].startswith(two_days_ago[:16])
    assert weekly["period"] == "weekly"


def test_group_follow_of_open_group_needs_no_membership(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, dave, guild = new_id(), new_id(), new_id()
    item = content(author=dave, group_id=guild)
    publish(
        GroupCreated(group_id=guild, visibility="open", slug="g", name="G", owner_id=dave),
        GroupMemberAdded(group_id=guild, visibility="open", user_id=dave, role="owner"),
        follow(alice, "group", guild),
        item,
    )

    assert shown_ids(read_digest(client, auth_header(alice))) == [str(item.content_id)]


def test_excerpts_and_titles_are_plain_text_never_escaped_html(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    """The README's rule: text fields are plain text; only search `snippet`s are HTML."""
    alice, alice_registered = user("alice")
    bob, bob_registered = user("bob")
    markup = 'Use <b>bold</b> & "quotes" <script>x</script>'
    article = content(
        author=bob, model=ArticleCreated, kind="article", title="<i>A & B</i>", body=markup
    )
    publish(alice_registered, bob_registered, follow(alice, "user", bob), article)
    digest = read_digest(client, auth_header(alice, "alice"))
    item = digest["sections"][0]["items"][0]
    assert item["excerpt"] == markup
    assert item["title"] == "<i>A & B</i>"


def test_a_hidden_item_leaves_the_digest_until_it_is_shown_again(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    rude = content(author=bob, tags=("pkm",))
    kept = content(author=bob, tags=("pkm",), hours_ago=2)
    hidden = rude.model_dump() | {"version": 2, "hidden": True}
    publish(follow(alice, "tag", "pkm"), rude, kept, PostUpdated(**hidden))
    assert shown_ids(read_digest(client, auth_header(alice))) == [str(kept.content_id)]

    shown = rude.model_dump() | {"version": 3, "hidden": False}
    publish(PostUpdated(**shown))
    assert set(shown_ids(read_digest(client, auth_header(alice)))) == {
        str(rude.content_id),
        str(kept.content_id),
    }
