"""The index on disk: SQLite in WAL mode under `.assist/`, with an FTS5 keyword table.

SQLite is the source of truth for everything, vectors included (the HNSW file is a cache that
can be rebuilt from here). Writers change one file's rows inside one transaction, so a killed
indexer leaves either the old or the new state of each file, never a mix, and readers (the
language server, the TUI) keep querying while a writer works.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistError
from assistant.index.chunks import Chunk
from assistant.index.identifiers import index_terms
from assistant.index.symbols import Symbol

MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        hash TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        language TEXT,
        indexed_at REAL NOT NULL
    );
    CREATE TABLE symbols (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        name TEXT NOT NULL, qualified_name TEXT NOT NULL, kind TEXT NOT NULL,
        signature TEXT NOT NULL, doc TEXT NOT NULL,
        start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, def_line INTEGER NOT NULL,
        parent TEXT
    );
    CREATE INDEX symbols_file ON symbols(file_id);
    CREATE INDEX symbols_name ON symbols(name COLLATE NOCASE);
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        name TEXT NOT NULL, qualified_name TEXT NOT NULL, kind TEXT NOT NULL,
        start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, symbol_start INTEGER NOT NULL,
        signature TEXT NOT NULL, doc TEXT NOT NULL, text TEXT NOT NULL
    );
    CREATE INDEX chunks_file ON chunks(file_id);
    CREATE INDEX chunks_name ON chunks(name COLLATE NOCASE);
    CREATE TABLE vectors (
        chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
        embedder TEXT NOT NULL,
        vector BLOB NOT NULL
    );
    CREATE TABLE skipped (path TEXT PRIMARY KEY, reason TEXT NOT NULL);
    CREATE VIRTUAL TABLE chunk_fts USING fts5(name, path, body, tokenize = 'unicode61');
    """,
    # Document frequencies, so that searches can leave out words that are everywhere.
    "CREATE VIRTUAL TABLE chunk_vocab USING fts5vocab(chunk_fts, 'row');",
]

# BM25 column weights: a match in the symbol's name says most, its path a little more than body.
NAME_WEIGHT, PATH_WEIGHT, BODY_WEIGHT = 4.0, 1.5, 0.1


class CorruptIndex(AssistError):
    """The database file is not a readable SQLite index (a crash of the disk, not of assist:
    assist's own writes are transactions)."""


@dataclass(frozen=True)
class ChunkRow:
    id: int
    path: str
    name: str
    qualified_name: str
    kind: str
    start_line: int
    end_line: int
    symbol_start: int
    signature: str
    doc: str
    text: str


@dataclass(frozen=True)
class FileState:
    id: int
    hash: str
    size: int
    mtime_ns: int


# Bump when the keyword pipeline (identifiers.py, the columns below) changes: the FTS table is
# then rebuilt from the stored chunks on the next `assist index`, with no re-parsing.
FTS_VERSION = "2"


def fts_columns(
    qualified_name: str, path: str, signature: str, doc: str, text: str
) -> tuple[str, str, str]:
    """The three FTS5 columns of a chunk, as space-joined code-aware terms."""
    name = " ".join(index_terms(qualified_name.replace(".", " ")))
    where = " ".join(index_terms(path.replace("/", " ").replace(".", " ")))
    # The signature and doc usually sit inside the text already; count them once.
    extra = [part for part in (signature, doc) if part and part not in text]
    body = " ".join(index_terms("\n".join([*extra, text])))
    return name, where, body


SymbolValues = tuple[str, str, str, str, str, int, int, int, "str | None"]
"""A symbol's columns: name, qualified_name, kind, signature, doc, start, end, def line, parent."""
ChunkValues = tuple[str, str, str, int, int, int, str, str, str]
"""A chunk's columns: name, qualified_name, kind, start, end, symbol_start, signature, doc, text."""


def symbol_values(s: Symbol) -> SymbolValues:
    return (s.name, s.qualified_name, s.kind, s.signature, s.doc, s.start_line, s.end_line,
            s.def_line, s.parent)  # fmt: skip


def chunk_values(c: Chunk) -> ChunkValues:
    return (c.name, c.qualified_name, c.kind, c.start_line, c.end_line, c.symbol_start,
            c.signature, c.doc, c.text)  # fmt: skip


class Store:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if readonly:
                uri = f"file:{path}?mode=ro"
                self.db = sqlite3.connect(
                    uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False
                )
            else:
                self.db = sqlite3.connect(
                    path, timeout=30, isolation_level=None, check_same_thread=False
                )
            self.db.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise CorruptIndex(
                f"{path}: the index database cannot be opened: {exc}",
                "run `assist index`: it sets the damaged file aside and rebuilds the index",
            ) from None

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise AssistError(
                f"{self.path} was written by a newer assist (schema {version})",
                "upgrade assist, or delete .assist/ to rebuild the index",
            )
        if version == len(MIGRATIONS) or self.readonly:
            return
        with self.transaction():
            version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
            for i in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {i + 1}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- files ------------------------------------------------------------------------------

    def file_states(self) -> dict[str, FileState]:
        rows = self.db.execute("SELECT path, id, hash, size, mtime_ns FROM files")
        return {r[0]: FileState(r[1], r[2], r[3], r[4]) for r in rows}

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        self.db.execute(
            "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path)
        )

    def delete_file(self, path: str) -> list[int]:
        """Remove a file's rows; returns the ids of its chunks (for the vector index)."""
        row = self.db.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            return []
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE file_id = ?", row)]
        self.db.executemany("DELETE FROM chunk_fts WHERE rowid = ?", ((i,) for i in ids))
        self.db.execute("DELETE FROM files WHERE id = ?", row)
        return ids

    def replace_file(
        self,
        path: str,
        *,
        content_hash: str,
        size: int,
        mtime_ns: int,
        language: str | None,
        symbols: Sequence[SymbolValues],
        chunks: Sequence[ChunkValues],
        keywords: Sequence[tuple[str, str, str]],
    ) -> list[int]:
        """Write one file's new rows (call inside `transaction()`); returns removed chunk ids.

        Rows come as `symbol_values` / `chunk_values` tuples: worker processes send them, and
        plain tuples pickle at twice the speed of the dataclasses.
        """
        removed = self.delete_file(path)
        self.db.execute("DELETE FROM skipped WHERE path = ?", (path,))
        cur = self.db.execute(
            "INSERT INTO files(path, hash, size, mtime_ns, language, indexed_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (path, content_hash, size, mtime_ns, language, time.time()),
        )
        file_id = cur.lastrowid
        self.db.executemany(
            "INSERT INTO symbols(file_id, name, qualified_name, kind, signature, doc, start_line,"
            " end_line, def_line, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(file_id, *values) for values in symbols],
        )
        # Ids come from AUTOINCREMENT's own counter, so a deleted chunk's id (an HNSW label)
        # is never reused; explicit ids let both tables be written with executemany.
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
        first = (int(row[0]) if row else 0) + 1
        self.db.executemany(
            "INSERT INTO chunks(id, file_id, name, qualified_name, kind, start_line, end_line,"
            " symbol_start, signature, doc, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(first + i, file_id, *values) for i, values in enumerate(chunks)],
        )
        self.db.executemany(
            "INSERT INTO chunk_fts(rowid, name, path, body) VALUES (?, ?, ?, ?)",
            [(first + i, *columns) for i, columns in enumerate(keywords)],
        )
        return removed

    def rebuild_fts_if_stale(self) -> bool:
        """Recompute every keyword row when the pipeline changed (call inside a transaction)."""
        if self.meta("fts_version") == FTS_VERSION:
            return False
        self.db.execute("DELETE FROM chunk_fts")
        rows = self.db.execute(
            "SELECT c.id, c.qualified_name, f.path, c.signature, c.doc, c.text"
            " FROM chunks c JOIN files f ON f.id = c.file_id"
        ).fetchall()
        self.db.executemany(
            "INSERT INTO chunk_fts(rowid, name, path, body) VALUES (?, ?, ?, ?)",
            ((r[0], *fts_columns(*r[1:])) for r in rows),
        )
        self.set_meta("fts_version", FTS_VERSION)
        return True

    def record_skips(self, skips: Iterable[tuple[str, str]]) -> None:
        self.db.execute("DELETE FROM skipped")
        self.db.executemany("INSERT OR REPLACE INTO skipped(path, reason) VALUES (?, ?)", skips)

    def skipped(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.execute("SELECT path, reason FROM skipped")]

    # -- vectors ----------------------------------------------------------------------------

    def chunks_without_vectors(self, embedder: str, limit: int, after: int = 0) -> list[ChunkRow]:
        """The next `limit` chunks past id `after` that have no vector: the caller passes the
        last id it got, so a whole run reads the table once instead of once per batch."""
        rows = self.db.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN files f ON f.id = c.file_id"
            " LEFT JOIN vectors v ON v.chunk_id = c.id AND v.embedder = ?"
            " WHERE c.id > ? AND v.chunk_id IS NULL ORDER BY c.id LIMIT ?",
            (embedder, after, limit),
        )
        return [ChunkRow(*r) for r in rows]

    def count_missing_vectors(self, embedder: str) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM chunks c LEFT JOIN vectors v"
            " ON v.chunk_id = c.id AND v.embedder = ? WHERE v.chunk_id IS NULL",
            (embedder,),
        ).fetchone()
        return int(row[0])

    def put_vectors(self, embedder: str, items: Iterable[tuple[int, bytes]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO vectors(chunk_id, embedder, vector) VALUES (?, ?, ?)",
            ((cid, embedder, blob) for cid, blob in items),
        )

    def drop_vectors_except(self, embedder: str) -> None:
        self.db.execute("DELETE FROM vectors WHERE embedder != ?", (embedder,))

    def iter_vectors(self, embedder: str) -> Iterator[tuple[int, bytes]]:
        yield from self.db.execute(
            "SELECT chunk_id, vector FROM vectors WHERE embedder = ? ORDER BY chunk_id",
            (embedder,),
        )

    def vector_ids(self, embedder: str) -> set[int]:
        return {cid for (cid,) in self.db.execute(
            "SELECT chunk_id FROM vectors WHERE embedder = ?", (embedder,))}  # fmt: skip

    def vectors_for(self, embedder: str, ids: Sequence[int]) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            sql = (
                f"SELECT chunk_id, vector FROM vectors WHERE embedder = ? AND chunk_id IN ({marks})"
            )
            out.extend(self.db.execute(sql, (embedder, *part)))
        return out

    # -- queries ----------------------------------------------------------------------------

    def common_terms(self, terms: Sequence[str], share: float) -> set[str]:
        """Those of `terms` found in more than `share` of all chunks."""
        if not terms:
            return set()
        total = self.db.execute("SELECT max(rowid) - min(rowid) + 1 FROM chunks").fetchone()[0]
        marks = ",".join("?" * len(terms))
        try:
            rows = self.db.execute(
                f"SELECT term, doc FROM chunk_vocab WHERE term IN ({marks})", list(terms)
            ).fetchall()
        except sqlite3.OperationalError:
            return set()  # an index opened read-only before this table existed
        return {term for term, doc in rows if total and doc > share * total}

    def keyword(self, query: str, limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score; higher is better) for an FTS5 MATCH expression."""
        if not query:
            return []
        rows = self.db.execute(
            "SELECT rowid, bm25(chunk_fts, ?, ?, ?) AS s FROM chunk_fts WHERE chunk_fts MATCH ?"
            " ORDER BY s LIMIT ?",
            (NAME_WEIGHT, PATH_WEIGHT, BODY_WEIGHT, query, limit),
        )
        return [(int(r[0]), -float(r[1])) for r in rows]

    def chunks(self, ids: Sequence[int], *, text: bool = True) -> dict[int, ChunkRow]:
        """Rows by id; `text=False` leaves `text` empty (ranking needs only the rest)."""
        columns = _CHUNK_COLUMNS if text else _CHUNK_COLUMNS.replace("c.text", "''")
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            for r in self.db.execute(
                f"SELECT {columns} FROM chunks c JOIN files f ON f.id = c.file_id"
                f" WHERE c.id IN ({marks})",
                part,
            ):
                out[r[0]] = ChunkRow(*r)
        return out

    def chunks_named(self, names: Iterable[str], limit: int = 50) -> list[int]:
        """Chunk ids whose symbol name equals one of `names` (case-insensitive)."""
        names = list(names)
        if not names:
            return []
        marks = ",".join("?" * len(names))
        rows = self.db.execute(
            f"SELECT id FROM chunks WHERE name COLLATE NOCASE IN ({marks}) AND kind != 'code'"
            f" LIMIT ?",
            (*names, limit),
        )
        return [int(r[0]) for r in rows]

    def chunk_ids_in(self, path: str) -> list[int]:
        """The chunks of one file, top to bottom."""
        rows = self.db.execute(
            "SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.path = ?"
            " ORDER BY c.start_line",
            (path,),
        )
        return [int(r[0]) for r in rows]

    def symbols_in(self, path: str) -> list[Symbol]:
        rows = self.db.execute(
            "SELECT s.name, s.qualified_name, s.kind, s.signature, s.doc, s.start_line,"
            " s.end_line, s.def_line, s.parent FROM symbols s JOIN files f ON f.id = s.file_id"
            " WHERE f.path = ? ORDER BY s.start_line",
            (path,),
        )
        return [Symbol(*r) for r in rows]

    def find_symbols(self, query: str, limit: int = 100) -> list[tuple[str, Symbol]]:
        """(path, symbol) whose name contains `query` (case-insensitive), best matches first.

        For an editor's symbol picker: exact names, then prefixes, then shorter names.
        """
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.db.execute(
            "SELECT f.path, s.name, s.qualified_name, s.kind, s.signature, s.doc, s.start_line,"
            " s.end_line, s.def_line, s.parent FROM symbols s JOIN files f ON f.id = s.file_id"
            " WHERE s.name LIKE ? ESCAPE '\\'"
            " ORDER BY lower(s.name) = lower(?) DESC, s.name LIKE ? ESCAPE '\\' DESC,"
            " length(s.name), f.path, s.start_line LIMIT ?",
            (pattern, query, pattern[1:], limit),
        )
        return [(r[0], Symbol(*r[1:])) for r in rows]

    def chunk_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def counts(self) -> dict[str, int]:
        def one(sql: str) -> int:
            return int(self.db.execute(sql).fetchone()[0])

        return {
            "files": one("SELECT count(*) FROM files"),
            "symbols": one("SELECT count(*) FROM symbols"),
            "chunks": one("SELECT count(*) FROM chunks"),
            "vectors": one("SELECT count(*) FROM vectors"),
            "skipped": one("SELECT count(*) FROM skipped"),
        }


_CHUNK_COLUMNS = (
    "c.id, f.path, c.name, c.qualified_name, c.kind, c.start_line, c.end_line, c.symbol_start,"
    " c.signature, c.doc, c.text"
)
