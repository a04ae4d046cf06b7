"""A cheap upstream for the benchmark: FastAPI `async def` GETs, no database, no middleware.

It stands in for the posts service so the gateway's own cost shows, not identity's.
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/posts/ping")
async def ping() -> dict[str, bool]:
    """The cheapest FastAPI GET: a constant small JSON body."""
    return {"pong": True}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}
