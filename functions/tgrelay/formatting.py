"""The agent's formatting rendered the way Telegram renders it: plain text + MessageEntity lists.

A Telegram message is text plus `entities` (Bot API: MessageEntity; `offset` and `length` count
UTF-16 code units of the text). `parse_mode` is only Telegram's way of computing them from
marked-up text on its side; computing them here instead means a message can be split anywhere
(text.split_entities) and no chunk can fail to parse.

Formats (the agent contract's `format`, README: Agent server contract):
  "markdown"   standard Markdown (CommonMark + GFM tables, strikethrough, task lists), rendered by
               the telegramify-markdown library (pulldown-cmark underneath, via pyromark)
  "html"       Telegram's HTML subset, parsed by the rules of Telegram's own parser (below)
  "markdownv2" Telegram's MarkdownV2, likewise
  "markdown_legacy"  Telegram's legacy `parse_mode: "Markdown"`, likewise
  "text"       plain text, no entities

The three Telegram parsers follow TDLib's (td/telegram/MessageEntity.cpp: parse_html,
parse_markdown_v2, parse_markdown), which the Bot API server runs for `parse_mode`, including
its error messages: the fake Bot API (local/tgrelay_local/fakes.py) answers `can't parse
entities` with them. They cover the entity types of the Bot API's "Formatting options"; what
Telegram derives from the text by itself (mentions, hashtags, URLs) is left to Telegram.
"""

from typing import Any

Entity = dict[str, Any]

FORMATS = ("markdown", "html", "markdownv2", "markdown_legacy", "text")
# The Bot API's parse_mode values (matched case-insensitively, as the Bot API server does;
# "none" and "" mean no parsing) and the format each one is.
PARSE_MODE_FORMATS = {
    "html": "html",
    "markdownv2": "markdownv2",
    "markdown": "markdown_legacy",
    "none": "text",
    "": "text",
}

# Entity types the Bot API accepts in `entities` (MessageEntity.type); those Telegram derives
# from the text itself are accepted too and mean the same there.
ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)


class EntityParseError(ValueError):
    """Telegram would refuse the text: `str(error)` is its description after "can't parse entities: "."""


def render(text: str, fmt: str) -> tuple[str, list[Entity]]:
    """`text` in format `fmt` (one of FORMATS) as (plain text, entities with UTF-16 offsets).

    Raises EntityParseError where Telegram would answer "can't parse entities" (html,
    markdownv2, markdown_legacy); "markdown" and "text" always render.
    """
    if fmt == "text":
        return text, []
    if fmt == "markdown":
        # Imported here: only the functions that render pay for the library (cold start).
        import telegramify_markdown

        plain, entities = telegramify_markdown.convert(text, latex_escape=False)
        return plain, [entity.to_dict() for entity in entities]
    if fmt == "html":
        return parse_html(text)
    if fmt == "markdownv2":
        return parse_markdown_v2(text)
    if fmt == "markdown_legacy":
        return parse_markdown(text)
    raise ValueError(f"unknown format {fmt!r}")


def utf16_units(char: str) -> int:
    """UTF-16 code units of one code point (2 outside the Basic Multilingual Plane)."""
    return 2 if ord(char) > 0xFFFF else 1


def _byte_offset(text: str, index: int) -> int:
    """The UTF-8 byte offset of text[index]: Telegram's error messages count bytes."""
    return len(text[:index].encode("utf-8", "surrogatepass"))


# --- HTML (Bot API "HTML style") ---------------------------------------------------------

_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_HTML_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACES = " \t\n\r\f\v"


def _html_entity(text: str, pos: int) -> tuple[str, int] | None:
    """The character an HTML entity at text[pos] == "&" stands for and the index after it;
    None when Telegram keeps the "&" as it is (an unknown name, a bad number)."""
    end = pos + 1
    if text.startswith("#", end):
        end += 1
        hexadecimal = text.startswith("x", end)
        end += hexadecimal
        digits = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
        start = end
        while end < len(text) and text[end] in digits:
            end += 1
        code = int(text[start:end], 16 if hexadecimal else 10) if end > start else 0
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return None
        char = chr(code)
    else:
        while end < len(text) and text[end].isascii() and text[end].isalpha():
            end += 1
        char = _NAMED.get(text[pos + 1 : end], "")
        if not char:
            return None
    return char, end + 1 if text.startswith(";", end) else end


def parse_html(text: str) -> tuple[str, list[Entity]]:
    """Telegram's HTML parse_mode: (plain text, entities); EntityParseError where Telegram refuses."""
    out: list[str] = []
    units = 0
    entities: list[Entity] = []
    # (tag, argument, UTF-16 offset where it began, index in `out` where its text began)
    open_tags: list[tuple[str, str, int, int]] = []
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        if char == "&":
            decoded = _html_entity(text, i)
            if decoded:
                out.append(decoded[0])
                units += utf16_units(decoded[0])
                i = decoded[1]
                continue
        if char != "<":
            out.append(char)
            units += utf16_units(char)
            i += 1
            continue
        begin = i
        i += 1
        if not text.startswith("/", i):
            while i < size and text[i] not in _SPACES and text[i] != ">":
                i += 1
            if i >= size:
                raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            tag = text[begin + 1 : i].lower()
            if tag not in _HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
            argument, i = _html_attributes(text, i, tag, begin)
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, begin)}'
                )
            open_tags.append((tag, argument, units, len(out)))
            i += 1  # the ">"
            continue
        if not open_tags:
            raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
        while i < size and text[i] not in _SPACES and text[i] != ">":
            i += 1
        end_tag = text[begin + 2 : i].lower()
        while i < size and text[i] in _SPACES:
            i += 1
        if i >= size or text[i] != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
        i += 1
        tag, argument, offset, start = open_tags.pop()
        if end_tag and end_tag != tag:
            where = _byte_offset(text, begin)
            raise EntityParseError(
                f'Unmatched end tag at byte offset {where}, expected "</{tag}>", found "</{end_tag}>"'
            )
        if units > offset:
            _close_html_entity(entities, tag, argument, offset, units - offset, "".join(out[start:]))
    if open_tags:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    return "".join(out), _sorted(entities)


def _html_attributes(text: str, i: int, tag: str, begin: int) -> tuple[str, int]:
    """Read a start tag's attributes from text[i] up to its ">"; (the tag's argument, index of ">")."""
    argument = ""
    size = len(text)
    while i < size and text[i] != ">":
        while i < size and text[i] in _SPACES:
            i += 1
        if i < size and text[i] == ">":
            break
        name_start = i
        while i < size and text[i] not in _SPACES and text[i] not in "=>/\"'":
            i += 1
        name = text[name_start:i]
        if not name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(text, begin)}'
            )
        while i < size and text[i] in _SPACES:
            i += 1
        if i >= size or text[i] != "=":
            if i >= size:
                raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
            if tag == "blockquote" and name == "expandable":
                argument = "1"
            continue
        i += 1
        while i < size and text[i] in _SPACES:
            i += 1
        if i >= size:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
        if text[i] not in "'\"":
            token_start = i
            while i < size and (text[i].isascii() and text[i].isalnum() or text[i] in ".-"):
                i += 1
            value = text[token_start:i].lower()
            if i < size and text[i] not in _SPACES and text[i] != ">":
                raise EntityParseError(f"Unexpected end of name token at byte offset {_byte_offset(text, token_start)}")
        else:
            quote = text[i]
            i += 1
            chars = []
            while i < size and text[i] != quote:
                decoded = _html_entity(text, i) if text[i] == "&" else None
                if decoded:
                    chars.append(decoded[0])
                    i = decoded[1]
                else:
                    chars.append(text[i])
                    i += 1
            i += i < size  # the closing quote
            value = "".join(chars)
        if i >= size:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        if tag == "a" and name == "href":
            argument = value
        elif tag == "code" and name == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif tag == "span" and name == "class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif tag == "tg-emoji" and name == "emoji-id":
            argument = value
        elif tag == "blockquote" and name == "expandable":
            argument = "1"
    return argument, i


def _close_html_entity(entities: list[Entity], tag: str, argument: str, offset: int, length: int, inner: str) -> None:
    """Add the entity an HTML element that covered `length` units from `offset` stands for."""
    if tag in _HTML_SIMPLE:
        entities.append({"type": _HTML_SIMPLE[tag], "offset": offset, "length": length})
    elif tag == "tg-emoji":
        if not argument.isdigit() or int(argument) == 0:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entities.append({"type": "custom_emoji", "offset": offset, "length": length, "custom_emoji_id": argument})
    elif tag == "a":
        url = argument or inner
        if _checked_link(url):
            entities.append({"type": "text_link", "offset": offset, "length": length, "url": _checked_link(url)})
    elif tag == "pre":
        last = entities[-1] if entities else None
        if (
            last
            and last["type"] == "code"
            and (last["offset"], last["length"]) == (offset, length)
            and last.get("language")
        ):
            last["type"] = "pre"
        else:
            entities.append({"type": "pre", "offset": offset, "length": length})
    elif tag == "code":
        last = entities[-1] if entities else None
        if last and last["type"] == "pre" and (last["offset"], last["length"]) == (offset, length) and argument:
            last["language"] = argument
        else:
            entities.append({"type": "code", "offset": offset, "length": length, "language": argument})
    elif tag == "blockquote":
        kind = "expandable_blockquote" if argument else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})
    # tg-time without a valid unix attribute adds no entity (as in Telegram); with one we leave
    # the date formatting to Telegram's own text rendering: no entity either.


def _checked_link(url: str) -> str:
    """The URL Telegram would link to ("" for none): TDLib's LinkManager::get_checked_link, roughly:
    http(s), tg and ton links; a bare host gets "http://"."""
    url = url.strip()
    if not url or any(char in url for char in " \n"):
        return ""
    scheme, separator, _ = url.partition("://")
    if not separator:
        return "http://" + url if "." in url or url.startswith("localhost") else ""
    return url if scheme.lower() in ("http", "https", "tg", "ton", "tonsite") else ""


def _sorted(entities: list[Entity]) -> list[Entity]:
    """In Telegram's order: by offset, the longer (outer) first."""
    return sorted(entities, key=lambda entity: (entity["offset"], -entity["length"]))


# --- MarkdownV2 ------------------------------------------------------------------------

_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "blockquote": "BlockQuote",
}


def _reserved(char: str) -> EntityParseError:
    return EntityParseError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    """Telegram's MarkdownV2 parse_mode: (plain text, entities); EntityParseError where Telegram refuses.

    Every character of _MDV2_RESERVED outside an entity's markup must be escaped with "\\";
    inside `code` and ```pre``` only "`" and "\\" are. A "\\" escapes any ASCII character.
    """
    out: list[str] = []
    units = 0
    entities: list[Entity] = []
    # (type, argument, UTF-16 offset, byte offset of the markup, index in `out`)
    stack: list[tuple[str, str, int, int, int]] = []
    quote_open = False
    line_start = True
    i, size = 0, len(text)

    def at(index: int) -> str:
        return text[index] if index < size else ""

    while i < size:
        char = text[i]
        if char == "\\" and 0 < ord(at(i + 1) or "\0") <= 126:
            out.append(text[i + 1])
            units += 1
            line_start = text[i + 1] == "\n"
            i += 2
            continue
        in_code = bool(stack) and stack[-1][0] in ("code", "pre")
        reserved = "`" if in_code else _MDV2_RESERVED + "\n"
        if char not in reserved:
            out.append(char)
            units += utf16_units(char)
            if char != "\r":
                line_start = False
            i += 1
            continue
        top = stack[-1][0] if stack else None
        ends = {
            None: False,
            "bold": char == "*",
            "italic": char == "_" and at(i + 1) != "_",
            "underline": char == "_" and at(i + 1) == "_",
            "strikethrough": char == "~",
            "spoiler": char == "|" and at(i + 1) == "|",
            "code": char == "`",
            "pre": text.startswith("```", i),
            "text_link": char == "]",
            "custom_emoji": char == "]",
            "blockquote": False,
        }[top]
        if quote_open and char == "\n" and at(i + 1) != ">":
            ends = True
        if not ends:
            byte_offset = _byte_offset(text, i)
            argument = ""
            if char == "_":
                kind = "underline" if at(i + 1) == "_" else "italic"
                i += kind == "underline"
            elif char == "*":
                kind = "bold"
            elif char == "~":
                kind = "strikethrough"
            elif char == "|":
                if at(i + 1) != "|":
                    raise _reserved(char)
                kind, i = "spoiler", i + 1
            elif char == "[":
                kind = "text_link"
            elif char == "`":
                if text.startswith("```", i):
                    kind, i = "pre", i + 3
                    language_end = i
                    while language_end < size and text[language_end] not in _SPACES and text[language_end] != "`":
                        language_end += 1
                    if i != language_end and language_end < size and text[language_end] != "`":
                        argument, i = text[i:language_end], language_end
                    if at(i) in "\r\n" and at(i):
                        i += 2 if at(i + 1) in "\r\n" and at(i + 1) and at(i) != at(i + 1) else 1
                    i -= 1
                else:
                    kind = "code"
            elif char == "!":
                if at(i + 1) != "[":
                    raise _reserved(char)
                kind, i = "custom_emoji", i + 1
            elif char == "\n":
                out.append("\n")
                units += 1
                line_start = True
                i += 1
                continue
            elif char == ">":
                if not line_start:
                    raise _reserved(char)
                i += 1
                if quote_open:
                    continue
                quote_open = True
                stack.append(("blockquote", "", units, byte_offset, len(out)))
                continue
            else:
                raise _reserved(char)
            stack.append((kind, argument, units, byte_offset, len(out)))
            i += 1
            continue
        # The end of an entity.
        kind, argument, offset, byte_offset, start = stack.pop()
        expandable = False
        if char == "\n" and kind != "blockquote":
            # "||" right before the line break that ends a quote makes it expandable.
            if not (kind == "spoiler" and byte_offset == _byte_offset(text, i) - 2 and stack):
                raise EntityParseError(f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset {byte_offset}")
            kind, argument, offset, byte_offset, start = stack.pop()
            if kind != "blockquote":
                raise EntityParseError(f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset {byte_offset}")
            expandable = True
        skip = offset == units
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind == "pre":
            i += 2
        elif kind in ("text_link", "custom_emoji"):
            if at(i + 1) != "(":
                if kind == "custom_emoji":
                    raise EntityParseError("The entity must contain a tg://emoji or tg://time URL")
                url = "".join(out[start:])
            else:
                i += 2
                url_start = i
                url_chars = []
                while i < size and text[i] != ")":
                    if text[i] == "\\" and 0 < ord(at(i + 1) or "\0") <= 126:
                        url_chars.append(text[i + 1])
                        i += 2
                        continue
                    url_chars.append(text[i])
                    i += 1
                if i >= size:
                    raise EntityParseError(f"Can't find end of a URL at byte offset {_byte_offset(text, url_start)}")
                url = "".join(url_chars)
            if kind == "custom_emoji":
                emoji_id = url.removeprefix("tg://emoji?id=")
                if not emoji_id.isdigit():
                    raise EntityParseError("Invalid tg://emoji or tg://time URL specified")
                argument = emoji_id
            else:
                argument = _checked_link(url)
                skip = skip or not argument
        elif kind == "blockquote":
            quote_open = False
            out.append(char)
            units += 1
            line_start = True
            skip = False
        if not skip:
            entity = _mdv2_entity(kind, argument, offset, units - offset)
            if expandable:
                entity["type"] = "expandable_blockquote"
            entities.append(entity)
        i += 1
    if quote_open:
        kind = "blockquote"
        if stack and stack[-1][0] == "spoiler" and stack[-1][3] == len(text.encode("utf-8", "surrogatepass")) - 2:
            stack.pop()
            kind = "expandable_blockquote"
        if stack and stack[-1][0] == "blockquote":
            offset = stack.pop()[2]
            if units > offset:
                entities.append({"type": kind, "offset": offset, "length": units - offset})
    if stack:
        kind, _, _, byte_offset, _ = stack[-1]
        raise EntityParseError(f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset {byte_offset}")
    return "".join(out), _sorted(entities)


def _mdv2_entity(kind: str, argument: str, offset: int, length: int) -> Entity:
    entity: Entity = {"type": kind, "offset": offset, "length": length}
    if kind == "pre" and argument:
        entity["language"] = argument
    elif kind == "text_link":
        entity["url"] = argument
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = argument
    return entity


# --- legacy Markdown -------------------------------------------------------------------


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Telegram's legacy `parse_mode: "Markdown"`: *bold*, _italic_, `code`, ```pre```,
    [text](url), no nesting; "\\" escapes only _ * ` [. EntityParseError where Telegram refuses."""
    out: list[str] = []
    units = 0
    entities: list[Entity] = []
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        if char == "\\" and i + 1 < size and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            units += 1
            i += 2
            continue
        if char not in "_*`[":
            out.append(char)
            units += utf16_units(char)
            i += 1
            continue
        begin = i
        end_char = "]" if char == "[" else char
        i += 1
        language = ""
        is_pre = char == "`" and text.startswith("``", i)
        if is_pre:
            i += 2
            language_end = i
            while language_end < size and text[language_end] not in _SPACES and text[language_end] != "`":
                language_end += 1
            if i != language_end and language_end < size and text[language_end] != "`":
                language, i = text[i:language_end], language_end
            if i < size and text[i] in "\r\n":
                i += 2 if i + 1 < size and text[i + 1] in "\r\n" and text[i] != text[i + 1] else 1
        offset = units
        start = len(out)
        while i < size and (text[i] != end_char or (is_pre and not text.startswith("``", i + 1))):
            out.append(text[i])
            units += utf16_units(text[i])
            i += 1
        if i >= size:
            raise EntityParseError(f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}")
        if units > offset:
            length = units - offset
            if char == "[":
                url = "".join(out[start:])
                if i + 1 < size and text[i + 1] == "(":
                    close = text.find(")", i + 2)
                    close = size if close == -1 else close
                    url, i = text[i + 2 : close], close
                if _checked_link(url):
                    entities.append(
                        {"type": "text_link", "offset": offset, "length": length, "url": _checked_link(url)}
                    )
            elif char == "`":
                entity: Entity = {"type": "pre" if is_pre else "code", "offset": offset, "length": length}
                if language:
                    entity["language"] = language
                entities.append(entity)
            else:
                entities.append({"type": "bold" if char == "*" else "italic", "offset": offset, "length": length})
        i += 3 if is_pre else 1
    return "".join(out), _sorted(entities)
