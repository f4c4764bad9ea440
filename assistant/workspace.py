"""`Workspace.open(root)`: the one object a front-end holds.

It wires settings, path rules, the index store, the vector index, the embedder and the model,
each created lazily on first use, so a front-end pays only for what it touches. Everything it
hands out of the index has passed the privacy rules: front-ends never filter paths themselves.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Settings, load_settings
from assistant.errors import AssistError
from assistant.repo.own_files import WriterLock, check_own, private_dir, write_new
from assistant.repo.privacy import PathRules
from assistant.repo.roots import INDEX_DIR, find_root, index_dir_for

__all__ = ["INDEX_DIR", "MAX_READ_BYTES", "Workspace", "find_root"]

if TYPE_CHECKING:
    import numpy as np

    from assistant.index.embeddings import Embedder
    from assistant.index.indexer import IndexReport
    from assistant.index.progress import Progress
    from assistant.index.remote_embeddings import RemoteEmbedder
    from assistant.index.search import Hit, Mode, SearchTimings
    from assistant.index.store import ChunkRow, Store
    from assistant.index.symbols import Symbol
    from assistant.index.vectors import VectorIndex
    from assistant.llm.protocol import Model
    from assistant.repo.vetted import Permit, Vetted
    from assistant.watcher import Batch, Watcher

MAX_READ_BYTES = 4_000_000
"""Largest file `read_text` hands to a preview or a prompt."""


class Workspace:
    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self.rules = self._rules()
        self.index_dir = index_dir_for(root)
        self._stores: dict[int, tuple[threading.Thread, Store]] = {}
        self._vectors: VectorIndex | None = None
        self._embedder: Embedder | RemoteEmbedder | None = None
        self._model: Model | None = None
        self._lock = threading.RLock()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        overrides: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        require_repo: bool = False,
    ) -> Workspace:
        start = Path(path).expanduser() if path else Path.cwd()
        if not start.exists():
            raise AssistError(f"{start}: no such directory", "pass an existing repository path")
        if start.is_file():
            start = start.parent
        root = find_root(start)
        if root is None:
            if require_repo:
                raise AssistError(
                    f"{start}: not inside a git repository",
                    "run it inside a repository, or pass --repo PATH",
                )
            root = start.resolve()
        return cls(root, load_settings(root, env=env, overrides=overrides))

    def _rules(self) -> PathRules:
        index = self.settings.index
        return PathRules(self.root, private=index.private, exclude=index.exclude)

    def reload_rules(self) -> None:
        """Re-read `.assistignore` (the watcher calls this when it changes)."""
        self.rules = self._rules()

    # -- the index -----------------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        return self.index_dir / "index.db"

    @property
    def hnsw_path(self) -> Path:
        return self.index_dir / "vectors.hnsw"

    def has_index(self) -> bool:
        return self.db_path.is_file()

    @property
    def store(self) -> Store:
        """This thread's connection to the index.

        One connection per thread: on a shared one, a reader would see another thread's
        half-written transaction, and a writer's ROLLBACK would abort a reader's statement.
        In WAL mode each reader sees the last commit while the indexer writes.
        """
        from assistant.index.store import Store

        me = threading.get_ident()
        mine = self._stores.get(me)
        if mine is not None:
            return mine[1]
        with self._lock:
            self.own_dir()
            for name in ("index.db", "index.db-wal", "index.db-shm"):
                check_own(self.index_dir / name, create=name == "index.db")
            # Connections of threads that have ended (Textual starts a thread per worker).
            alive = {t.ident for t in threading.enumerate()}
            for ident in [i for i in self._stores if i not in alive]:
                self._stores.pop(ident)[1].close()
            store = Store(self.db_path)
            self._stores[me] = (threading.current_thread(), store)
            return store

    def own_dir(self) -> Path:
        """The index folder, made private (0700) and kept out of `git status`; a link or
        another user's folder there is refused."""
        private_dir(self.index_dir)
        write_new(self.index_dir / ".gitignore", "*\n")
        return self.index_dir

    def writer_lock(self) -> WriterLock:
        self.own_dir()
        return WriterLock(self.index_dir / "writer.lock")

    def index(
        self,
        *,
        vectors: bool | None = None,
        cancel: threading.Event | None = None,
        only: set[str] | None = None,
    ) -> Iterator[Progress | IndexReport]:
        """Bring the index up to date: keywords first, then vectors (unless turned off).

        `only` limits the keyword stage to these repository-relative paths (a watcher batch).
        """
        import time

        from assistant.index.indexer import IndexReport, index_keywords, index_vectors

        with self.writer_lock():
            self._set_aside_if_corrupt()
            report: IndexReport | None = None
            for item in index_keywords(
                self.root, self.store, self.rules, self.settings.index, cancel, only
            ):
                if isinstance(item, IndexReport):
                    report = item
                else:
                    yield item
            assert report is not None
            if vectors if vectors is not None else self.settings.index.vectors:
                started = time.perf_counter()

                def publish(index: VectorIndex) -> None:
                    with self._lock:  # this process's searches use vectors as they come
                        self._vectors = index

                for step in index_vectors(
                    self.store,
                    self.embedder,
                    self.hnsw_path,
                    report.removed_chunk_ids,
                    cancel,
                    publish,
                ):
                    if isinstance(step, int):
                        report.embedded = step
                    else:
                        yield step
                report.vector_seconds = time.perf_counter() - started
            yield report

    def _set_aside_if_corrupt(self) -> None:
        """A database that cannot be opened is renamed `index.db.corrupt-<time>` (kept for a
        look, never deleted) and the index is rebuilt from the files."""
        import logging
        import time

        from assistant.index.store import CorruptIndex

        try:
            self.store.counts()
            return
        except CorruptIndex as exc:
            log = logging.getLogger(__name__)
            log.warning("%s; setting it aside and rebuilding the index", exc.message)
        aside = self.db_path.with_name(f"index.db.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        self.close()
        os.replace(self.db_path, aside)
        for extra in ("-wal", "-shm"):
            Path(str(self.db_path) + extra).unlink(missing_ok=True)
        self.hnsw_path.unlink(missing_ok=True)
        self._vectors = None

    def keep_fresh(
        self,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_indexed: Callable[[IndexReport], None] | None = None,
        on_batch: Callable[[Batch], None] | None = None,
        cancel: threading.Event | None = None,
        vectors: bool | None = None,
        watch: bool = True,
    ) -> Watcher | None:
        """Index, then keep the index fresh: the one call every front-end makes.

        Blocks while the first index runs (call it on a worker thread), reporting each step to
        `on_progress`; then starts a watcher whose batches go to `on_batch` (bulk changes also
        report progress) and returns it, or None when `watch` is off or `cancel` was set.
        """
        from assistant.index.indexer import IndexReport
        from assistant.watcher import Watcher

        for item in self.index(vectors=vectors, cancel=cancel):
            if isinstance(item, IndexReport):
                if on_indexed is not None:
                    on_indexed(item)
            elif on_progress is not None:
                on_progress(item)
        if not watch or (cancel is not None and cancel.is_set()):
            return None
        watcher = Watcher(self, vectors=vectors, on_batch=on_batch, on_progress=on_progress)
        watcher.start()
        return watcher

    # -- reading, always through the privacy rules -------------------------------------------

    def read_text(self, path: str | os.PathLike[str]) -> tuple[str, str]:
        """(repository path, text) of a file inside the repository, after the privacy check."""
        resolved = self.rules.check(self.root / path)
        rel = resolved.rel or str(path)
        try:
            size = resolved.real.stat().st_size
            if size > MAX_READ_BYTES:
                raise AssistError(f"{rel}: too large to show ({size:,} bytes)", "open it yourself")
            return rel, resolved.real.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise AssistError(f"{rel}: no such file", "it may have moved") from None
        except OSError as exc:
            raise AssistError(
                f"{rel}: cannot read: {exc.strerror}", "check its permissions"
            ) from None

    def find_symbols(self, query: str, limit: int = 200) -> list[tuple[str, Symbol]]:
        """(path, symbol) whose name contains `query`, best first; private files left out."""
        if not self.has_index():
            return []
        found = self.store.find_symbols(query, limit=limit)
        return [(path, sym) for path, sym in found if self.rules.allows(path)]

    def symbols_in(self, rel: str) -> list[Symbol]:
        return self.store.symbols_in(rel) if self.rules.allows(rel) else []

    def chunks(self, ids: Iterable[int]) -> list[ChunkRow]:
        """Chunk rows in the order of `ids`, without those of private or excluded files."""
        wanted = list(ids)
        rows = self.store.chunks(wanted)
        return [rows[i] for i in wanted if i in rows and self.rules.allows(rows[i].path)]

    def chunks_in(self, rel: str) -> list[ChunkRow]:
        """The chunks of one file, top to bottom (none for a private or excluded file)."""
        return self.chunks(self.store.chunk_ids_in(rel)) if self.rules.allows(rel) else []

    def chunks_named(self, names: Iterable[str], limit: int = 50) -> list[ChunkRow]:
        """Definitions named one of `names` (any case), private files left out."""
        return self.chunks(self.store.chunks_named(names, limit=limit))

    def permit(self, path: str | os.PathLike[str], *, inside: bool = True) -> Permit:
        """Leave to put text of the file at `path` (on disk, in an editor, staged) into a
        prompt, once every name it goes by passed the privacy rules (and, with `inside`, it is
        in the repository); `Permit.vet` then cuts secrets out by content (repo/vetted.py)."""
        from assistant.repo.vetted import grant

        return grant(self.rules, self.root / path, inside=inside)

    def vet_chunk(self, row: ChunkRow) -> Vetted:
        """An indexed chunk's text for a prompt, cut again: the content rules may have grown
        since it was indexed."""
        from assistant.repo.vetted import vet_indexed

        return vet_indexed(self.rules, row.path, row.text)

    def vet_output(self, text: str) -> Vetted:
        """Text no one file holds (a command's output, a tool's report) for a prompt: the
        content rules only, since there is no path to judge."""
        from assistant.repo.vetted import vet_output

        return vet_output(text)

    # -- models --------------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder | RemoteEmbedder:
        """The team's embedding server when `index.embedding_url` is set, else a local GGUF."""
        from assistant.index.embeddings import load_embedder
        from assistant.index.remote_embeddings import RemoteEmbedder

        with self._lock:
            if self._embedder is None:
                s = self.settings.index
                if s.embedding_url:
                    self._embedder = RemoteEmbedder(
                        s.embedding_url,
                        model=s.embedding_remote_model,
                        api_key=s.embedding_api_key,
                        batch=s.embedding_batch,
                        concurrency=s.embedding_concurrency,
                        max_chars=s.embedding_max_chars,
                        timeout=self.settings.model.timeout,
                    )
                else:
                    path = s.embedding_model
                    self._embedder = load_embedder(Path(path) if path else None)
            return self._embedder

    @property
    def model(self) -> Model:
        from assistant.llm.source import open_model

        with self._lock:
            if self._model is None:
                self._model = open_model(self.settings)
            return self._model

    def use_model(self, path: str) -> None:
        """Switch to the GGUF at `path` for what follows (the TUI's `/model`); the file is
        checked first, and the model in use is dropped only once the new one is known good."""
        from assistant.llm.gguf import read_gguf

        read_gguf(path)  # a clear error for a missing file or one that is not GGUF
        model = dataclasses.replace(self.settings.model, path=str(path), url=None)
        origins = (*self.settings.origins, ("model.path", "/model in the TUI"))
        with self._lock:
            self.settings = dataclasses.replace(self.settings, model=model, origins=origins)
            self._model = None

    def demo_note(self) -> str | None:
        """The line that says the embedded demo model is in use (and how to pick another), or
        None when the user chose a model."""
        from assistant.llm.source import DEMO_LINE, choose_model

        try:
            return DEMO_LINE if choose_model(self.settings).demo else None
        except AssistError:
            return None

    def vector_index(self) -> VectorIndex | None:
        """The saved HNSW index for the recorded embedder, or None if nothing is embedded."""
        from assistant.index.vectors import VectorIndex

        with self._lock:
            if self._vectors is None:
                identity = self.store.meta("embedder")
                dim = self.store.meta("embedder_dim")
                if not identity or not dim:
                    return None
                self._vectors, _ = VectorIndex.open(self.hnsw_path, self.store, identity, int(dim))
            return self._vectors

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: Mode | None = None,
        per_file: int | None = None,
        timings: SearchTimings | None = None,
    ) -> list[Hit]:
        from assistant.index.search import search

        if not self.has_index():
            raise AssistError(f"{self.root}: no index yet", "run `assist index` first")
        chosen: Mode = mode or self.settings.search.mode
        vectors = self.vector_index() if chosen != "keyword" else None
        if chosen == "vector" and vectors is None:
            raise AssistError("no vectors in the index yet", "run `assist index` (with vectors)")

        def embed(text: str) -> np.ndarray:
            recorded, current = self.store.meta("embedder"), self.embedder.identity
            if recorded != current:
                raise AssistError(
                    f"the index's vectors come from {recorded}, not {current}",
                    "run `assist index` to re-embed, or use --mode keyword",
                )
            vector: np.ndarray = self.embedder.embed([text])[0]
            return vector

        return search(
            self.store,
            query,
            k=k or self.settings.search.k,
            mode=chosen,
            per_file=self.settings.search.per_file if per_file is None else per_file,
            fusion=self.settings.search.fusion,
            vectors=vectors,
            embed=embed,
            allow=self.rules.allows,
            timings=timings,
        )

    def close(self) -> None:
        with self._lock:
            for _, store in self._stores.values():
                store.close()
            self._stores.clear()
