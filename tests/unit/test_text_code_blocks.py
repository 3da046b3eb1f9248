"""tgrelay.text.split_message and fenced code blocks (```...```): a block that fits one message is
never split; a longer one is closed at the cut and reopened, with its language, in the next chunk."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgrelay.text import FENCE, split_message, utf16_len

EMOJI = "\N{GRINNING FACE}"
# A fence with its language tag, as the splitter writes and reads them.
_FENCE_TAG = re.compile(r"```[A-Za-z0-9_+#.-]*")


def balanced(chunk: str) -> bool:
    return chunk.count(FENCE) % 2 == 0


def without_fences(text: str) -> str:
    """The text's non-white-space characters with every fence (and language tag) taken out."""
    return "".join(_FENCE_TAG.sub("", text).split())


def test_a_block_that_fits_moves_whole_to_the_next_chunk():
    code = "```python\ndef f():\n\n    return 1\n```"
    text = "a" * 30 + "\n\n" + code + "\n\nafter"

    chunks = split_message(text, limit=45)

    assert chunks == ["a" * 30, code + "\n\nafter"]


def test_paragraph_breaks_inside_a_block_are_not_used():
    code = "```\n" + "\n\n".join(["x = 1"] * 6) + "\n```"  # blank lines inside the block
    text = "intro words here\n\n" + code

    chunks = split_message(text, limit=len(code) + 5)

    assert chunks == ["intro words here", code]


def test_a_space_outside_a_block_is_preferred_to_cutting_the_block():
    text = "one two three " + "```\nshort code\n```"

    assert split_message(text, limit=20) == ["one two three", "```\nshort code\n```"]


def test_the_fences_delimit_a_block_glued_to_words():
    text = "x" * 10 + "```\ncode\n```" + "y" * 10

    assert split_message(text, limit=16) == ["x" * 10, "```\ncode\n```", "y" * 10]


def test_a_long_block_is_closed_at_a_line_break_and_reopened_with_its_language():
    lines = [f"  line {n:02d}" for n in range(12)]  # 10 characters each
    text = "```python\n" + "\n".join(lines) + "\n```"

    chunks = split_message(text, limit=50)

    assert chunks == [
        "```python\n" + "\n".join(lines[0:3]) + "\n```",
        "```python\n" + "\n".join(lines[3:6]) + "\n```",
        "```python\n" + "\n".join(lines[6:9]) + "\n```",
        "```python\n" + "\n".join(lines[9:12]) + "\n```",
    ]


def test_text_before_a_long_block_shares_its_first_chunk():
    lines = [f"row {n:02d}" for n in range(20)]
    text = "Output:\n```\n" + "\n".join(lines) + "\n```\nDone."

    chunks = split_message(text, limit=40)

    assert chunks[0].startswith("Output:\n```\nrow 00")
    assert chunks[-1].endswith("```\nDone.")
    assert all(utf16_len(chunk) <= 40 and balanced(chunk) for chunk in chunks)
    assert [line for chunk in chunks for line in chunk.split("\n") if line.startswith("row")] == lines


def test_indentation_inside_a_block_survives_the_cut():
    lines = [" " * (n % 4) * 2 + f"step({n})" for n in range(30)]
    text = "```\n" + "\n".join(lines) + "\n```"

    chunks = split_message(text, limit=60)

    assert [line for chunk in chunks for line in chunk.split("\n") if "step" in line] == lines


def test_a_block_line_longer_than_a_chunk_is_cut_at_a_space_then_hard():
    text = "```\n" + " ".join(["token"] * 20) + "\n```"

    chunks = split_message(text, limit=30)

    assert all(utf16_len(chunk) <= 30 and balanced(chunk) for chunk in chunks)
    assert "".join(map(without_fences, chunks)) == without_fences(text)
    assert all("tok\n" not in chunk for chunk in chunks)  # words cut only when no space fits


def test_an_unclosed_block_runs_to_the_end_and_is_reopened():
    text = "```js\n" + "\n".join(f"call({n});" for n in range(20))

    chunks = split_message(text, limit=60)

    assert all(chunk.startswith("```js\n") for chunk in chunks)
    assert all(chunk.endswith("\n```") for chunk in chunks[:-1])
    assert not balanced(chunks[-1])  # left open, as the agent wrote it


def test_astral_characters_in_a_block_are_never_split():
    text = "```\n" + "\n".join([EMOJI * 9] * 10) + "\n```"

    chunks = split_message(text, limit=40)

    for chunk in chunks:
        assert utf16_len(chunk) <= 40 and balanced(chunk)
        chunk.encode("utf-16-le")  # strict: a lone surrogate raises
    assert "".join(map(without_fences, chunks)) == without_fences(text)


def test_the_block_ends_with_its_own_fence_when_only_its_last_line_break_is_left():
    text = "```\n" + "a" * 20 + "\n```" + " tail"

    assert split_message(text, limit=28) == ["```\n" + "a" * 20 + "\n```", "tail"]


@pytest.mark.parametrize("limit", [2, 3, 5, 8])
def test_tiny_limits_still_give_sendable_chunks(limit):
    text = "```python\ncode here\n```"

    chunks = split_message(text, limit)

    assert all(0 < utf16_len(chunk) <= limit for chunk in chunks)
    assert "".join("".join(chunks).split()) == "".join(text.split())


# --- properties -----------------------------------------------------------------------------

_WORD = st.text(
    st.sampled_from(["a", "b", "z", EMOJI, "\N{CJK UNIFIED IDEOGRAPH-4E2D}", "(", ")"]), min_size=1, max_size=30
)
_LINE = st.lists(_WORD, min_size=1, max_size=8).map(" ".join)


@st.composite
def _markdown(draw) -> str:
    """Paragraphs of words and fenced code blocks (with or without a language) of indented lines."""
    parts = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        if draw(st.booleans()):
            language = draw(st.sampled_from(["", "python", "c++", "yaml"]))
            lines = draw(st.lists(st.tuples(st.integers(0, 6), _LINE), min_size=1, max_size=25))
            parts.append(f"```{language}\n" + "\n".join(" " * indent + line for indent, line in lines) + "\n```")
        else:
            parts.append(draw(st.lists(_LINE, min_size=1, max_size=6).map("\n".join)))
    return "\n\n".join(parts)


@settings(max_examples=120, deadline=None)
@given(text=_markdown(), limit=st.integers(min_value=40, max_value=400))
def test_chunks_fit_keep_their_fences_balanced_and_lose_nothing(text, limit):
    chunks = split_message(text, limit)

    for chunk in chunks:
        assert chunk.strip() and utf16_len(chunk) <= limit
        assert balanced(chunk), chunk
        chunk.encode("utf-16-le")
    assert "".join(map(without_fences, chunks)) == without_fences(text)
    if utf16_len(text) <= limit:
        assert chunks == [text]


@settings(max_examples=100, deadline=None)
@given(text=_markdown())
def test_a_block_that_fits_a_message_is_never_split(text):
    limit = 300
    chunks = split_message(text, limit)

    for block in re.findall(r"```.*?```", text, flags=re.DOTALL):
        if utf16_len(block) <= limit:
            assert any(block in chunk for chunk in chunks), block
