"""The admin pages' pure parts: chart geometry, the audit filters' times, safe back links."""

from itertools import pairwise
from typing import Any

import pytest

from services.web.charts import (
    BAR_HEIGHT,
    CHART_WIDTH,
    LABEL_WIDTH,
    MAX_BARS,
    ROW_HEIGHT,
    VALUE_WIDTH,
    bar_chart,
    nice_step,
)
from services.web.pages.admin import (
    back_to,
    health_charts,
    hours_text,
    percent_text,
    rfc3339,
    user_ids_in,
    with_done,
)

PLOT_WIDTH = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH


def tag(
    name: str, questions: int, share: float, hours: float | None, holders: int
) -> dict[str, Any]:
    return {
        "tag": name,
        "questions": questions,
        "answered_share": share,
        "median_hours_to_first_answer": hours,
        "median_hours_to_acceptance": None,
        "unanswered": 0,
        "unanswered_older": 0,
        "evidence_holders": holders,
        "accepted_answerers": 0,
        "at_risk": False,
    }


def test_a_bar_is_as_long_as_its_share_of_the_scale() -> None:
    chart = bar_chart(
        id="c",
        title="Answered",
        rows=[("#a", 1.0), ("#b", 0.5), ("#c", 0.0)],
        shown=percent_text,
        scale_max=1.0,
    )
    widths = [bar.width for bar in chart.bars]
    assert widths == [PLOT_WIDTH, PLOT_WIDTH / 2, 0.0]
    assert all(bar.x == LABEL_WIDTH for bar in chart.bars)
    assert [bar.shown for bar in chart.bars] == ["100%", "50%", "0%"]


def test_bars_stack_one_row_apart_and_the_chart_is_as_tall_as_its_rows() -> None:
    chart = bar_chart(id="c", title="t", rows=[("#a", 1.0), ("#b", 2.0), ("#c", 3.0)], shown=str)
    tops = [bar.y for bar in chart.bars]
    assert [later - earlier for earlier, later in pairwise(tops)] == [
        ROW_HEIGHT,
        ROW_HEIGHT,
    ]
    assert all(bar.height == BAR_HEIGHT for bar in chart.bars)
    assert chart.plot_bottom >= tops[-1] + BAR_HEIGHT
    assert chart.height > chart.plot_bottom  # room for the scale under the bars
    # The value's figure sits just after its bar's end, the label before the bars.
    assert all(bar.value_x > bar.x + bar.width for bar in chart.bars)
    assert all(bar.label_x < bar.x for bar in chart.bars)


def test_without_a_given_scale_the_largest_bar_reaches_a_round_number() -> None:
    chart = bar_chart(id="c", title="t", rows=[("#a", 7.0), ("#b", 3.5)], shown=str)
    assert [tick.label for tick in chart.ticks] == ["0", "2", "4", "6", "8"]
    assert chart.bars[0].width == pytest.approx(PLOT_WIDTH * 7 / 8, abs=0.1)
    assert chart.ticks[0].x == LABEL_WIDTH
    assert chart.ticks[-1].x == LABEL_WIDTH + PLOT_WIDTH


def test_a_missing_figure_draws_no_bar_and_reads_not_available() -> None:
    chart = bar_chart(id="c", title="t", rows=[("#a", None), ("#b", 2.0)], shown=hours_text)
    assert chart.bars[0].width == 0.0
    assert chart.bars[0].shown == "n/a"
    assert "#a: n/a" in chart.description


def test_values_beyond_the_scale_are_clipped_and_negative_ones_draw_nothing() -> None:
    chart = bar_chart(
        id="c", title="t", rows=[("#a", 1.7), ("#b", -0.2)], shown=percent_text, scale_max=1.0
    )
    assert [bar.width for bar in chart.bars] == [PLOT_WIDTH, 0.0]


def test_a_chart_of_nothing_has_no_bars_and_says_so() -> None:
    chart = bar_chart(id="c", title="t", rows=[], shown=str)
    assert chart.bars == []
    assert chart.description == "No figures yet."
    assert [tick.x for tick in chart.ticks] == [LABEL_WIDTH, LABEL_WIDTH + PLOT_WIDTH]


def test_long_tag_names_are_shortened_on_the_chart_but_kept_whole_in_its_description() -> None:
    name = "#" + "very-long-tag-name-" * 3
    chart = bar_chart(id="c", title="t", rows=[(name, 1.0)], shown=str)
    assert chart.bars[0].label.endswith("…") and len(chart.bars[0].label) < len(name)
    assert name in chart.description


def test_health_charts_show_the_most_asked_tags_and_warn_where_knowledge_is_thin() -> None:
    items = [tag(f"t{index:02d}", index, 0.9, 2.0, 3) for index in range(MAX_BARS + 5)]
    items.append(tag("fragile", 100, 0.25, 30.0, 1))
    answered, first_answer, bus_factor = health_charts(items, "tags")
    assert len(answered.bars) == MAX_BARS
    assert answered.bars[0].full_label == "#fragile"  # most asked first
    assert "#t00" not in answered.description  # the least asked fall off the chart
    assert answered.bars[0].warn and not answered.bars[1].warn
    assert first_answer.bars[0].warn and first_answer.bars[0].shown == "30.0 h"
    assert bus_factor.bars[0].warn and bus_factor.bars[0].shown == "1 person"
    assert not bus_factor.bars[1].warn
    assert answered.ticks[-1].label == "100%"


@pytest.mark.parametrize(("maximum", "step"), [(0, 1.0), (1, 0.5), (7, 2.0), (40, 10.0)])
def test_a_nice_step_is_one_two_or_five_times_a_power_of_ten(maximum: float, step: float) -> None:
    assert nice_step(maximum) == step


def test_hours_read_as_minutes_hours_or_days() -> None:
    assert [hours_text(value) for value in (None, 0.5, 3.25, 72)] == [
        "n/a",
        "30 min",
        "3.2 h",
        "3.0 d",
    ]


def test_filter_times_are_read_as_utc_and_unreadable_ones_are_left_out() -> None:
    assert rfc3339("2026-12-01T09:30") == "2026-12-01T09:30:00Z"
    assert rfc3339("2026-12-01T09:30:00+01:00") == "2026-12-01T08:30:00Z"
    assert rfc3339("yesterday") is None
    assert rfc3339("") is None


def test_the_audit_page_names_each_person_once() -> None:
    actor = "0190a3f4-0000-7000-8000-000000000001"
    other = "0190a3f4-0000-7000-8000-000000000002"
    entries: list[dict[str, Any]] = [
        {"actor_id": actor, "target": f"user:{other}"},
        {"actor_id": actor, "target": "group:x"},
        {"actor_id": None, "target": "user:not-an-id"},
    ]
    assert user_ids_in(entries) == [actor, other]


def test_a_form_goes_back_only_to_its_own_list() -> None:
    assert back_to("/admin/users?q=ada", "/admin/users") == "/admin/users?q=ada"
    assert back_to("https://elsewhere.example/admin/users", "/admin/users") == "/admin/users"
    assert back_to("/admin/users//elsewhere.example", "/admin/users") == "/admin/users"
    assert back_to(None, "/admin/users") == "/admin/users"
    assert with_done("/admin/users?q=a&done=role", "deactivated") == (
        "/admin/users?q=a&done=deactivated"
    )


def test_a_count_is_never_scaled_in_fractions() -> None:
    assert nice_step(1, whole=True) == 1.0
    assert nice_step(3, whole=True) == 1.0
    assert nice_step(40, whole=True) == 10.0
    chart = bar_chart(id="c", title="t", rows=[("#a", 1.0)], shown=str, whole=True)
    assert [tick.label for tick in chart.ticks] == ["0", "1"]
