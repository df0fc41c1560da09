"""Who a person is: one canonical identity per approver however the name is typed, and the OS user acting.

The two-person rule counts people, not spellings. ``canonical_identity`` turns a claimed name into the key that
is compared:

1. Unicode NFKC (fullwidth, mathematical, circled and other compatibility letters become plain ones);
2. format characters (zero-width space and joiners, soft hyphen, bidi marks) and the Hangul filler letters, which
   render as nothing, are removed; so are combining marks (an accent or an overlay does not make a new person);
3. case is folded (``casefold``: "ALICE", "Alice" and "alice" are one person; "ß" is "ss");
4. whitespace runs become one space; curly apostrophes and dash variants become ``'`` and ``-``;
5. a name whose letters mix scripts (Latin with Cyrillic or Greek, ...) is refused: it is either a look-alike
   attack or a typo nobody can see. Latin with Han, Hiragana, Katakana, Bopomofo or Hangul is allowed, as in
   UTS #39's "highly restrictive" level;
6. an all-Cyrillic or all-Greek name is then mapped letter by letter to the Latin letters it looks like, so "АСЕ"
   typed in Cyrillic capitals is the same person as the Latin "ace".

Only letters, digits (any script's digits count as their value) and `` .-_'@+`` are allowed; anything else
(symbols, emoji, control characters, invisible braille blanks) is refused with an error naming the character.
Letters that pass for plain Latin ones are refused too: Latin letters beyond a-z (small capitals, IPA letters,
clicks, reversed letters; a stroke letter such as "ł" or a ligature such as "æ" counts as its base letters) and
scripts outside ``_NAME_SCRIPTS`` (Cherokee "ᎪᏞᏆᏟᎬ", Lisu, Armenian, ...). Katakana that render as Han ideographs
("ロ" and "口") are one letter in the skeleton.

Two names are the same person when their ``skeleton`` is the same: the canonical identity without separators
(`` .-_'``: "alice smith", "alice.smith" and "alicesmith" are one person) and with the Latin look-alikes of UTS #39
folded together ("0" and "o"; "1", "i" and "l"; "rn" and "m"; "vv" and "w"; "cl" and "d"), so "al1ce" or a
capital "I" typed for an "l" does not make a second approver. The skeleton is only compared, never shown.
"""

from __future__ import annotations

import os
import unicodedata

MAX_NAME_CHARS = 128
ALLOWED_PUNCTUATION = " .-_'@+"


class IdentityError(ValueError):
    """A claimed name cannot be an approver's identity; the message says why."""


# Letters that render as blank space (Hangul fillers) are dropped like format characters.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0")
_PUNCTUATION_VARIANTS = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u02b9": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2043": "-",
})
# Capitals first (folding loses that "Н" looks like "H", not like "н"), then small letters.
_UPPER_LOOKALIKES = str.maketrans({
    # Cyrillic
    "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p", "С": "c", "Т": "t",
    "У": "y", "Х": "x", "Ѕ": "s", "І": "i", "Ј": "j", "Ԛ": "q", "Ԝ": "w", "Һ": "h", "Ү": "y",
    # Greek
    "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n", "Ο": "o",
    "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x", "Ϲ": "c", "Ϳ": "j",
})
_LOWER_LOOKALIKES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "г": "r", "е": "e", "ѕ": "s", "і": "i", "ј": "j", "к": "k", "м": "m", "н": "h",
    "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "ԁ": "d", "ԛ": "q",
    "ԝ": "w", "һ": "h", "ӏ": "l", "ү": "y", "ѵ": "v",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Latin letters that look like other Latin letters
    "ɑ": "a", "ı": "i", "ɡ": "g", "ȷ": "j", "ɩ": "i", "ʟ": "l",
})
# Latin letters beyond a-z that are a base letter with a stroke or a ligature (NFD does not take them apart);
# any other Latin letter (small capitals, IPA letters, clicks, turned and reversed letters) renders as a plain
# letter it is not, and is refused.
_LATIN_LETTERS = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ƀ": "b", "ƶ": "z", "æ": "ae",
                                "œ": "oe", "ð": "d", "þ": "th", "ŀ": "l"})
_PLAIN_LATIN = frozenset("abcdefghijklmnopqrstuvwxyz")
# Scripts a name may be written in: those with letters that do not pass for Latin ones, plus Cyrillic and Greek
# (their look-alikes are mapped above). Scripts whose letters imitate Latin capitals or small letters (Cherokee,
# Lisu, Armenian, Coptic, Canadian syllabics, ...) and any script not listed are refused: fail closed.
_NAME_SCRIPTS = frozenset({
    "LATIN", "CYRILLIC", "GREEK", "HAN", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "ARABIC", "HEBREW",
    "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM", "SINHALA",
    "THAI", "LAO", "ETHIOPIC"})
_COMPATIBLE_SCRIPTS = (frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}), frozenset({"LATIN", "HAN", "BOPOMOFO"}),
                       frozenset({"LATIN", "HAN", "HANGUL"}))
_SCRIPT_ALIASES = {"CJK": "HAN", "IDEOGRAPHIC": "HAN", "KATAKANA-HIRAGANA": "KATAKANA", "HALFWIDTH": "KATAKANA"}


def _script(ch: str) -> str:
    """The script of a letter, from the first word of its Unicode name ("CYRILLIC SMALL LETTER A")."""
    word = unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
    return _SCRIPT_ALIASES.get(word, word)


def display_name(name: object) -> str:
    """The claimed name as it is recorded: NFKC, invisible characters removed, whitespace collapsed."""
    if not isinstance(name, str):
        raise IdentityError(f"an approver's name must be text, got {type(name).__name__}")
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf" and ch not in _INVISIBLE)
    return " ".join(text.split())


def canonical_identity(name: object) -> str:
    """The key two approvals are compared by; raises ``IdentityError`` for a name that cannot be one."""
    shown = display_name(name)
    if len(shown) > MAX_NAME_CHARS:
        raise IdentityError(f"approver name is longer than {MAX_NAME_CHARS} characters")
    decomposed = unicodedata.normalize("NFD", shown.translate(_PUNCTUATION_VARIANTS))
    out: list[str] = []
    scripts: dict[str, str] = {}  # script -> its first letter, to name it in the error
    for ch in decomposed:
        category = unicodedata.category(ch)
        if category in ("Mn", "Me"):
            continue  # accents and overlays
        if category.startswith("L"):
            scripts.setdefault(_script(ch), ch)
            out.append(ch)
        elif category == "Nd":
            out.append(str(unicodedata.decimal(ch)))
        elif ch in ALLOWED_PUNCTUATION:
            out.append(ch)
        else:
            raise IdentityError(f"approver name {shown!r} contains {ch!r} (U+{ord(ch):04X}, "
                                f"{unicodedata.name(ch, 'unnamed')}); use letters, digits and "
                                f"{ALLOWED_PUNCTUATION.strip()!r} only")
    for script, ch in scripts.items():
        if script not in _NAME_SCRIPTS:
            raise IdentityError(f"approver name {shown!r} is written in {script} ({ch!r}, U+{ord(ch):04X}), whose "
                                f"letters can pass for Latin ones; type it in Latin letters")
    if len(scripts) > 1 and not any(scripts.keys() <= allowed for allowed in _COMPATIBLE_SCRIPTS):
        letters = ", ".join(f"{script} {ch!r} (U+{ord(ch):04X})" for script, ch in sorted(scripts.items()))
        raise IdentityError(f"approver name {shown!r} mixes scripts ({letters}); type it in one script")
    text = "".join(out).translate(_UPPER_LOOKALIKES).casefold().translate(_LOWER_LOOKALIKES)
    text = text.translate(_LATIN_LETTERS)
    for ch in text:
        if ch.isalpha() and _script(ch) == "LATIN" and ch not in _PLAIN_LATIN:
            raise IdentityError(f"approver name {shown!r} contains {ch!r} (U+{ord(ch):04X}, "
                                f"{unicodedata.name(ch, 'unnamed')}), which renders as a plain letter it is not; "
                                f"type the plain letter")
    text = unicodedata.normalize("NFC", " ".join(text.split()))
    if not any(ch.isalnum() for ch in text):
        raise IdentityError(f"approver name {shown!r} has no letters or digits")
    return text


_SEPARATORS = str.maketrans("", "", " .-_'")
_SKELETON_LETTERS = str.maketrans({"0": "o", "1": "l", "i": "l"})
_SKELETON_PAIRS = (("rn", "m"), ("vv", "w"), ("cl", "d"))
# Katakana (and Hangul jamo) that render as Han ideographs or as Hiragana: 山ロ is 山口 on screen.
_SKELETON_KANA = str.maketrans({"ロ": "口", "エ": "工", "カ": "力", "ニ": "二", "ハ": "八", "ト": "卜", "タ": "夕",
                                "ー": "一", "ノ": "丿", "ム": "厶", "ヌ": "又", "メ": "乂", "ヘ": "へ", "ベ": "べ",
                                "ペ": "ぺ", "リ": "り", "\u1173": "一", "\u1175": "丨"})


def skeleton(identity: str) -> str:
    """What a canonical identity looks like, for comparison: separators dropped, Latin look-alikes folded."""
    text = identity.translate(_SEPARATORS).translate(_SKELETON_LETTERS).translate(_SKELETON_KANA)
    for pair, single in _SKELETON_PAIRS:
        text = text.replace(pair, single)
    return text


def same_person_key(name: object) -> str:
    """``skeleton(canonical_identity(name))``: equal for two spellings of one person."""
    return skeleton(canonical_identity(name))


def os_user() -> str:
    """The OS account running this process, from its user id (not from $USER, which anyone can set)."""
    uid = os.geteuid()
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):  # no passwd entry in some containers
        return f"uid {uid}"
