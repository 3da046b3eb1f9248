"""Text measured the way Telegram measures it, and split into sendable messages."""

TELEGRAM_MESSAGE_LIMIT = 4096

# Preferred places to split a long reply, best first.
_BOUNDARIES = ("\n\n", "\n", " ")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts message length."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_message(text: str, limit: int = TELEGRAM_MESSAGE_LIMIT) -> list[str]:
    """Split `text` into chunks of at most `limit` UTF-16 units.

    Splits at the last paragraph break, else line break, else space that fits;
    cuts mid-word only when a single word is longer than the limit. Python strings
    index code points, so a cut never separates a surrogate pair.
    """
    chunks = []
    rest = text
    while utf16_len(rest) > limit:
        fit = max(_longest_prefix_within(rest, limit), 1)
        cut, skip = fit, 0
        for boundary in _BOUNDARIES:
            # A boundary may start right at `fit`: the chunk before it still fits.
            at = rest.rfind(boundary, 0, fit + len(boundary))
            if at > 0:
                cut, skip = at, len(boundary)
                break
        chunks.append(rest[:cut])
        # Telegram trims a message's leading white space anyway; keeping it would only
        # push the next word over the limit.
        rest = rest[cut + skip :].lstrip()
    if rest.strip():
        chunks.append(rest)
    return [chunk for chunk in chunks if chunk.strip()]


def _longest_prefix_within(text: str, limit: int) -> int:
    """Number of code points of the longest prefix of `text` within `limit` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)
