"""Shaping raw model output into the text that belongs at the cursor.

Models run on: past the end of the block, into text the suffix already has, past a bracket
that closes something opened before the prompt. The rules here cut that, and do it while the
text streams so that generation can stop as soon as the completion is whole.
"""

from __future__ import annotations

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_BLOCK_OPENERS = (":", "{", "=>", " do", " then", "->")
_TRAILING_CLOSERS = " \t)]};,:'\"`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _in_string_or_comment(line: str) -> bool:
    """Whether the end of `line` is inside a string or a line comment (roughly, any language)."""
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
        elif line.startswith(("# ", "//"), i) or (c == "#" and not line[:i].strip()):
            return True
        i += 1
    return bool(quote)


def wants_multiline(prefix: str, suffix: str, mode: str = "auto") -> bool:
    """Single line or a block, from the syntax at the cursor.

    A block where the cursor sits on an empty line or right after a block opener (`:`, `{`,
    `=>`) with nothing after it; a single line inside a line that has code after the cursor, or
    inside a string or comment.
    """
    if mode in ("always", "never"):
        return mode == "always"
    before = prefix.rsplit("\n", 1)[-1]
    rest = suffix.split("\n", 1)[0]
    if rest.strip(_TRAILING_CLOSERS):
        return False
    if not before.strip():
        return True
    if _in_string_or_comment(before):
        return False
    return before.rstrip().endswith(_BLOCK_OPENERS)


def open_brackets(text: str) -> list[str]:
    """The stack of brackets still open at the end of `text`, skipping strings and comments."""
    stack: list[str] = []
    quote = ""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif text.startswith(quote, i):
                i += len(quote) - 1
                quote = ""
            elif c == "\n" and len(quote) == 1 and quote != "`":
                quote = ""  # an unterminated one-line string ends at the line
        elif text.startswith(('"""', "'''"), i):
            quote = text[i : i + 3]
            i += 2
        elif c in "'\"`":
            quote = c
        elif text.startswith(("# ", "//"), i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in _OPEN:
            stack.append(c)
        elif c in _CLOSE and stack and stack[-1] == _CLOSE[c]:
            stack.pop()
        i += 1
    return stack


class Shaper:
    """Feed raw model text; read back final pieces; `done` says when to stop generating."""

    def __init__(self, prefix: str, suffix: str, multiline: bool) -> None:
        self.multiline = multiline
        before = prefix.rsplit("\n", 1)[-1]
        self.rest = suffix.split("\n", 1)[0]
        later = suffix.split("\n")[1:] if "\n" in suffix else []
        self.next_line = next((ln.strip() for ln in later if ln.strip()), "")
        opener = before
        if not before.strip():
            lines = prefix.split("\n")[:-1]
            previous = next((ln for ln in reversed(lines) if ln.strip()), "")
            if previous.rstrip().endswith(_BLOCK_OPENERS):
                opener = previous  # an empty first line of a block: the block still counts
        self.opener_indent = _indent(opener)
        if opener.strip():
            # After `def f():` / `{`: the block is everything indented deeper than that line.
            self.block_indent = max(_indent(opener) + 1, len(before))
        else:
            self.block_indent = len(before)
        self.stack = open_brackets(prefix[-4000:])
        self.raw = ""
        self.emitted = ""
        self.text = ""
        self.done = False

    def feed(self, piece: str) -> str:
        self.raw += piece
        shaped, self.done = self._shape(final=False)
        if self.done:
            return ""
        if self.multiline:
            stable = shaped[: shaped.rfind("\n")] if "\n" in shaped else ""
        else:
            stable = shaped[: max(0, len(shaped) - len(self.rest))]
        return self._commit(stable.rstrip())

    def finish(self) -> str:
        shaped, _ = self._shape(final=True)
        if not shaped.startswith(self.emitted):  # cannot happen by construction; never lose text
            shaped = self.emitted
        self.text = shaped
        return self._commit(shaped)

    def _commit(self, stable: str) -> str:
        if len(stable) <= len(self.emitted) or not stable.startswith(self.emitted):
            return ""
        out = stable[len(self.emitted) :]
        self.emitted = stable
        return out

    def _shape(self, *, final: bool) -> tuple[str, bool]:
        text = self.raw.replace("\r\n", "\n")
        done = False
        if not self.multiline:
            if "\n" in text:
                text, done = text[: text.index("\n")], True
        else:
            text, done = self._cut_block(text, final)
        text, cut = self._cut_unmatched(text)
        done = done or cut
        if final or done:
            text = self._drop_suffix_overlap(text)
            text = text.rstrip() if not self.rest.strip() else text
        return text, done

    def _cut_block(self, text: str, final: bool) -> tuple[str, bool]:
        lines = text.split("\n")
        complete = len(lines) if final else len(lines) - 1
        for i in range(1, complete):
            line = lines[i]
            stripped = line.strip()
            if not stripped:
                continue
            if self.next_line and stripped == self.next_line:
                return "\n".join(lines[:i]), True  # the suffix already has this line
            indent = _indent(line)
            if indent < self.block_indent:
                closes = stripped[0] in _CLOSE or stripped in ("end", "fi", "done", "esac")
                if (
                    closes
                    and indent >= self.opener_indent
                    and self.block_indent > self.opener_indent
                ):
                    return "\n".join(lines[: i + 1]), True  # the block's own closer, then stop
                return "\n".join(lines[:i]), True
        return text, False

    def _cut_unmatched(self, text: str) -> tuple[str, bool]:
        """Cut before a closing bracket that closes nothing opened before or inside the text."""
        stack = list(self.stack)
        quote = ""
        for i, c in enumerate(text):
            if quote:
                if c == quote or c == "\n":
                    quote = ""
                continue
            if c in "'\"`":
                quote = c
            elif c in _OPEN:
                stack.append(c)
            elif c in _CLOSE:
                if not stack or stack[-1] != _CLOSE[c]:
                    return text[:i], True
                stack.pop()
        return text, False

    def _drop_suffix_overlap(self, text: str) -> str:
        """`foo(a, b)` before a suffix `)` loses its `)`: the suffix already closes it."""
        rest = self.rest
        for k in range(min(len(text), len(rest)), 0, -1):
            tail = rest[:k]
            if tail.strip() and text.endswith(tail):
                return text[:-k]
        return text
