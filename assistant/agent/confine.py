"""The walls around the agent's tools: which paths it may touch, which writes are always asked,
and file access that a symlink swapped in between check and use cannot redirect.

A path is confined by every name it goes by (as asked, after each symlink, as resolved; see
`PathRules.resolve`): it must lead inside the workspace and no name may be private, excluded or
a tool's own directory. Files are then opened by walking from the workspace root one directory
handle at a time without following links, so another process that swaps a directory for a link
after the check makes the access fail instead of escape.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from assistant.errors import AssistError
from assistant.repo import own_files
from assistant.repo.atomic import write_atomic
from assistant.workspace import Workspace

# Files that tools run or load by themselves (hooks, CI, task runners, build scripts, editor
# and devcontainer configuration, linters that import plugins, environment loaders): writing one
# is never approved in advance, by `--yes` or by "always". A pattern without "/" is matched
# against the file's own name, so `BUILD` (Bazel) does not catch everything under `build/`.
SENSITIVE = (
    # git and hook managers
    ".githooks/", ".husky/", ".pre-commit-config.yaml", ".pre-commit-hooks.yaml",
    ".gitattributes", ".gitmodules", ".gitconfig", ".lfsconfig", "lefthook.yml",
    "lefthook.yaml", ".lefthook.yml", ".lefthook.yaml", "lefthook-local.yml",
    ".lintstagedrc*", "lint-staged.config.*", ".simple-git-hooks*", ".huskyrc*",
    # CI
    ".github/", ".gitlab/", ".gitlab-ci.yml", ".circleci/", ".travis.yml", "Jenkinsfile",
    "azure-pipelines.yml", "azure-pipelines.yaml", ".azure-pipelines/", ".drone.yml",
    ".woodpecker.yml", ".woodpecker/", "appveyor.yml", ".appveyor.yml",
    "bitbucket-pipelines.yml", ".buildkite/", "buildspec.yml", "cloudbuild.yaml",
    "cloudbuild.yml", ".cirrus.yml", "codemagic.yaml",
    # Python
    "pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "noxfile.py", "conftest.py",
    "pytest.ini", "sitecustomize.py", "usercustomize.py", "*.pth", "mypy.ini", ".mypy.ini",
    ".pylintrc", "pylintrc", ".pdbrc", ".pdbrc.py", ".coveragerc", "tasks.py", "fabfile.py",
    "dodo.py", "pavement.py", "conf.py", "Pipfile", "manage.py", "ipython_config.py",
    # JavaScript and friends
    "package.json", ".npmrc", ".yarnrc", ".yarnrc.yml", ".pnpmfile.cjs", ".pnpmfile.js",
    "bunfig.toml", "deno.json", "deno.jsonc", "Gruntfile.js", "Gruntfile.coffee",
    "gulpfile.js", "gulpfile.mjs", "gulpfile.ts", "*.config.js", "*.config.cjs",
    "*.config.mjs", "*.config.ts", "*.config.mts", "*.config.cts", ".eslintrc.js",
    ".eslintrc.cjs", ".prettierrc.js", ".prettierrc.cjs", ".babelrc", ".babelrc.js",
    ".mocharc.js", ".mocharc.cjs", ".stylelintrc.js",
    # build systems
    "Makefile", "makefile", "GNUmakefile", "*.mk", "justfile", ".justfile", "Taskfile.yml",
    "Taskfile.yaml", "Rakefile", "*.rake", "Gemfile", "*.gemspec", "build.rs", "Cargo.toml",
    ".cargo/config.toml", ".cargo/config", "CMakeLists.txt", "*.cmake", "CMakePresets.json",
    "CMakeUserPresets.json", "meson.build", "meson_options.txt", "build.gradle*",
    "settings.gradle*", "gradle.properties", "gradlew*", "gradle/wrapper/", "pom.xml", ".mvn/",
    "build.xml", "Directory.Build.props", "Directory.Build.targets",
    "Directory.Packages.props", "*.csproj", "*.fsproj", "*.vbproj", "*.sln", "WORKSPACE",
    "WORKSPACE.bazel", "MODULE.bazel", "BUILD", "BUILD.bazel", "*.bzl", ".bazelrc",
    "SConstruct", "SConscript", "wscript", "configure", "configure.ac", "Makefile.am",
    "build.zig", "build.sbt", "*.sbt", "mix.exs", "rebar.config", "Setup.hs", "stack.yaml",
    "composer.json", "conanfile.py", "vcpkg.json", "Snakefile", "Earthfile", "Tiltfile",
    "Dockerfile", "Dockerfile.*", "*.dockerfile", "Containerfile", "docker-compose*.yml",
    "docker-compose*.yaml", "compose.yml", "compose.yaml", "Vagrantfile", "Procfile",
    "skaffold.yaml", "netlify.toml", "vercel.json",
    # environments and toolchains
    ".envrc", ".direnv/", ".tool-versions", ".mise.toml", "mise.toml", ".mise/",
    ".rtx.toml", "flake.nix", "shell.nix", "default.nix", "devbox.json", ".assistignore",
    # editors
    ".vscode/", ".idea/", ".devcontainer/", ".devcontainer.json", "*.code-workspace",
    ".zed/", ".helix/", ".fleet/", ".theia/", ".nvim.lua", ".nvimrc", ".exrc", ".vimrc",
    ".dir-locals.el", "*.sublime-project",
)  # fmt: skip
_BY_PATH = pathspec.GitIgnoreSpec.from_lines(p.casefold() for p in SENSITIVE if "/" in p)
_BY_NAME = pathspec.GitIgnoreSpec.from_lines(p.casefold() for p in SENSITIVE if "/" not in p)
MAX_READ_BYTES = 2 * 1024 * 1024


class ToolError(AssistError):
    """A tool call that cannot be done; the message goes back to the model."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "")


@dataclass(frozen=True)
class Place:
    """A confined path: where it is and every name it was reached by."""

    real: Path
    rel: str
    """Relative to the workspace root; "." for the root itself."""
    names: tuple[str, ...]


def confine(ws: Workspace, raw: str) -> Place:
    """`raw` (relative to the root, or absolute) as a place inside the workspace, or ToolError.

    Refuses anything leading outside the workspace, and anything private, excluded or inside
    `.git/`, `.assist/` (in any letter case) by any name it goes by.
    """
    if not raw.strip() or "\0" in raw:
        raise ToolError(f"invalid path {raw!r}")
    resolved = ws.rules.resolve(raw)
    if resolved.rel is None or resolved.names[0].startswith("/"):
        raise ToolError(
            f"{raw}: outside the workspace; only paths inside {ws.rules.root} can be used"
        )
    why = ws.rules.refusal(resolved)
    if why:
        raise ToolError(f"{raw}: not available to the agent: {why}")
    return Place(resolved.real, resolved.rel, resolved.names)


def sensitive_reason(place: Place | str) -> str:
    """Why writing here must always be asked, or "" (judged by every name of the path; a bare
    string is one repository-relative name)."""
    names = place.names if isinstance(place, Place) else (place,)
    shown = place.rel if isinstance(place, Place) else place
    for name in names:
        if name.startswith("/") or name == ".":
            continue
        folded = name.casefold()
        if _BY_PATH.match_file(folded) or _BY_NAME.match_file(PurePosixPath(folded).name):
            return (f"{shown} can make tools run commands later (hooks, CI, build or test "
                    "configuration, editor tasks, environment loaders): approve only if you "
                    "meant this")  # fmt: skip
    return ""


# -- access without following links ------------------------------------------------------------


@contextlib.contextmanager
def directory(root: Path, rel_dir: str, *, create: bool = False) -> Iterator[int]:
    """An open handle of `root/rel_dir`, reached without following any symlink; with `create`,
    missing directories are made on the way."""
    try:
        with own_files.directory(root, rel_dir, create=create) as fd:
            yield fd
    except own_files.LinkRefused as exc:
        if "upwards" in exc.message:
            raise ToolError(exc.message) from None
        raise ToolError(f"{rel_dir}: changed into a link while in use") from None


def read_bytes(root: Path, rel: str, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of the regular file `root/rel`, read with no symlink followed on the way."""
    folder, _, name = rel.rpartition("/")
    with directory(root, folder) as dir_fd:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ToolError(f"{rel}: changed into a link while in use") from None
            raise
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ToolError(f"{rel}: not a regular file")
            if st.st_size > limit:
                raise ToolError(f"{rel}: larger than {limit // 1024} KB; use grep on it")
            return f.read(limit + 1)[:limit]


def write_bytes(root: Path, rel: str, data: bytes) -> None:
    """Replace (or create) `root/rel` atomically, inside directories reached without links."""
    folder, _, name = rel.rpartition("/")
    with directory(root, folder, create=True) as dir_fd:
        write_atomic(Path(name), data, dir_fd=dir_fd)


def remove(root: Path, rel: str) -> None:
    folder, _, name = rel.rpartition("/")
    with directory(root, folder) as dir_fd:
        os.unlink(name, dir_fd=dir_fd)
