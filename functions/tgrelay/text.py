"""Text measured the way Telegram measures it, and split into sendable messages."""

import re
from bisect import bisect_left
from dataclasses import dataclass

from tgrelay.telegram_limits import MESSAGE_TEXT_UNITS

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


def split_message(text: str, limit: int = MESSAGE_TEXT_UNITS) -> list[str]:
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


# Entity types whose text is a block of code: a cut inside one is avoided, like a fenced block.
_BLOCK_TYPES = ("pre",)


def split_entities(text: str, entities: list[dict], limit: int = MESSAGE_TEXT_UNITS) -> list[tuple[str, list[dict]]]:
    """Split a rendered message (plain `text` + Bot API MessageEntity dicts, offsets and lengths in
    UTF-16 units) into chunks of at most `limit` UTF-16 units, each with its own entities.

    Cuts where split_message would: the last paragraph break, else line break, else space that
    fits and is not inside a `pre` block; else at the edge of a `pre` block; a block longer than
    a message is cut at a line break (else a space) inside it. An entity crossing a cut is closed
    there and reopened at the start of the next chunk (same type, url, language...), so every
    chunk is complete. White space dropped at a cut shortens the entities that covered it; a
    chunk of only white space is left out (Telegram refuses empty messages). Never separates a
    surrogate pair (cuts fall between code points).
    """
    units = _unit_offsets(text)
    spans = _spans(units, entities)
    blocks = sorted((start, end) for start, end, entity in spans if entity["type"] in _BLOCK_TYPES and end > start)
    chunks: list[tuple[str, list[dict]]] = []
    position = 0
    while units[-1] - units[position] > limit:
        at, resume = _entity_cut(text, units, blocks, position, limit)
        chunks.append(_chunk(text, units, spans, position, at))
        position = resume
    chunks.append(_chunk(text, units, spans, position, len(text)))
    return [(chunk, found) for chunk, found in chunks if chunk.strip()]


def _index_at(units: list[int], offset: int) -> int:
    """The code point index at UTF-16 `offset` (the next one when it falls inside a surrogate pair)."""
    return bisect_left(units, offset)


def _entity_cut(text: str, units: list[int], blocks: list[tuple[int, int]], start: int, limit: int) -> tuple[int, int]:
    """Where the chunk from `start` ends and where the next one begins (code point indexes)."""
    fit = _index_at(units, units[start] + limit + 1) - 1  # the last index with units <= limit
    fit = max(fit, start + 1)

    def inside(position: int) -> tuple[int, int] | None:
        return next(((s, e) for s, e in blocks if s < position < e), None)

    def outside(position: int) -> bool:
        return inside(position) is None

    holding = inside(fit)
    if holding and units[holding[1]] - units[max(holding[0], start)] > limit:
        # The block needs cutting wherever this chunk ends: fill the chunk up to a line break in it.
        cut = _cut_in_block(text, max(holding[0], start), fit)
        if cut is not None:
            return cut
    for boundary in _BOUNDARIES:
        at = _last_boundary(text, boundary, fit, start, outside)
        if at is not None:
            return at, _skip_space(text, at + len(boundary), blocks)
    edges = [edge for block in blocks for edge in block if start < edge <= fit]
    if edges:
        at = max(edges)
        return at, _skip_space(text, at, blocks)
    if holding:
        cut = _cut_in_block(text, max(holding[0], start), fit)
        if cut is not None:
            return cut
    return fit, _skip_space(text, fit, blocks)


def _cut_in_block(text: str, lowest: int, fit: int) -> tuple[int, int] | None:
    """A cut inside a code block between `lowest` and `fit`: after its last line break (kept in
    this chunk, so the next one starts a line with its indentation), else at its last space."""
    at = text.rfind("\n", lowest + 1, fit)
    if at != -1:
        return at + 1, at + 1
    at = text.rfind(" ", lowest + 1, fit)
    if at != -1:
        return at + 1, at + 1
    return None


def _skip_space(text: str, position: int, blocks: list[tuple[int, int]]) -> int:
    """Past the white space at `position` (Telegram trims a message's leading white space), unless
    it is a code block's indentation."""
    if any(start <= position < end for start, end in blocks):
        return position
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _chunk(text: str, units: list[int], spans: list, start: int, end: int) -> tuple[str, list[dict]]:
    """text[start:end] with the part of every entity that falls in it, offsets made relative."""
    base = units[start]
    found = []
    for first, last, entity in spans:
        first, last = max(first, start), min(last, end)
        if last > first:
            found.append({**entity, "offset": units[first] - base, "length": units[last] - units[first]})
    return text[start:end], found


def cut_entities(text: str, entities: list[dict], limit: int) -> tuple[str, list[dict]]:
    """The first `limit` UTF-16 units of a rendered message (at most; a surrogate pair is kept
    whole or left out), with its entities clipped to them."""
    units = _unit_offsets(text)
    end = _index_at(units, limit + 1) - 1
    return _chunk(text, units, _spans(units, entities), 0, max(end, 0))


def last_units(text: str, entities: list[dict], limit: int) -> tuple[str, list[dict]]:
    """The last `limit` UTF-16 units of a rendered message (at most; a surrogate pair is kept
    whole or left out), with its entities clipped to them and their offsets made relative."""
    units = _unit_offsets(text)
    start = _index_at(units, units[-1] - limit)
    return _chunk(text, units, _spans(units, entities), start, len(text))


def _unit_offsets(text: str) -> list[int]:
    """units[i] is the UTF-16 offset of text[i]; units[len(text)] the length in UTF-16 units."""
    units = [0]
    for char in text:
        units.append(units[-1] + (2 if ord(char) > 0xFFFF else 1))
    return units


def _spans(units: list[int], entities: list[dict]) -> list[tuple[int, int, dict]]:
    """Each entity as (first code point index, index past its last, the entity)."""
    return [(_index_at(units, e["offset"]), _index_at(units, e["offset"] + e["length"]), e) for e in entities]
