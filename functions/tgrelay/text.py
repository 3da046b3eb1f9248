"""Text measured the way Telegram measures it, and split into sendable messages."""

import re
from dataclasses import dataclass

TELEGRAM_MESSAGE_LIMIT = 4096

# Preferred places to split a long reply, best first.
_BOUNDARIES = ("\n\n", "\n", " ")
# Inside a code block that is too long for one message: a line break, else a space.
_CODE_BOUNDARIES = ("\n", " ")

FENCE = "```"
# What ends a chunk cut inside a code block: the block is closed there and reopened in the next one.
_CLOSE = "\n" + FENCE
# An opening fence with its language tag (Telegram's ```python\n...```); other text after the fence
# is content, and the block is reopened without a language.
_OPENING = re.compile(r"```([A-Za-z0-9_+#.-]{1,32})?\n")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts message length."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_message(text: str, limit: int = TELEGRAM_MESSAGE_LIMIT) -> list[str]:
    """Split `text` into chunks of at most `limit` UTF-16 units.

    Splits at the last paragraph break, else line break, else space that fits and is
    not inside a fenced code block (```...```), else at the edge of a code block: a
    block that fits in one message is never split. A block longer than a message is cut
    at a line break (else a space) inside it: the chunk closes the fence there and the
    next chunk reopens it with the same language tag. A word is cut only when it alone
    is longer than the limit. Python strings index code points, so a cut never separates
    a surrogate pair.
    """
    chunks = []
    rest = text
    while utf16_len(rest) > limit:
        chunk, rest = _next_chunk(rest, limit)
        chunks.append(chunk)
    if rest.strip():
        chunks.append(rest)
    return [chunk for chunk in chunks if chunk.strip()]


@dataclass(frozen=True)
class _Block:
    """A fenced code block of a text: [start, end) with its fences; content from `content` to `close`."""

    start: int
    content: int
    close: int
    end: int
    reopen: str

    def holds(self, position: int) -> bool:
        """A cut at `position` would fall inside this block."""
        return self.start < position < self.end


def _code_blocks(text: str) -> list[_Block]:
    """The fenced code blocks of `text`, in order; an unclosed one runs to the end (as Telegram reads it)."""
    blocks = []
    start = text.find(FENCE)
    while start != -1:
        opening = _OPENING.match(text, start)
        content = opening.end() if opening else start + len(FENCE)
        reopen = f"{FENCE}{opening.group(1) or ''}\n" if opening else f"{FENCE}\n"
        close = text.find(FENCE, content)
        if close == -1:
            blocks.append(_Block(start, content, len(text), len(text), reopen))
            break
        blocks.append(_Block(start, content, close, close + len(FENCE), reopen))
        start = text.find(FENCE, close + len(FENCE))
    return blocks


def _next_chunk(rest: str, limit: int) -> tuple[str, str]:
    """The first chunk of `rest` (which is longer than `limit`) and what remains after it."""
    fit = max(_longest_prefix_within(rest, limit), 1)
    blocks = _code_blocks(rest)

    def outside(position: int) -> bool:
        return not any(block.holds(position) for block in blocks)

    inside = next((block for block in blocks if block.holds(fit)), None)
    if inside is not None and utf16_len(rest[inside.start : inside.end]) > limit:
        # The block needs cutting wherever this chunk ends: fill the chunk up to the cut.
        cut = _cut_inside(rest, inside, limit)
        if cut is not None:
            return cut
    for boundary in _BOUNDARIES:
        at = _last_boundary(rest, boundary, fit, 0, outside)
        if at is not None:
            # Telegram trims a message's leading white space anyway; keeping it would only
            # push the next word over the limit.
            return rest[:at], rest[at + len(boundary) :].lstrip()
    # A code block's fences delimit it even where no white space does.
    edges = [edge for block in blocks for edge in (block.start, block.end) if 0 < edge <= fit]
    if edges:
        at = max(edges)
        return rest[:at], rest[at:].lstrip()
    if inside is not None:
        cut = _cut_inside(rest, inside, limit)
        if cut is not None:
            return cut
    # One word longer than the limit (or a limit too small to close a fence in): cut it.
    return rest[:fit], rest[fit:].lstrip()


def _cut_inside(rest: str, block: _Block, limit: int) -> tuple[str, str] | None:
    """Cut inside `block`: close the fence at the cut, reopen it in what remains."""
    fit = _longest_prefix_within(rest, limit - utf16_len(_CLOSE))
    # Past the opening fence, and far enough that the reopened rest is shorter than this one.
    lowest = max(block.content, len(block.reopen))
    if fit <= lowest:
        return None
    for boundary in _CODE_BOUNDARIES:
        at = _last_boundary(rest, boundary, fit, lowest, lambda _: True)
        if at is not None:
            cut, skip = at, len(boundary)
            break
    else:
        cut, skip = fit, 0
    remainder = rest[cut + skip : block.close]
    if not remainder.strip() and utf16_len(rest[: block.end]) <= limit:
        # Only white space is left of the block: end the chunk with the block's own fence.
        return rest[: block.end], rest[block.end :].lstrip()
    # Inside code, white space at the start of a line is indentation: keep it.
    return rest[:cut] + _CLOSE, block.reopen + rest[cut + skip :]


def _last_boundary(text: str, boundary: str, fit: int, lowest: int, allowed) -> int | None:
    """Index of the last `boundary` after `lowest` where a chunk text[:index] fits (index <= fit)
    and `allowed(index)`; None if there is none."""
    # A boundary may start right at `fit`: the chunk before it still fits.
    at = text.rfind(boundary, 0, fit + len(boundary))
    while at > lowest:
        if allowed(at):
            return at
        at = text.rfind(boundary, 0, at + len(boundary) - 1)
    return None


def _longest_prefix_within(text: str, limit: int) -> int:
    """Number of code points of the longest prefix of `text` within `limit` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)
