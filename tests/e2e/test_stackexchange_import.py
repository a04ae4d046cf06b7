"""`knowflow-admin import stackexchange` through the gateway, on a tiny synthetic dump.

What the API shows afterwards (times, authors, scores, acceptance, comments, tags), that a
second run creates nothing, and that a run that crashes midway is finished by a rerun.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx
import pytest

from deploy.admin import AdminTokens
from deploy.launch import Platform
from deploy.stackexchange_import import ImportReport, Progress, import_dump, read_dump
from shared.settings import Settings

Json = dict[str, Any]

USERS = [
    (3, "Ada Lovelace", "2021-01-02T03:04:05.600"),
    (7, "Grace Hopper", "2021-01-03T10:00:00.000"),
    (9, "Zoë Ünicode!", "2021-01-04T11:00:00.000"),
]
# id, type, parent, owner, created, score, title, tags, accepted
POSTS = [
    (10, 1, None, 3, "2021-02-01T09:00:00.000", 5, "How do stake pools pay?", "|staking|c#|", 12),
    (11, 2, 10, 7, "2021-02-01T10:00:00.000", 2, None, None, None),
    (12, 2, 10, 9, "2021-02-01T11:30:00.000", 7, None, None, None),
    (
        13,
        1,
        None,
        7,
        "2021-02-02T08:00:00.000",
        -1,
        "Is a node the same as a pool?",
        "<nodes>",
        None,
    ),
    (14, 2, 13, 3, "2021-02-02T09:15:00.000", 1, None, None, None),
    (
        15,
        1,
        None,
        9,
        "2021-02-03T08:00:00.000",
        0,
        "Unanswered: what is an epoch?",
        "|epochs|",
        None,
    ),
]
COMMENTS = [
    (100, 10, 7, "2021-02-01T09:30:00.000", "Which pool do you mean?"),
    (101, 12, 3, "2021-02-01T12:00:00.000", "Thanks, that is it."),
    (102, 13, 9, "2021-02-02T08:30:00.000", "Good question & a short comment."),
]
VOTES = [(1, 12, 1, "2021-02-02T00:00:00.000")]  # the acceptance of answer 12


def write_dump(folder: Path) -> Path:
    """A dump in the official XML format: users, posts, comments and votes."""
    folder.mkdir(parents=True)

    def rows(root: str, items: list[dict[str, Any]]) -> str:
        lines = [
            "<row "
            + " ".join(f"{k}={quoteattr(str(v))}" for k, v in row.items() if v is not None)
            + " />"
            for row in items
        ]
        return (
            f'<?xml version="1.0" encoding="utf-8"?>\n<{root}>\n'
            + "\n".join(lines)
            + f"\n</{root}>\n"
        )

    (folder / "Users.xml").write_text(
        rows("users", [{"Id": i, "DisplayName": n, "CreationDate": c} for i, n, c in USERS])
    )
    posts = []
    for pid, kind, parent, owner, created, score, title, tags, accepted in POSTS:
        body = f"<p>Body of <strong>post {pid}</strong> with <code>code</code>.</p>"
        posts.append(
            {
                "Id": pid,
                "PostTypeId": kind,
                "ParentId": parent,
                "AcceptedAnswerId": accepted,
                "CreationDate": created,
                "Score": score,
                "Body": body,
                "OwnerUserId": owner,
                "Title": f"[{folder.name}] {title}" if title else None,
                "Tags": tags,
            }
        )
    (folder / "Posts.xml").write_text(rows("posts", posts))
    (folder / "Comments.xml").write_text(
        rows(
            "comments",
            [
                {"Id": i, "PostId": p, "UserId": u, "CreationDate": c, "Text": t}
                for i, p, u, c, t in COMMENTS
            ],
        )
    )
    (folder / "Votes.xml").write_text(
        rows(
            "votes",
            [{"Id": i, "PostId": p, "VoteTypeId": k, "CreationDate": c} for i, p, k, c in VOTES],
        )
    )
    return folder


@pytest.fixture(scope="module")
def tokens(platform: Platform) -> AdminTokens:
    key = platform.var_dir / "identity" / "jwt-ed25519.pem"
    return AdminTokens(Settings(jwt_private_key_file=key))


@pytest.fixture(scope="module")
def gateway(platform: Platform, tokens: AdminTokens) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{platform.gateway_url}/api/v1",
        timeout=30.0,
        auth=lambda request: _bearer(request, tokens()),
    ) as client:
        yield client


def _bearer(request: httpx.Request, token: str) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {token}"
    return request


def run_import(
    platform: Platform, tokens: AdminTokens, folder: Path, **options: Any
) -> ImportReport:
    return asyncio.run(
        import_dump(read_dump(folder), gateway_url=platform.gateway_url, tokens=tokens, **options)
    )


def questions_by_title(gateway: httpx.Client, site: str, **params: Any) -> dict[str, Json]:
    """This site's questions (each test imports its own), by title without the site's mark."""
    response = gateway.get("/questions", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    mark = f"[{site}] "
    return {
        item["title"].removeprefix(mark): item
        for item in response.json()["items"]
        if item["title"].startswith(mark)
    }


def test_an_import_shows_original_times_authors_scores_acceptance_and_comments(
    platform: Platform, tokens: AdminTokens, gateway: httpx.Client, tmp_path: Path
) -> None:
    folder = write_dump(tmp_path / "alpha")
    report = run_import(platform, tokens, folder)
    assert report.failed == {}
    assert report.created == {
        "user": 3,
        "question": 3,
        "answer": 3,
        "comment": 3,
        "acceptance": 1,
    }
    listed = questions_by_title(gateway, "alpha")
    pools = listed["How do stake pools pay?"]
    assert pools["created_at"].startswith("2021-02-01T09:00:00")
    assert pools["score"] == 5 and pools["answer_count"] == 2
    assert pools["tags"] == ["staking", "csharp"]
    assert pools["has_accepted_answer"] is True
    assert listed["Is a node the same as a pool?"]["score"] == -1

    ada = gateway.get(f"/users/{pools['author_id']}").json()
    assert ada["handle"] == "ada_lovelace_3" and ada["display_name"] == "Ada Lovelace"
    assert ada["created_at"].startswith("2021-01-02T03:04:05")
    assert pools["author_handle"] == "ada_lovelace_3"  # named by the importer's origin

    question = gateway.get(f"/questions/{pools['id']}").json()
    assert "**post 10**" in question["body"] and "`code`" in question["body"]
    assert [c["body"] for c in question["comments"]] == ["Which pool do you mean?"]
    assert question["comments"][0]["created_at"].startswith("2021-02-01T09:30:00")
    answers = gateway.get(f"/questions/{pools['id']}/answers").json()["items"]
    # Accepted first; answer 12 (Zoë's, score 7) was accepted.
    assert [a["score"] for a in answers] == [7, 2]
    assert answers[0]["is_accepted"] is True and question["accepted_answer_id"] == answers[0]["id"]
    zoe = gateway.get(f"/users/{answers[0]['author_id']}").json()
    assert zoe["handle"] == "zoe_unicode_9" == answers[0]["author_handle"]
    assert answers[0]["created_at"].startswith("2021-02-01T11:30:00")
    assert [c["body"] for c in answers[0]["comments"]] == ["Thanks, that is it."]

    unanswered = questions_by_title(gateway, "alpha", unanswered="true")
    assert set(unanswered) == {"Unanswered: what is an epoch?"}


def test_a_second_import_creates_nothing(
    platform: Platform, tokens: AdminTokens, gateway: httpx.Client, tmp_path: Path
) -> None:
    folder = write_dump(tmp_path / "beta")
    first = run_import(platform, tokens, folder)
    assert first.failed == {} and first.total_created == 13
    before = questions_by_title(gateway, "beta")
    again = run_import(platform, tokens, folder)
    assert again.failed == {}
    assert again.total_created == 0
    assert again.existing == first.created
    after = questions_by_title(gateway, "beta")
    assert {t: (q["id"], q["version"], q["answer_count"]) for t, q in after.items()} == {
        t: (q["id"], q["version"], q["answer_count"]) for t, q in before.items()
    }


class CrashAfter:
    """A progress that fails the run after `n` items of a phase, as a crash would."""

    def __init__(self, phase: str, n: int) -> None:
        self.target, self.n, self.current, self.seen = phase, n, "", 0

    def phase(self, name: str, total: int) -> None:
        self.current = name

    def advance(self) -> None:
        if self.current == self.target:
            self.seen += 1
            if self.seen >= self.n:
                raise RuntimeError("crashed midway")


def test_an_import_that_crashes_midway_is_finished_by_a_rerun(
    platform: Platform, tokens: AdminTokens, gateway: httpx.Client, tmp_path: Path
) -> None:
    folder = write_dump(tmp_path / "gamma")
    progress: Progress = CrashAfter("answers", 1)
    with pytest.raises(RuntimeError, match="crashed midway"):
        run_import(platform, tokens, folder, progress=progress, concurrency=1)
    partial = questions_by_title(gateway, "gamma")
    assert sum(q["answer_count"] for q in partial.values()) < 3  # really unfinished
    rerun = run_import(platform, tokens, folder)
    assert rerun.failed == {}
    assert rerun.existing["user"] == 3 and rerun.existing["question"] == 3
    assert rerun.created.get("comment") == 3 and rerun.created.get("acceptance") == 1
    assert rerun.created.get("answer", 0) + rerun.existing.get("answer", 0) == 3
    assert rerun.existing.get("answer", 0) >= 1
    final = run_import(platform, tokens, folder)
    assert final.total_created == 0


def test_an_import_into_a_private_group_is_hidden_from_outsiders(
    platform: Platform, tokens: AdminTokens, gateway: httpx.Client, tmp_path: Path
) -> None:
    folder = write_dump(tmp_path / "delta")
    report = run_import(platform, tokens, folder, group="delta-site", visibility="private")
    assert report.failed == {} and report.group_id is not None
    assert report.importer_id is not None
    owner = {"Authorization": f"Bearer {tokens(report.importer_id)}"}
    response = httpx.get(
        f"{platform.gateway_url}/api/v1/questions",
        params={"group_id": str(report.group_id), "limit": 100},
        headers=owner,
    )
    assert response.status_code == 200, response.text
    inside = {item["title"]: item for item in response.json()["items"]}
    assert len(inside) == 3
    assert all(q["visibility"] == "private" for q in inside.values())
    outsider = httpx.post(
        f"{platform.gateway_url}/api/v1/auth/register",
        json={
            "handle": "outsider",
            "email": "outsider@example.org",
            "password": "a long password of letters",
            "display_name": "Outsider",
        },
    )
    assert outsider.status_code == 201, outsider.text
    headers = {"Authorization": f"Bearer {outsider.json()['access_token']}"}
    some = next(iter(inside.values()))
    assert (
        httpx.get(
            f"{platform.gateway_url}/api/v1/questions/{some['id']}", headers=headers
        ).status_code
        == 404
    )
    again = run_import(platform, tokens, folder, group="delta-site", visibility="private")
    assert again.group_id == report.group_id and again.total_created == 0
