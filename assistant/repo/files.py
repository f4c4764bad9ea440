"""Which files of a repository are indexable, and why each other one is not.

Git repositories list tracked plus untracked-not-ignored files (`git ls-files -co
--exclude-standard`); elsewhere a walk honours `.gitignore` files. Every path then passes the
privacy rules, and every file the cheap checks (symlinks, size) before anyone reads it; content
checks (binary, UTF-8, minified) happen when the file is read for indexing.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath

import pathspec

from assistant.repo.git import ls_files
from assistant.repo.privacy import PathRules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepoFile:
    path: str
    """Relative to the repository root, forward slashes."""
    size: int
    mtime_ns: int
    language: str | None


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str


def walk_paths(root: Path) -> list[str]:
    """All files under `root` minus those matched by `.gitignore` files (nested ones included)."""
    found: list[str] = []
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        specs = [(base, spec) for base, spec in specs if rel_dir.startswith(base)]
        gi = Path(dirpath) / ".gitignore"
        if gi.is_file():
            try:
                lines = gi.read_text(encoding="utf-8", errors="replace").splitlines()
                specs.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(lines)))
            except OSError:
                pass

        def ignored(
            rel: str, is_dir: bool, specs: list[tuple[str, pathspec.GitIgnoreSpec]] = specs
        ) -> bool:
            for base, spec in specs:
                sub = rel[len(base) :] + ("/" if is_dir else "")
                if spec.match_file(sub):
                    return True
            return False

        dirnames[:] = sorted(
            d for d in dirnames if d not in (".git", ".assist") and not ignored(rel_dir + d, True)
        )
        found.extend(rel_dir + f for f in filenames if not ignored(rel_dir + f, False))
    return sorted(found)


def list_paths(root: Path, only: set[str] | None = None) -> list[str]:
    """The repository's files (of `only`, when given): git's list in a work tree, else a walk
    that honours `.gitignore` files."""
    paths = ls_files(root, only)
    if paths is None:
        paths = walk_paths(root)
        if only is not None:
            paths = [p for p in paths if p in only]
    return paths


def scan(
    root: Path,
    rules: PathRules,
    max_file_size: int,
    only: set[str] | None = None,
    text_extensions: Iterable[str] = (),
    language_of: Callable[[str], str | None] = lambda _: None,
) -> tuple[list[RepoFile], list[Skip]]:
    """Candidate files with their stat, and the skipped ones with a reason. Reads no content.

    `language_of` names the grammar of a path (the index's table); a file without one is kept
    only when it is text worth searching (code in other languages, docs, config).

    `only` (a watcher batch) limits the listing to those paths: a save in a 10,000-file
    repository then stats one file, not all of them.
    """
    root = root.resolve()
    paths = list_paths(root, only)
    files: list[RepoFile] = []
    skips: list[Skip] = []
    for rel in paths:
        why = rules.reason(rel)
        if why:
            skips.append(Skip(rel, why))
            continue
        full = root / rel
        try:
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                # Listings never descend into linked folders, so only the file itself can be a
                # link: judge it by every name it goes by, and read it only inside the tree.
                resolved = rules.resolve(full)
                if resolved.rel is None:
                    skips.append(Skip(rel, "symlink that leaves the repository"))
                    continue
                why = rules.refusal(resolved)
                if why:
                    skips.append(Skip(rel, why))
                    continue
                try:
                    st = resolved.real.stat()
                except OSError:
                    skips.append(Skip(rel, "symlink that loops or points nowhere"))
                    continue
            if not stat.S_ISREG(st.st_mode):
                skips.append(Skip(rel, "not a regular file"))
                continue
        except FileNotFoundError:
            continue  # listed by git but deleted in the work tree
        except OSError as exc:
            skips.append(Skip(rel, f"cannot stat: {exc.strerror}"))
            continue
        if st.st_size > max_file_size:
            skips.append(Skip(rel, f"too large ({st.st_size} bytes > {max_file_size})"))
            continue
        language = language_of(rel)
        if language is None and not is_text_kind(rel, text_extensions):
            skips.append(Skip(rel, f"not source, config or docs ({PurePath(rel).suffix})"))
            continue
        files.append(RepoFile(rel, st.st_size, st.st_mtime_ns, language))
    return files, skips


# Files without a grammar that are still worth searching as text: code in other languages,
# docs, config. Anything else with an extension (test data such as CPython's `.decTest`,
# pickles, fixtures) is left out; `index.text_extensions` adds more.
_TEXT_EXTENSIONS = """
    .kt .kts .swift .scala .sc .lua .sql .r .pl .pm .hs .ml .mli .fs .fsx .ex .exs .erl .hrl
    .clj .cljs .cljc .dart .groovy .gradle .vue .svelte .astro .m .mm .jl .nim .zig .v .sv
    .vhd .vhdl .asm .s .ps1 .psm1 .bat .cmd .fish .zsh .ksh .tcl .proto .thrift .graphql .gql
    .sol .cu .cuh .f .f90 .for .pas .d .cr .elm .purs .rkt .scm .lisp .el .vim .nix .tf .hcl
    .cmake .mk .mak .dockerfile .jinja .jinja2 .j2 .tmpl .tpl .hbs .mustache .ejs .erb .haml
    .pug .pyi .pyx .pxd .mjs .cjs .mts .cts .h .hh .hxx .inl .ipp .gd .ino .sh .awk .sed
    .md .markdown .rst .txt .adoc .asciidoc .org .tex .texi .rdoc .pod .man .1 .3
    .html .htm .xhtml .css .scss .sass .less .styl .xml .xsd .xsl .xslt .wsdl .plist
    .json .jsonc .json5 .yaml .yml .toml .ini .cfg .conf .properties .in .example .sample
    .service .desktop .spec .bazel .bzl .star .ninja .gn .gni .csproj .sln .props
    .targets .pom .sbt .cabal .gemspec .podspec .rake .ru .editorconfig .gitattributes
"""
TEXT_EXTENSIONS = frozenset(_TEXT_EXTENSIONS.split())


def is_text_kind(rel: str, extra: Iterable[str] = ()) -> bool:
    """Whether a file without a grammar is worth indexing as text (no extension counts: scripts,
    `Makefile`, `README`)."""
    suffix = PurePath(rel).suffix.lower()
    return not suffix or suffix in TEXT_EXTENSIONS or suffix in {e.lower() for e in extra}


def content_problem(data: bytes, max_line_length: int) -> str | None:
    """Why these bytes are not indexable text, or None."""
    if b"\0" in data[:8192]:
        return "binary"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {exc.start})"
    if text:
        lines = text.count("\n") + 1
        longest = max((len(line) for line in text.split("\n")), default=0)
        if longest > max_line_length or (len(text) / lines > max_line_length / 10 and lines > 1):
            return f"minified or generated (a line of {longest} characters)"
    return None
