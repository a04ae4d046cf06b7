"""The model runs offline: after the fetch at setup, nothing reaches for the network.

A child process loads the model the way the service does, embeds content and queries and
searches the vectors, with an audit hook recording every socket connection and name
lookup; where the machine allows it, it runs in a network namespace of its own (no
network at all), so it could not fetch anything even if it tried.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from services.search.tests.conftest import require_embedding_model

ROOT = Path(__file__).resolve().parents[3]
CHILD = r"""
import json, sys
reached = []

def audit(event, args):
    if event in {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request"}:
        reached.append(f"{event} {args[:2]!r}")

sys.addaudithook(audit)
from uuid import uuid4
from services.search.semantic.index import Item, VectorIndex, quantize
from services.search.semantic.service import semantic_for
from shared.settings import Settings

semantic = semantic_for(Settings())
assert semantic.enabled, semantic.reason
vectors = semantic.embedder.embed_passages(["Changing the JWT key", "The cafeteria menu"])
index = VectorIndex(semantic.embedder.dimensions, semantic.model)
ids = [uuid4(), uuid4()]
for content_id, vector in zip(ids, vectors):
    index.put(content_id, Item(1, "post", None, None, True), quantize(vector[None, :]))
query = semantic.query_vector("how do I rotate the signing key")
found = index.nearest(query, [], 1)
print(json.dumps({"reached": reached, "nearest_is_first": found[0][0] == ids[0]}))
"""


def test_the_model_loads_embeds_and_searches_without_touching_the_network() -> None:
    require_embedding_model()
    command = [sys.executable, "-c", CHILD]
    if (
        shutil.which("unshare")
        and subprocess.run(
            ["unshare", "--net", "--map-root-user", "true"], capture_output=True
        ).returncode
        == 0
    ):
        command = ["unshare", "--net", "--map-root-user", *command]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["reached"] == []
    assert outcome["nearest_is_first"]
