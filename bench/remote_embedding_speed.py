"""Embedding through a server (`index.embedding_url`) against the local embedder, same machine.

Starts llama-cpp-python's server on loopback with the same MiniLM GGUF (or uses `--url` for
another server, e.g. `llama-server --embedding` on a GPU box), embeds the same code chunks
through `RemoteEmbedder` at several batch sizes and concurrencies, and through the local
`Embedder`, and prints texts/s and the ratio remote / local as JSON.

    python bench/remote_embedding_speed.py [--texts 400] [--url http://host:port]

On one machine the server competes with nothing but has the same cores, so the ratio measures
the cost of HTTP, JSON and the server's own embedding loop; a real gain needs a server with
its own hardware.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedding_speed import code_chunks

from assistant.index.embeddings import load_embedder
from assistant.index.minilm import default_embedding_model_path
from assistant.index.remote_embeddings import RemoteEmbedder


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_embedding_model_path()),
         "--embedding", "true", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512",
         "--n_batch", "512"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=1).read()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("llama_cpp.server did not start") from None
            time.sleep(0.2)


def rate(embed: object, texts: list[str], per_call: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), per_call):
        embed(texts[i : i + per_call])  # type: ignore[operator]
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=400)
    ap.add_argument("--url", default="")
    ap.add_argument("--configs", default="8x1,64x1,64x4,16x4")
    args = ap.parse_args()
    texts = code_chunks(args.texts, 30)
    proc = None
    url = args.url
    if not url:
        proc, url = start_server()
    try:
        local = load_embedder()
        local.embed(texts[:8])
        out: dict[str, object] = {"texts": len(texts), "cpu_count": os.cpu_count()}
        local_rate = rate(local.embed, texts, 32)
        out["local_texts_per_s"] = round(local_rate, 1)
        local.close()
        runs = []
        for config in args.configs.split(","):
            batch, streams = (int(x) for x in config.split("x"))
            remote = RemoteEmbedder(url, batch=batch, concurrency=streams)
            remote.embed(texts[:4])
            r = rate(remote.embed, texts, remote.rows_per_call)
            runs.append({"batch": batch, "concurrency": streams, "texts_per_s": round(r, 1),
                         "ratio_to_local": round(r / local_rate, 2)})  # fmt: skip
            remote.close()
        out["remote"] = runs
        # A second local run: how much the machine drifted while the remote runs went.
        local = load_embedder()
        out["local_again_texts_per_s"] = round(rate(local.embed, texts, 32), 1)
        print(json.dumps(out, indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
