"""What cutting secrets out by content costs: `repo.secrets.redact` over every indexable file of
each shared corpus, against tree-sitter parsing plus chunking of the same files, in this process.

    python bench/secrets_cost.py [--corpora /tmp/assist-bench]

Prints one JSON object: per corpus, files, MB, seconds of each, their ratio and secrets found.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

from assistant.index.chunks import make_chunks
from assistant.index.languages import language_for_path
from assistant.index.symbols import extract_symbols
from assistant.repo.files import scan
from assistant.repo.privacy import PathRules
from assistant.repo.secrets import redact

ap = argparse.ArgumentParser()
ap.add_argument("--corpora", default="/tmp/assist-bench")
args = ap.parse_args()
out = {}
for corpus in sorted(Path(args.corpora).iterdir()):
    if not (corpus / ".git").exists():
        continue
    files, _ = scan(corpus, PathRules(corpus), 1_000_000, language_of=language_for_path)
    texts = []
    for f in files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            texts.append((f, (corpus / f.path).read_text(encoding="utf-8")))
    t = time.perf_counter()
    found = 0
    for _, text in texts:
        found += redact(text).count
    red = time.perf_counter() - t
    t = time.perf_counter()
    for f, text in texts:
        syms = extract_symbols(text.encode(), f.language) if f.language else []
        make_chunks(f.path, text, syms)
    parse = time.perf_counter() - t
    out[corpus.name] = {
        "files": len(texts),
        "mb": round(sum(len(x) for _, x in texts) / 1e6, 2),
        "redact_s": round(red, 3),
        "parse_chunk_s": round(parse, 3),
        "ratio": round(red / parse, 3),
        "secrets_found": found,
    }
print(json.dumps(out))
