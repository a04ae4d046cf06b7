"""The settings pages' pure parts: skills typed as a list, the preferences form as the API
wants it, and where a digest item is shown."""

from starlette.datastructures import FormData

from services.web.pages.settings import (
    item_url,
    preferences_patch,
    shown_preferences,
    skills_of,
    time_zones,
)


def test_skills_are_trimmed_and_repeats_and_blanks_left_out() -> None:
    assert skills_of(" postgres, billing ,, Postgres,kubernetes, ") == [
        "postgres",
        "billing",
        "kubernetes",
    ]
    assert skills_of("") == []


def test_the_preferences_form_becomes_a_patch_of_what_it_names() -> None:
    form = FormData(
        [
            ("channel_mention", "email"),
            ("channel_digest", "off"),
            ("digest_frequency", "weekly"),
            ("digest_hour", "7"),
            ("digest_timezone", "Europe/Berlin"),
            ("quiet", "on"),
            ("quiet_start", "21:30"),
            ("quiet_end", "06:45"),
        ]
    )
    assert preferences_patch(form) == {
        "channels": {"mention": "email", "digest": "off"},
        "digest": {"frequency": "weekly", "hour": 7, "timezone": "Europe/Berlin"},
        "quiet_hours": {"start": "21:30", "end": "06:45"},
    }


def test_quiet_hours_unticked_turn_them_off_and_a_blank_schedule_changes_nothing() -> None:
    patch = preferences_patch(FormData([("quiet_start", "22:00"), ("digest_hour", "x")]))
    assert patch == {"channels": {}, "digest": {}, "quiet_hours": None}


def test_a_refused_form_shows_what_was_sent_over_what_is_kept() -> None:
    current = {
        "channels": {"mention": "inbox", "reply": "inbox"},
        "digest": {"frequency": "daily", "hour": 9, "timezone": "UTC"},
        "quiet_hours": None,
        "version": 3,
    }
    patch = {
        "channels": {"mention": "email"},
        "digest": {"timezone": "Mars/Olympus"},
        "quiet_hours": {"start": "22:00", "end": "07:00"},
    }
    shown = shown_preferences(patch, current)
    assert shown["channels"] == {"mention": "email", "reply": "inbox"}
    assert shown["digest"] == {"frequency": "daily", "hour": 9, "timezone": "Mars/Olympus"}
    assert shown["quiet_hours"] == {"start": "22:00", "end": "07:00"}


def test_digest_items_link_to_the_page_of_their_kind() -> None:
    assert item_url({"kind": "post", "content_id": "p1"}) == "/posts/p1"
    assert item_url({"kind": "question", "content_id": "q1"}) == "/questions/q1"
    assert item_url({"kind": "article", "content_id": "a1"}) == "/articles/a1"
    assert item_url({"kind": "comment", "content_id": "c1"}) is None


def test_time_zones_are_iana_names() -> None:
    zones = time_zones()
    assert "Europe/Berlin" in zones and "UTC" in zones
    assert zones == sorted(zones)
