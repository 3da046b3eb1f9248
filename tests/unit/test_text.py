"""tgrelay.text: Telegram's UTF-16 length and split_message."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tgrelay.telegram_limits import MESSAGE_TEXT_UNITS
from tgrelay.text import split_message, utf16_len

EMOJI = "\N{GRINNING FACE}"  # outside the BMP: 2 UTF-16 units, 1 Python character


def non_whitespace(text: str) -> str:
    return "".join(text.split())


def words_of(chunks: list[str]) -> list[str]:
    return [word for chunk in chunks for word in chunk.split()]


def assert_sendable(chunks: list[str], limit: int = MESSAGE_TEXT_UNITS) -> None:
    for chunk in chunks:
        assert chunk.strip(), "blank chunk"
        assert utf16_len(chunk) <= limit
        chunk.encode("utf-16-le")  # strict: raises on a lone surrogate


def test_utf16_len_counts_astral_characters_twice():
    assert utf16_len("abc") == 3
    assert utf16_len(EMOJI) == 2
    assert utf16_len("\N{LATIN SMALL LETTER E WITH ACUTE}\N{CJK UNIFIED IDEOGRAPH-4E2D}") == 2
    assert utf16_len("a" + EMOJI * 3) == 7


def test_the_limit_is_telegrams():
    assert MESSAGE_TEXT_UNITS == 4096


@pytest.mark.parametrize("text", ["hello", "a" * 4096, EMOJI * 2048, "  padded  "])
def test_text_within_the_limit_is_one_chunk_unchanged(text):
    assert split_message(text) == [text]


@pytest.mark.parametrize("text", ["", " ", "\n\n", " \t\n \r\n"])
def test_blank_text_gives_no_chunks(text):
    assert split_message(text) == []


def test_one_astral_character_over_the_limit_splits():
    chunks = split_message(EMOJI * 2049)

    assert chunks == [EMOJI * 2048, EMOJI]


def test_a_paragraph_break_is_preferred_to_a_line_break_and_a_space():
    text = "A" * 3000 + "\n\n" + "B" * 500 + "\n" + "C" * 500 + " " + "D" * 500

    assert split_message(text) == ["A" * 3000, "B" * 500 + "\n" + "C" * 500 + " " + "D" * 500]


def test_without_a_paragraph_break_a_line_break_is_preferred_to_a_space():
    text = "A" * 3000 + "\n" + "B" * 500 + " " + "C" * 1000

    assert split_message(text) == ["A" * 3000, "B" * 500 + " " + "C" * 1000]


def test_without_line_breaks_the_last_space_that_fits_is_used():
    text = " ".join(["word"] * 1000)  # 4999 characters

    chunks = split_message(text)

    # 819 words are 4094 characters; one more would be 4099.
    assert chunks == [" ".join(["word"] * 819), " ".join(["word"] * 181)]


def test_the_last_paragraph_break_that_fits_is_used():
    paragraphs = [
        f"Paragraph {n}. " + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 12 for n in range(20)
    ]
    text = "\n\n".join(paragraphs)

    chunks = split_message(text)

    assert_sendable(chunks)
    assert words_of(chunks) == text.split()
    # Every chunk is whole paragraphs, and as many as fit.
    joined = [chunk.split("\n\n") for chunk in chunks]
    assert [p for group in joined for p in group] == paragraphs
    for group, next_group in zip(joined, joined[1:], strict=False):
        assert utf16_len("\n\n".join([*group, next_group[0]])) > MESSAGE_TEXT_UNITS


def test_a_word_longer_than_the_limit_is_hard_cut():
    assert split_message("x" * 5000) == ["x" * 4096, "x" * 904]


def test_a_long_word_between_short_ones_is_cut_only_where_it_must():
    text = "before " + "x" * 5000 + " after"

    chunks = split_message(text)

    assert_sendable(chunks)
    assert chunks[0] == "before"
    assert non_whitespace("".join(chunks)) == non_whitespace(text)
    assert chunks[-1].endswith(" after")


@pytest.mark.parametrize("prefix", ["", "a"], ids=["even", "odd"])
def test_emoji_heavy_text_never_splits_a_surrogate_pair(prefix):
    text = prefix + EMOJI * 5000

    chunks = split_message(text)

    assert_sendable(chunks)
    assert "".join(chunks) == text
    assert utf16_len(chunks[0]) == (4095 if prefix else 4096)


def test_emoji_words_split_at_spaces():
    text = " ".join([EMOJI * 7] * 1000)

    chunks = split_message(text)

    assert_sendable(chunks)
    assert words_of(chunks) == text.split()
    assert len(chunks) == 4  # 7000 + 999 units; 273 words (4094 units) per chunk


def test_the_limit_argument_is_honoured():
    assert split_message("aaa bbb ccc", limit=8) == ["aaa bbb", "ccc"]


_CUTS_A_FITTING_WORD = (
    "text.py:27-28: rfind(boundary, 0, fit) misses a break that starts exactly at `fit`, so a chunk that fills "
    "the limit is hard-cut with the break left at the start of the rest; and a break at index 0 is ignored "
    "(`at > 0`), so the next word is then cut mid-word although it fits the limit"
)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("aaaaa bbbbb", 5),
        ("x" * 4096 + " " + "y" * 4096, 4096),
        ("x" * 4095 + "\n\n" + "y" * 4096, 4096),
        ("intro\n\n " + "y" * 4096, 4096),
    ],
    ids=["small", "full-chunk-then-space", "full-chunk-then-paragraph", "indented-paragraph"],
)
def test_a_word_that_fits_is_never_cut(text, limit):
    assert words_of(split_message(text, limit)) == text.split()


def test_a_break_right_after_a_full_chunk_is_used():
    assert split_message("aaa bbb ccc", limit=7) == ["aaa bbb", "ccc"]


# --- properties -----------------------------------------------------------------------------

_CHARS = st.one_of(
    st.sampled_from("abcxyz.,!?-'"),
    st.sampled_from(" \n"),
    st.sampled_from([EMOJI, "\N{CJK UNIFIED IDEOGRAPH-4E2D}", "\N{LATIN SMALL LETTER E WITH ACUTE}", "\t"]),
    # No backticks: a code fence the splitter closes and reopens adds characters
    # (test_text_code_blocks.py checks those texts).
    st.characters(codec="utf-8", exclude_characters="`"),
)


@settings(max_examples=300, deadline=None)
@given(text=st.text(_CHARS, max_size=400), limit=st.integers(min_value=2, max_value=64))
def test_chunks_fit_are_not_blank_and_keep_every_character(text, limit):
    chunks = split_message(text, limit)

    assert_sendable(chunks, limit)
    assert non_whitespace("".join(chunks)) == non_whitespace(text)
    if text.strip() and utf16_len(text) <= limit:
        assert chunks == [text]


_WORD = st.text(st.sampled_from(["a", "b", "z", EMOJI, "\N{CJK UNIFIED IDEOGRAPH-4E2D}"]), min_size=1, max_size=700)
_SEPARATOR = st.sampled_from([" ", "\n", "\n\n", "  ", " \n"])


@st.composite
def _long_text(draw) -> str:
    parts = [draw(_WORD)]
    for _ in range(draw(st.integers(min_value=0, max_value=40))):
        parts += [draw(_SEPARATOR), draw(_WORD)]
    return "".join(parts)


@settings(max_examples=150, deadline=None)
@given(text=_long_text())
def test_long_text_at_telegrams_limit(text):
    chunks = split_message(text)

    assert_sendable(chunks)
    assert non_whitespace("".join(chunks)) == non_whitespace(text)


@st.composite
def _fitting_words(draw) -> tuple[str, list[str], int]:
    """(text, its words, limit): words of at most `limit` units joined by single spaces or line breaks."""
    limit = draw(st.integers(min_value=2, max_value=40))
    word = st.text(st.sampled_from(["w", "q", EMOJI]), min_size=1).filter(lambda w: utf16_len(w) <= limit)
    words = draw(st.lists(word, min_size=1, max_size=30))
    text = words[0] + "".join(draw(st.sampled_from([" ", "\n"])) + w for w in words[1:])
    return text, words, limit


@settings(max_examples=300, deadline=None)
@given(case=_fitting_words())
@example(case=("qqq" + EMOJI + " qqq" + EMOJI, ["qqq" + EMOJI, "qqq" + EMOJI], 5))
def test_words_that_fit_are_never_cut(case):
    text, words, limit = case

    chunks = split_message(text, limit)

    assert_sendable(chunks, limit)
    assert words_of(chunks) == words
