"""NUL characters: refused as a 422 by every service, before a store sees them.

PostgreSQL text cannot hold NUL (psycopg raises, which was a 500) and SQLite stores it: the
kit refuses it in one place so both stores answer the same.
"""

import uuid

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from sqlmodel import Field, Session, SQLModel, select

from shared.auth import TokenVerifier
from shared.idempotency import IdempotentRoute
from shared.settings import Settings
from shared.testing.fixtures import ServiceClientFactory
from shared.web import ServiceSpec, create_service_app, holds_json_nul

router = APIRouter(route_class=IdempotentRoute)


class Note(SQLModel, table=True):
    __tablename__ = "kit_note"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    text: str


class NoteIn(BaseModel):
    text: str


@router.post("/notes", status_code=201)
def add_note(body: NoteIn, request: Request) -> dict[str, str]:
    with Session(request.app.state.engine) as session:
        session.add(Note(text=body.text))
        session.commit()
    return {"text": body.text}


@router.get("/notes/{text}")
def find_note(text: str, request: Request, like: str = "") -> dict[str, int]:
    with Session(request.app.state.engine) as session:
        found = session.exec(select(Note).where(Note.text == (like or text))).all()
    return {"found": len(found)}


SPEC = ServiceSpec(name="kit", title="kit", routers=[router], tables=[Note])


def kit_app(settings: Settings, verifier: TokenVerifier) -> FastAPI:
    return create_service_app(SPEC, settings=settings, verifier=verifier)


def test_a_nul_in_a_body_path_or_declared_query_is_a_422_and_stores_nothing(
    service_client: ServiceClientFactory,
) -> None:
    with service_client(kit_app, name="kit") as client:
        refused = [
            client.post("/notes", json={"text": "a\x00b"}),
            client.post("/notes", content=b'{"text": "\\u0000"}', headers=JSON),
            client.get("/notes/a%00b"),
            client.get("/notes/a", params={"like": "x\x00"}),
        ]
        for response in refused:
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["errors"][0]["type"] == "string_nul"
        assert client.get("/notes/a").json() == {"found": 0}

        # The six characters `\u0000` are text like any other; an unknown parameter is ignored.
        literal = client.post("/notes", content=b'{"text": "\\\\u0000"}', headers=JSON)
        assert literal.status_code == 201, literal.text
        assert literal.json() == {"text": "\\u0000"}
        assert client.get("/notes/x", params={"like": "\\u0000"}).json() == {"found": 1}
        assert client.get("/notes/x", params={"unknown": "\x00"}).json() == {"found": 0}


JSON = {"content-type": "application/json"}


def test_only_an_unescaped_nul_escape_counts() -> None:
    assert holds_json_nul(b'"\\u0000"')
    assert holds_json_nul(b'"\\\\\\u0000"')  # an escaped backslash, then a NUL
    assert not holds_json_nul(b'"\\\\u0000"')  # an escaped backslash, then text
    assert not holds_json_nul(b'"u0000 \\u0001"')
    assert holds_json_nul(b'"\\\\u0000 \\u0000"')  # the second one is real
