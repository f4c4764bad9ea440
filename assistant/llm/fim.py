"""Fill-in-the-middle formats, detected from the GGUF itself, and the token sequences they need.

llama-cpp-python's `create_completion(suffix=...)` sends token id 0 for prefix, suffix and
middle in 0.3.x, so we build the sequence ourselves from the ids the model really uses. User text
is always tokenized with special-token parsing off, so a file that contains `<|fim_prefix|>`
cannot inject control tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from assistant.llm.gguf import GGUFInfo
from assistant.repo.vetted import EMPTY, NEWLINE, Vetted

Order = Literal["psm", "spm"]
RepoStyle = Literal["qwen", "starcoder"] | None


@dataclass(frozen=True)
class FimFamily:
    """How one model family spells FIM; each role lists the token texts seen in the wild."""

    name: str
    prefix: tuple[str, ...]
    suffix: tuple[str, ...]
    middle: tuple[str, ...]
    order: Order = "psm"
    stops: tuple[str, ...] = ()
    repo_name: str | None = None
    file_sep: str | None = None
    repo_style: RepoStyle = None
    requires: tuple[str, ...] = ()
    """Extra tokens that must exist to tell this family from one with the same FIM texts."""


FAMILIES: tuple[FimFamily, ...] = (
    FimFamily(
        "codegemma",
        ("<|fim_prefix|>",),
        ("<|fim_suffix|>",),
        ("<|fim_middle|>",),
        stops=("<|file_separator|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<eos>"),
        requires=("<|file_separator|>",),
    ),
    FimFamily(
        "qwen",
        ("<|fim_prefix|>",),
        ("<|fim_suffix|>",),
        ("<|fim_middle|>",),
        stops=(
            "<|endoftext|>",
            "<|fim_pad|>",
            "<|file_sep|>",
            "<|repo_name|>",
            "<|im_end|>",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
        ),
        repo_name="<|repo_name|>",
        file_sep="<|file_sep|>",
        repo_style="qwen",
    ),
    FimFamily(
        "starcoder",
        ("<fim_prefix>", "<fim-prefix>"),
        ("<fim_suffix>", "<fim-suffix>"),
        ("<fim_middle>", "<fim-middle>"),
        stops=(
            "<|endoftext|>",
            "<file_sep>",
            "<fim_prefix>",
            "<fim_suffix>",
            "<fim_middle>",
            "<fim_pad>",
            "<repo_name>",
        ),
        repo_name="<repo_name>",
        file_sep="<file_sep>",
        repo_style="starcoder",
    ),
    FimFamily(
        "deepseek",
        ("<｜fim▁begin｜>",),
        ("<｜fim▁hole｜>",),
        ("<｜fim▁end｜>",),
        stops=("<｜end▁of▁sentence｜>", "<|EOT|>", "<｜fim▁begin｜>", "<｜fim▁hole｜>"),
    ),
    FimFamily(
        "codellama",
        ("<PRE>", "▁<PRE>"),
        ("<SUF>", "▁<SUF>"),
        ("<MID>", "▁<MID>"),
        stops=("<EOT>", "▁<EOT>"),
    ),
    FimFamily(
        "codestral",
        ("[PREFIX]",),
        ("[SUFFIX]",),
        (),
        order="spm",
    ),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)


@dataclass(frozen=True)
class FimFormat:
    """The FIM format of one loaded model: token ids, order and stops."""

    family: str
    prefix_id: int
    suffix_id: int
    middle_id: int | None
    order: Order
    stop_ids: frozenset[int]
    source: Literal["metadata", "token text", "config"]
    repo_name_id: int | None = None
    file_sep_id: int | None = None
    repo_style: RepoStyle = None

    def describe(self, tokens: Sequence[str]) -> str:
        def t(i: int | None) -> str:
            return tokens[i] if i is not None and 0 <= i < len(tokens) else "-"

        parts = [t(self.prefix_id), t(self.suffix_id)]
        if self.middle_id is not None:
            parts.append(t(self.middle_id))
        if self.order == "spm":
            parts = [t(self.suffix_id), t(self.prefix_id)]
        return f"{self.family} ({' '.join(parts)}; from {self.source})"


def _vocab_index(tokens: Sequence[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, text in enumerate(tokens):
        index.setdefault(text, i)
    return index


def _find(index: dict[str, int], texts: Sequence[str]) -> int | None:
    for text in texts:
        if text in index:
            return index[text]
    return None


def _finish(
    family: FimFamily | None,
    info: GGUFInfo,
    index: dict[str, int],
    ids: tuple[int, int, int | None],
    source: Literal["metadata", "token text", "config"],
) -> FimFormat:
    pre, suf, mid = ids
    stops = {pre, suf} | ({mid} if mid is not None else set())
    for key in ("eos_token_id", "eot_token_id", "fim_pad_token_id", "fim_rep_token_id",
                "fim_sep_token_id"):  # fmt: skip
        value = info.token_id(key.removesuffix("_token_id"))
        if value is not None:
            stops.add(value)
    for text in family.stops if family else ():
        if text in index:
            stops.add(index[text])
    repo_name = index.get(family.repo_name) if family and family.repo_name else None
    file_sep = index.get(family.file_sep) if family and family.file_sep else None
    repo_name = repo_name if repo_name is not None else info.token_id("fim_rep")
    file_sep = file_sep if file_sep is not None else info.token_id("fim_sep")
    style: RepoStyle = family.repo_style if family else None
    if style is None and repo_name is not None and file_sep is not None:
        style = "qwen"
    # A file separator ends the middle: the model has moved on to another file.
    return FimFormat(
        family=family.name if family else "gguf",
        prefix_id=pre,
        suffix_id=suf,
        middle_id=mid,
        order=family.order if family else "psm",
        stop_ids=frozenset(stops),
        source=source,
        repo_name_id=repo_name if style else None,
        file_sep_id=file_sep if style else None,
        repo_style=style,
    )


def detect_fim(info: GGUFInfo, force: str = "auto") -> FimFormat | None:
    """The model's FIM format, or None when it has no FIM tokens (use emulation).

    Metadata ids (`tokenizer.ggml.fim_pre_token_id`, or the older `prefix_token_id`) win;
    otherwise known token texts are searched. `force` names a family or `emulate`.
    """
    if force == "emulate":
        return None
    tokens = info.tokens
    index = _vocab_index(tokens)
    if force != "auto":
        family = next((f for f in FAMILIES if f.name == force), None)
        if family is None:
            return None
        pre, suf = _find(index, family.prefix), _find(index, family.suffix)
        mid = _find(index, family.middle)
        if pre is None or suf is None or (family.middle and mid is None):
            return None
        return _finish(family, info, index, (pre, suf, mid), "config")

    pre = info.token_id("fim_pre")
    suf = info.token_id("fim_suf")
    mid = info.token_id("fim_mid")
    if pre is None or suf is None:
        pre, suf, mid = info.token_id("prefix"), info.token_id("suffix"), info.token_id("middle")
    if pre is not None and suf is not None:
        text = tokens[pre]
        family = next((f for f in FAMILIES if text in f.prefix and _has(index, f.requires)), None)
        if mid is None and family is not None:
            mid = _find(index, family.middle)
        # Without a middle token only a suffix-first format (Codestral) is usable.
        if mid is not None or (family is not None and family.order == "spm"):
            return _finish(family, info, index, (pre, suf, mid), "metadata")

    for family in FAMILIES:
        if not _has(index, family.requires):
            continue
        pre, suf = _find(index, family.prefix), _find(index, family.suffix)
        mid = _find(index, family.middle)
        if pre is not None and suf is not None and (mid is not None or not family.middle):
            return _finish(family, info, index, (pre, suf, mid), "token text")
    return None


def _has(index: dict[str, int], texts: Sequence[str]) -> bool:
    return all(t in index for t in texts)


@dataclass(frozen=True)
class ContextFile:
    """Another file of the repository, shown to the model before the current one."""

    path: str
    text: Vetted


@dataclass(frozen=True)
class Hole:
    """Where a model fills in text: what comes before and after it, in which file, with which
    context from other files.

    `typed` is the cursor line's text before the cursor. A FIM prompt puts it after the middle
    token (llama.vim and llama-server's `/infill` `prompt` do the same), with `prefix` ending at
    the line's start: typing on a line then changes only the prompt's end, and everything before
    stays in the KV cache. Empty `typed` is the plain layout. The text is `Vetted`: what a model
    sees of a file has passed the privacy and content rules (repo/vetted.py).
    """

    prefix: Vetted
    suffix: Vetted = EMPTY
    path: str = ""
    context: Sequence[ContextFile] = ()
    typed: Vetted = EMPTY

    @property
    def before(self) -> Vetted:
        """All the text before the cursor."""
        return self.prefix + self.typed


def build_fim_tokens(
    fmt: FimFormat,
    tokenize: Callable[[str], list[int]],
    hole: Hole,
    *,
    bos: Sequence[int] = (),
    repo: str | None = None,
) -> list[int]:
    """The exact prompt tokens for one hole.

    `tokenize` must not add BOS nor parse special tokens. Context files come first, in the
    model's repo-level format where it has one, else as path-comment headers in the prefix.
    """
    out = list(bos)
    path, context = hole.path or None, hole.context
    if fmt.repo_style and (context or repo) and fmt.file_sep_id is not None:
        if fmt.repo_name_id is not None:
            name = repo or "repository"
            # Qwen2.5-Coder ends the name with a newline; StarCoder2 runs straight on.
            out += [fmt.repo_name_id, *tokenize(f"{name}\n" if fmt.repo_style == "qwen" else name)]
        for ctx in context:
            out += [fmt.file_sep_id, *tokenize(f"{ctx.path}\n{ctx.text.rstrip()}\n")]
        if fmt.repo_style == "qwen":
            out += [fmt.file_sep_id, *tokenize(f"{path or 'untitled'}\n")]
            head = ""
        else:  # StarCoder2 puts the current file's path inside the prefix.
            out += [fmt.file_sep_id]
            head = f"{path or 'untitled'}\n"
    else:
        head = "".join(path_comment(c.path, c.text) for c in context)
    if fmt.order == "spm":  # the prefix is last already: typing changes only the end
        out += [fmt.suffix_id, *tokenize(hole.suffix), fmt.prefix_id]
        out += tokenize(head + hole.before)
    elif fmt.middle_id is not None:
        out += [fmt.prefix_id, *tokenize(head + hole.prefix), fmt.suffix_id]
        out += [*tokenize(hole.suffix), fmt.middle_id, *tokenize(hole.typed)]
    else:
        out += [fmt.prefix_id, *tokenize(head + hole.before), fmt.suffix_id, *tokenize(hole.suffix)]
    return out


_COMMENT = {
    ".py": "#", ".rb": "#", ".sh": "#", ".bash": "#", ".toml": "#", ".yaml": "#", ".yml": "#",
    ".r": "#", ".pl": "#", ".lua": "--", ".sql": "--", ".hs": "--",
}  # fmt: skip
_GAP = NEWLINE + NEWLINE


def path_comment(path: str, text: Vetted) -> Vetted:
    """A context file as `# path: x` plus its text, for models without a repo-level format."""
    ext = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    mark = _COMMENT.get(ext, "//")
    return Vetted.label(f"{mark} path: {path}\n") + text.rstrip() + _GAP
