"""Where the vectors live: one row per content item in the search service's own database.

Both engines use it (OpenSearch 3.8's k-NN plugin is not in the distribution we can run),
so "which vectors exist" is a database fact, written in the embedding consumer's
transaction and idempotent by the content's version like the keyword index.
"""

from datetime import datetime
from uuid import UUID

from sqlmodel import Field, SQLModel


class SearchVector(SQLModel, table=True):
    __tablename__ = "search_vector"

    content_id: UUID = Field(primary_key=True)
    version: int  # the content's version these vectors were made from
    deleted: bool = False  # a tombstone: an older upsert arriving late stays out
    kind: str = ""
    author_id: UUID | None = None
    group_id: UUID | None = None
    public: bool = False
    created_at: datetime | None = None
    model: str = ""  # the model that made them; another model's vectors are re-made
    digest: str = ""  # of the text embedded: a new version with the same text is not re-embedded
    vectors: bytes = b""  # int8, one row of `dimensions` per chunk of the text
    # When this row was written; every replica's in-memory index follows it.
    changed_at: datetime = Field(index=True)
