"""Consul's `?filter=` expressions: the go-bexpr v0.1.2 grammar (which Consul pins) evaluated over JSON-shaped values.

Parse errors carry pigeon's text (`1:8 (7): no match found, expected: ...`). A key absent from an object, or null,
acts like a key missing from a Go map: `!=`, `not in`, `not contains`, `is empty`, `matches`, `not matches` match and
the other operators do not. Imports: stdlib, consulpy.gostrconv.
"""

from __future__ import annotations

import enum
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consulpy.gostrconv import parse_bool

__all__ = ["Filter", "FilterError", "compile_filter", "filter_items"]

# Deepest parenthesis nesting accepted; keeps the recursive parser far from Python's recursion limit.
MAX_NESTING = 50


class FilterError(ValueError):
    """A filter expression that cannot be compiled; str() is go-bexpr's error text."""


class _Op(enum.Enum):
    EQUAL = "Equal"
    NOT_EQUAL = "Not Equal"
    IN = "In"
    NOT_IN = "Not In"
    IS_EMPTY = "Is Empty"
    IS_NOT_EMPTY = "Is Not Empty"
    MATCHES = "Matches"
    NOT_MATCHES = "Not Matches"


# go-bexpr v0.1.2's answer when a selector reaches a missing map key.
_MISSING_RESULT = {
    _Op.EQUAL: False,
    _Op.IS_NOT_EMPTY: False,
    _Op.IN: False,
    _Op.NOT_EQUAL: True,
    _Op.IS_EMPTY: True,
    _Op.NOT_IN: True,
    _Op.MATCHES: True,
    _Op.NOT_MATCHES: True,
}

_NEGATED = frozenset({_Op.NOT_EQUAL, _Op.NOT_IN, _Op.IS_NOT_EMPTY, _Op.NOT_MATCHES})


@dataclass(frozen=True, slots=True)
class _Match:
    selector: tuple[str, ...]
    op: _Op
    value: str | None
    regex: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class _Not:
    operand: _Node


@dataclass(frozen=True, slots=True)
class _And:
    operands: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Or:
    operands: tuple[_Node, ...]


_Node = _Match | _Not | _And | _Or
_Parsed = tuple[_Node, int] | None


# ---------------------------------------------------------------------------------------------------------------
# Parser: a hand-written PEG parser for go-bexpr v0.1.2's grammar.peg. It tries the same alternatives in the same
# order as the pigeon-generated Go parser and records failures the same way (farthest position, set of expected
# tokens, `!` inversion inside not-predicates), so syntax errors read the same. Results are memoised per
# (rule, position, inversion), which keeps unbalanced parentheses linear instead of exponential.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CharClass:
    chars: frozenset[str]
    want: str


def _char_range(first: str, last: str) -> str:
    return "".join(chr(code) for code in range(ord(first), ord(last) + 1))


_WHITESPACE = _CharClass(frozenset(" \t\r\n"), "[ \\t\\r\\n]")
_ALPHA = _CharClass(frozenset(_char_range("a", "z") + _char_range("A", "Z")), "[a-zA-Z]")
_ALNUM = _CharClass(_ALPHA.chars | frozenset(_char_range("0", "9") + "_"), "[a-zA-Z0-9_]")
_DIGIT = _CharClass(frozenset(_char_range("0", "9")), "[0-9]")
_DIGIT_1_9 = _CharClass(frozenset(_char_range("1", "9")), "[1-9]")

# Token sequences for the operators; " " stands for required whitespace and "" for optional whitespace.
_REQUIRED_WS = " "
_OPTIONAL_WS = ""
_SELECTOR_OP_VALUE = (
    (_Op.EQUAL, ("", "==", "")),
    (_Op.NOT_EQUAL, ("", "!=", "")),
    (_Op.IN, (" ", "contains", " ")),
    (_Op.NOT_IN, (" ", "not", " ", "contains", " ")),
    (_Op.MATCHES, (" ", "matches", " ")),
    (_Op.NOT_MATCHES, (" ", "not", " ", "matches", " ")),
)
_SELECTOR_OP = (
    (_Op.IS_EMPTY, (" ", "is", " ", "empty")),
    (_Op.IS_NOT_EMPTY, (" ", "is", " ", "not", " ", "empty")),
)
_VALUE_OP_SELECTOR = (
    (_Op.IN, (" ", "in", " ")),
    (_Op.NOT_IN, (" ", "not", " ", "in", " ")),
)


class _TooDeepError(Exception):
    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.length = len(text)
        self.invert = False
        self.fail_pos = 0
        self.fail_expected: list[str] = []
        self.errors: list[tuple[int, str, str]] = []
        self.memo: dict[tuple[str, int, bool], Any] = {}
        self.depth = 0

    # -- primitives -----------------------------------------------------------------------------------------------

    def _record(self, matched: bool, pos: int, want: str) -> None:
        if matched != self.invert or pos < self.fail_pos:
            return
        if pos > self.fail_pos:
            self.fail_pos = pos
            self.fail_expected = []
        self.fail_expected.append("!" + want if self.invert else want)

    def _error(self, pos: int, rule: str, message: str) -> None:
        self.errors.append((pos, rule, message))

    def _lit(self, pos: int, literal: str) -> int:
        matched = self.text.startswith(literal, pos)
        self._record(matched, pos, _go_quote(literal))
        return pos + len(literal) if matched else -1

    def _class(self, pos: int, char_class: _CharClass) -> int:
        matched = pos < self.length and self.text[pos] in char_class.chars
        self._record(matched, pos, char_class.want)
        return pos + 1 if matched else -1

    def _class_run(self, pos: int, char_class: _CharClass) -> int:
        """`[...]+`; returns the end of the run or -1."""
        end = self._class(pos, char_class)
        if end < 0:
            return -1
        while (following := self._class(end, char_class)) >= 0:
            end = following
        return end

    def _any(self, pos: int) -> int:
        matched = pos < self.length
        self._record(matched, pos, ".")
        return pos + 1 if matched else -1

    def _negate(self, attempt: Callable[[int], bool], pos: int) -> bool:
        """PEG `!e`: succeeds when `attempt` fails; expectations recorded inside are inverted."""
        self.invert = not self.invert
        try:
            return not attempt(pos)
        finally:
            self.invert = not self.invert

    def _ws(self, pos: int) -> int:
        return self._class_run(pos, _WHITESPACE)

    def _opt_ws(self, pos: int) -> int:
        end = self._ws(pos)
        return pos if end < 0 else end

    def _eof(self, pos: int) -> bool:
        return self._negate(lambda at: self._any(at) >= 0, pos)

    def _tokens(self, pos: int, tokens: tuple[str, ...]) -> int:
        for token in tokens:
            if token == _REQUIRED_WS:
                pos = self._ws(pos)
            elif token == _OPTIONAL_WS:
                pos = self._opt_ws(pos)
            else:
                pos = self._lit(pos, token)
            if pos < 0:
                return -1
        return pos

    def _operator(self, pos: int, table: tuple[tuple[_Op, tuple[str, ...]], ...]) -> tuple[_Op, int] | None:
        for op, tokens in table:
            end = self._tokens(pos, tokens)
            if end >= 0:
                return op, end
        return None

    # -- rules ----------------------------------------------------------------------------------------------------

    def parse(self) -> _Node | None:
        # Input <- _? "(" _? OrExpression _? ")" _? EOF / _? OrExpression _? EOF
        start = self._lit(self._opt_ws(0), "(")
        if start >= 0:
            inner = self._nested_or(start)
            if inner is not None:
                close = self._lit(self._opt_ws(inner[1]), ")")
                if close >= 0 and self._eof(self._opt_ws(close)):
                    return inner[0]
        whole = self._or(self._opt_ws(0))
        if whole is not None and self._eof(self._opt_ws(whole[1])):
            return whole[0]
        return None

    def _or(self, pos: int) -> _Parsed:
        # OrExpression <- AndExpression _ "or" _ OrExpression / AndExpression
        return self._chain("or", pos, self._and)

    def _and(self, pos: int) -> _Parsed:
        # AndExpression <- NotExpression _ "and" _ AndExpression / NotExpression
        return self._chain("and", pos, self._not)

    def _chain(self, keyword: str, pos: int, operand: Callable[[int], _Parsed]) -> _Parsed:
        key = (keyword, pos, self.invert)
        if key in self.memo:
            return self.memo[key]
        result: _Parsed = None
        first = operand(pos)
        if first is not None:
            operands = [first[0]]
            end = first[1]
            while (rhs_start := self._tokens(end, (" ", keyword, " "))) >= 0:
                rhs = operand(rhs_start)
                if rhs is None:
                    break
                operands.append(rhs[0])
                end = rhs[1]
            if len(operands) == 1:
                result = (operands[0], end)
            elif keyword == "or":
                result = (_Or(tuple(operands)), end)
            else:
                result = (_And(tuple(operands)), end)
        self.memo[key] = result
        return result

    def _not(self, pos: int) -> _Parsed:
        # NotExpression <- "not" _ NotExpression / ParenthesizedExpression
        key = ("not", pos, self.invert)
        if key in self.memo:
            return self.memo[key]
        starts = [pos]
        while (after := self._tokens(starts[-1], ("not", " "))) >= 0:
            starts.append(after)
        result: _Parsed = None
        for level in range(len(starts) - 1, -1, -1):
            operand = self._paren(starts[level])
            if operand is not None:
                node = _Not(operand[0]) if level % 2 else operand[0]
                result = (node, operand[1])
                break
        self.memo[key] = result
        return result

    def _paren(self, pos: int) -> _Parsed:
        # ParenthesizedExpression "grouping" <- "(" _? OrExpression _? ")" / MatchExpression
        #                                       / "(" _? OrExpression _? !")" &{ Unmatched parentheses }
        key = ("paren", pos, self.invert)
        if key in self.memo:
            return self.memo[key]
        result: _Parsed = None
        start = self._lit(pos, "(")
        inner = self._nested_or(start) if start >= 0 else None
        close = self._lit(self._opt_ws(inner[1]), ")") if inner is not None else -1
        if inner is not None and close >= 0:
            result = (inner[0], close)
        else:
            result = self._match(pos)
            if result is None and self._lit(pos, "(") >= 0 and inner is not None:
                close_pos = self._opt_ws(inner[1])
                if self._negate(lambda at: self._lit(at, ")") >= 0, close_pos):
                    self._error(close_pos, '"grouping"', "Unmatched parentheses")
        self.memo[key] = result
        return result

    def _nested_or(self, pos: int) -> _Parsed:
        """`_? OrExpression` just inside an opening parenthesis, refusing to nest beyond MAX_NESTING."""
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise _TooDeepError(pos)
            return self._or(self._opt_ws(pos))
        finally:
            self.depth -= 1

    def _match(self, pos: int) -> _Parsed:
        # MatchExpression <- MatchSelectorOpValue / MatchSelectorOp / MatchValueOpSelector
        key = ("match", pos, self.invert)
        if key in self.memo:
            return self.memo[key]
        result = self._selector_op_value(pos) or self._selector_op(pos) or self._value_op_selector(pos)
        self.memo[key] = result
        return result

    def _selector_op_value(self, pos: int) -> _Parsed:
        selector = self._selector(pos)
        if selector is None:
            return None
        operator = self._operator(selector[1], _SELECTOR_OP_VALUE)
        if operator is None:
            return None
        value = self._value(operator[1])
        if value is None:
            return None
        return _Match(selector[0], operator[0], value[0]), value[1]

    def _selector_op(self, pos: int) -> _Parsed:
        selector = self._selector(pos)
        if selector is None:
            return None
        operator = self._operator(selector[1], _SELECTOR_OP)
        if operator is None:
            return None
        return _Match(selector[0], operator[0], None), operator[1]

    def _value_op_selector(self, pos: int) -> _Parsed:
        # MatchValueOpSelector "match" <- Value (MatchIn / MatchNotIn) Selector
        #                                 / Value (MatchIn / MatchNotIn) !Selector &{ Invalid selector }
        value = self._value(pos)
        if value is None:
            return None
        operator = self._operator(value[1], _VALUE_OP_SELECTOR)
        if operator is None:
            return None
        selector = self._selector(operator[1])
        if selector is not None:
            return _Match(selector[0], operator[0], value[0]), selector[1]
        if self._negate(lambda at: self._selector(at) is not None, operator[1]):
            self._error(operator[1], '"match"', "Invalid selector")
        return None

    def _selector(self, pos: int) -> tuple[tuple[str, ...], int] | None:
        # Selector <- Identifier SelectorOrIndex*
        key = ("selector", pos, self.invert)
        if key in self.memo:
            return self.memo[key]
        result: tuple[tuple[str, ...], int] | None = None
        end = self._identifier(pos)
        if end >= 0:
            parts = [self.text[pos:end]]
            while (part := self._selector_part(end)) is not None:
                parts.append(part[0])
                end = part[1]
            result = (tuple(parts), end)
        self.memo[key] = result
        return result

    def _identifier(self, pos: int) -> int:
        # Identifier <- [a-zA-Z] [a-zA-Z0-9_]*
        end = self._class(pos, _ALPHA)
        if end < 0:
            return -1
        following = self._class_run(end, _ALNUM)
        return end if following < 0 else following

    def _selector_part(self, pos: int) -> tuple[str, int] | None:
        # SelectorOrIndex <- "." Identifier / IndexExpression
        dot = self._lit(pos, ".")
        if dot >= 0:
            end = self._identifier(dot)
            if end >= 0:
                return self.text[dot:end], end
        return self._index(pos)

    def _index(self, pos: int) -> tuple[str, int] | None:
        # IndexExpression "index" <- "[" _? StringLiteral _? "]" / "[" _? !StringLiteral &{ Invalid index }
        #                            / "[" _? StringLiteral _? !"]" &{ Unclosed index expression }
        start = self._lit(pos, "[")
        if start < 0:
            return None
        inner = self._opt_ws(start)
        literal = self._string(inner)
        if literal is not None:
            close = self._lit(self._opt_ws(literal[1]), "]")
            if close >= 0:
                return literal[0], close
        if self._negate(lambda at: self._string(at) is not None, inner):
            self._error(inner, '"index"', "Invalid index")
        if literal is not None:
            close_pos = self._opt_ws(literal[1])
            if self._negate(lambda at: self._lit(at, "]") >= 0, close_pos):
                self._error(close_pos, '"index"', "Unclosed index expression")
        return None

    def _value(self, pos: int) -> tuple[str, int] | None:
        # Value "value" <- Selector / NumberLiteral / StringLiteral
        key = ("value", pos, self.invert)
        if key in self.memo:
            return self.memo[key]
        result: tuple[str, int] | None
        selector = self._selector(pos)
        if selector is not None:
            result = (".".join(selector[0]), selector[1])
        else:
            result = self._number(pos) or self._string(pos)
        self.memo[key] = result
        return result

    def _number(self, pos: int) -> tuple[str, int] | None:
        # NumberLiteral "number" <- "-"? IntegerOrFloat &AfterNumbers
        #                           / "-"? IntegerOrFloat !AfterNumbers &{ Invalid number literal }
        minus = self._lit(pos, "-")
        end = self._integer_or_float(pos if minus < 0 else minus)
        if end < 0:
            return None
        if self._after_number(end):
            return self.text[pos:end], end
        if self._negate(self._after_number, end):
            self._error(end, '"number"', "Invalid number literal")
        return None

    def _after_number(self, pos: int) -> bool:
        # AfterNumbers <- &(_ / EOF / ")")
        return self._ws(pos) >= 0 or self._eof(pos) or self._lit(pos, ")") >= 0

    def _integer_or_float(self, pos: int) -> int:
        # IntegerOrFloat <- ("0" / [1-9][0-9]*) ("." [0-9]+)?
        end = self._lit(pos, "0")
        if end < 0:
            end = self._class(pos, _DIGIT_1_9)
            if end < 0:
                return -1
            digits = self._class_run(end, _DIGIT)
            end = end if digits < 0 else digits
        dot = self._lit(end, ".")
        if dot >= 0:
            fraction = self._class_run(dot, _DIGIT)
            if fraction >= 0:
                end = fraction
        return end

    def _string(self, pos: int) -> tuple[str, int] | None:
        # StringLiteral "string" <- ('`' RawStringChar* '`' / '"' DoubleStringChar* '"') { strconv.Unquote }
        #                           / ('`' RawStringChar* / '"' DoubleStringChar*) EOF &{ Unterminated string literal }
        key = ("string", pos, self.invert)
        if key in self.memo:
            return self.memo[key]
        result: tuple[str, int] | None = None
        end = self._quoted(pos, "`", closed=True)
        if end < 0:
            end = self._quoted(pos, '"', closed=True)
        if end >= 0:
            value = _go_unquote(self.text[pos:end])
            if value is None:
                self._error(pos, '"string"', "invalid syntax")
                value = ""
            result = (value, end)
        else:
            end = self._quoted(pos, "`", closed=False)
            if end < 0:
                end = self._quoted(pos, '"', closed=False)
            if end >= 0 and self._eof(end):
                self._error(end, '"string"', "Unterminated string literal")
        self.memo[key] = result
        return result

    def _quoted(self, pos: int, quote: str, *, closed: bool) -> int:
        end = self._lit(pos, quote)
        if end < 0:
            return -1
        # RawStringChar <- !'`' .   DoubleStringChar <- !'"' .
        while self._negate(lambda at: self._lit(at, quote) >= 0, end):
            following = self._any(end)
            if following < 0:
                break
            end = following
        return self._lit(end, quote) if closed else end


# ---------------------------------------------------------------------------------------------------------------
# Go string helpers
# ---------------------------------------------------------------------------------------------------------------

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
_UNQUOTE_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_OCTAL_DIGITS = frozenset("01234567")


def _go_quote(text: str) -> str:
    """strconv.Quote, closely enough for error messages."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _go_unquote(literal: str) -> str | None:
    """strconv.Unquote for a backquoted or double-quoted literal; None where Go reports a syntax error."""
    body = literal[1:-1]
    if literal[0] == "`":
        return body.replace("\r", "")
    if "\n" in body:
        return None
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            index += 1
            continue
        if index + 1 >= len(body):
            return None
        kind = body[index + 1]
        index += 2
        if kind in _UNQUOTE_SIMPLE:
            out.append(_UNQUOTE_SIMPLE[kind])
        elif kind in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[kind]
            digits = body[index : index + width]
            if len(digits) < width or not set(digits) <= _HEX_DIGITS:
                return None
            index += width
            code = int(digits, 16)
            if kind == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                return None
            else:
                out += chr(code).encode("utf-8")
        elif kind in _OCTAL_DIGITS:
            digits = kind + body[index : index + 2]
            if len(digits) < 3 or not set(digits) <= _OCTAL_DIGITS or int(digits, 8) > 255:
                return None
            index += 2
            out.append(int(digits, 8))
        else:
            return None
    return out.decode("utf-8", "surrogateescape")


def _position(text: str, index: int) -> str:
    """pigeon's `line:col (byte offset)` of the character at `index`; a newline sits at column 0 of the next line."""
    line, column, offset = 1, 0, 0
    for char in text[:index]:
        column += 1
        if char == "\n":
            line, column = line + 1, 0
        offset += _utf8_width(char)
    column += 1
    if index < len(text) and text[index] == "\n":
        line, column = line + 1, 0
    return f"{line}:{column} ({offset})"


def _utf8_width(char: str) -> int:
    code = ord(char)
    if code < 0x80 or 0xDC80 <= code <= 0xDCFF:
        return 1
    if code < 0x800:
        return 2
    return 3 if code < 0x10000 else 4


def _syntax_error(parser: _Parser) -> FilterError:
    if parser.errors:
        messages = dict.fromkeys(
            f"{_position(parser.text, pos)}: rule {rule}: {message}" for pos, rule, message in parser.errors
        )
        return FilterError("\n".join(messages))
    expected = set(parser.fail_expected)
    at_eof = "!." in expected
    expected.discard("!.")
    ordered = sorted(expected) + (["EOF"] if at_eof else [])
    listed = ordered[0] if len(ordered) == 1 else ", ".join(ordered[:-1]) + " or " + ordered[-1]
    return FilterError(f"{_position(parser.text, parser.fail_pos)}: no match found, expected: {listed}")


# ---------------------------------------------------------------------------------------------------------------
# Regular expressions: Go's RE2 dialect mapped onto Python's `re` where the two differ in common patterns.
# ---------------------------------------------------------------------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_MULTILINE_FLAG = re.compile(r"\(\?[a-zA-Z]*m")
_BRACED_HEX = re.compile(r"\{([0-9a-fA-F]{1,8})\}")


def translate_go_regex(pattern: str) -> str:
    """Rewrite `\\z`, `\\x{...}`, `\\Q...\\E`, `[[:class:]]` and (outside multi-line mode) `$` in Python's spelling.

    RE2 constructs Python lacks (`\\pL`, `[[:^alpha:]]`, flag groups after the start) fail to compile rather than
    being approximated.
    """
    multiline = _MULTILINE_FLAG.search(pattern) is not None
    out: list[str] = []
    index = 0
    in_class = False
    class_start = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped == "Q":
                end = pattern.find("\\E", index + 2)
                literal = pattern[index + 2 :] if end < 0 else pattern[index + 2 : end]
                out.append(re.escape(literal))
                index = len(pattern) if end < 0 else end + 2
                continue
            if escaped == "x" and (braced := _BRACED_HEX.match(pattern, index + 2)):
                code = int(braced.group(1), 16)
                if code > 0x10FFFF:
                    raise re.error(f"invalid escape sequence: `{braced.group(0)}`")
                out.append(f"\\U{code:08x}")
                index = braced.end()
                continue
            out.append("\\Z" if escaped == "z" and not in_class else pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            if pattern.startswith("[:", index) and (end := pattern.find(":]", index + 2)) >= 0:
                name = pattern[index + 2 : end]
                if name not in _POSIX_CLASSES:
                    raise re.error(f"invalid character class range: `[:{name}:]`")
                out.append(_POSIX_CLASSES[name])
                index = end + 2
                continue
            if char == "]" and index > class_start:
                in_class = False
        elif char == "[":
            in_class = True
            class_start = index + 1
            if pattern.startswith("^", class_start):
                class_start += 1
                out.append("[^")
                index += 2
                continue
        elif char == "$" and not multiline:
            out.append("\\Z")
            index += 1
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _compile_regex(pattern: str) -> re.Pattern[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return re.compile(translate_go_regex(pattern), re.ASCII)
    except (re.error, OverflowError, RecursionError) as exc:
        raise FilterError(
            f"Failed to compile regular expression {_go_quote(pattern)}: error parsing regexp: {exc}"
        ) from None


def _prepare(node: _Node, regexes: dict[str, re.Pattern[str]]) -> _Node:
    """Compile the regular expressions of `matches` operators, left to right, as go-bexpr validates them."""
    if isinstance(node, _Match):
        if node.op not in (_Op.MATCHES, _Op.NOT_MATCHES) or node.value is None:
            return node
        if node.value not in regexes:
            regexes[node.value] = _compile_regex(node.value)
        return _Match(node.selector, node.op, node.value, regexes[node.value])
    if isinstance(node, _Not):
        return _Not(_prepare(node.operand, regexes))
    operands = tuple(_prepare(operand, regexes) for operand in node.operands)
    return _And(operands) if isinstance(node, _And) else _Or(operands)


# ---------------------------------------------------------------------------------------------------------------
# Value coercion: the expression's raw value is converted to the type of the value it is compared with, with
# Go's strconv rules (ParseBool, ParseInt base 0, ParseFloat). None means Go would report a conversion error.
# ---------------------------------------------------------------------------------------------------------------

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_DECIMAL_FLOAT = re.compile(r"[+-]?(?:[0-9_]+(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?", re.ASCII)
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+(?:\.[0-9a-fA-F_]*)?|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+", re.ASCII)


def _underscores_ok(text: str) -> bool:
    """strconv's underscoreOK: underscores only between digits (a base prefix counts as a digit)."""
    if text[:1] in ("+", "-"):
        text = text[1:]
    saw = "^"
    index = 0
    hexadecimal = False
    if len(text) >= 2 and text[0] == "0" and text[1] in "bBoOxX":
        index, saw, hexadecimal = 2, "0", text[1] in "xX"
    for char in text[index:]:
        if char.isascii() and (char.isdigit() or (hexadecimal and char in _HEX_DIGITS)):
            saw = "0"
        elif char == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def _parse_go_int(raw: str) -> int | None:
    body = raw[1:] if raw[:1] in ("+", "-") else raw
    if not body:
        return None
    digits, base = body, 10
    if body[0] == "0":
        prefix = body[1:2].lower()
        if len(body) >= 3 and prefix in ("b", "o", "x"):
            digits, base = body[2:], {"b": 2, "o": 8, "x": 16}[prefix]
        else:
            digits, base = body[1:], 8
    value = 0
    for char in digits:
        if char == "_":
            continue
        digit = int(char, 36) if char.isascii() and char.isalnum() else base
        if digit >= base:
            return None
        value = value * base + digit
    if "_" in digits and not _underscores_ok(body):
        return None
    if raw.startswith("-"):
        value = -value
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _parse_go_float(raw: str) -> float | None:
    unsigned = raw[1:] if raw[:1] in ("+", "-") else raw
    if unsigned.lower() in ("inf", "infinity"):
        return -math.inf if raw.startswith("-") else math.inf
    if unsigned.lower() == "nan" and unsigned == raw:
        return math.nan
    hexadecimal = _HEX_FLOAT.fullmatch(raw) is not None
    if not hexadecimal and _DECIMAL_FLOAT.fullmatch(raw) is None:
        return None
    if "_" in raw and not _underscores_ok(raw):
        return None
    digits = raw.replace("_", "")
    try:
        value = float.fromhex(digits) if hexadecimal else float(digits)
    except (ValueError, OverflowError):
        return None
    return None if math.isinf(value) else value


def _coerce(raw: str, like: object) -> object | None:
    """The raw value converted to the primitive type of `like`; None when impossible."""
    if isinstance(like, bool):
        return parse_bool(raw)
    if isinstance(like, int):
        return _parse_go_int(raw)
    if isinstance(like, float):
        return _parse_go_float(raw)
    if isinstance(like, str):
        return raw
    return None


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------


def _equal(raw: str, value: object) -> bool | None:
    """`value == raw` after coercion; None when go-bexpr cannot compare the two."""
    expected = _coerce(raw, value)
    if expected is None:
        return None
    return expected == value


def _contains(raw: str, value: object) -> bool | None:
    if isinstance(value, str):
        return raw in value
    if isinstance(value, dict):
        return raw in value
    if isinstance(value, list | tuple):
        return any(_equal(raw, item) for item in value)
    return None


def _leaf(match: _Match, value: object) -> bool:
    op = match.op
    result: bool | None
    if op in (_Op.IS_EMPTY, _Op.IS_NOT_EMPTY):
        result = len(value) == 0 if isinstance(value, str | list | tuple | dict) else None
    elif op in (_Op.EQUAL, _Op.NOT_EQUAL):
        result = _equal(match.value or "", value)
    elif op in (_Op.IN, _Op.NOT_IN):
        result = _contains(match.value or "", value)
    else:
        result = match.regex.search(value) is not None if isinstance(value, str) and match.regex else None
    if result is None:
        return False
    return not result if op in _NEGATED else result


def _evaluate_match(match: _Match, value: object, depth: int) -> bool:
    selector = match.selector
    while True:
        if value is None:
            return _MISSING_RESULT[match.op]
        if depth == len(selector):
            return _leaf(match, value)
        if isinstance(value, dict):
            if selector[depth] not in value:
                return _MISSING_RESULT[match.op]
            value = value[selector[depth]]
            depth += 1
        elif isinstance(value, list | tuple):
            return any(_evaluate_match(match, item, depth) for item in value)
        else:
            return False


def _evaluate(node: _Node, item: object) -> bool:
    if isinstance(node, _Match):
        return _evaluate_match(node, item, 0)
    if isinstance(node, _Not):
        return not _evaluate(node.operand, item)
    if isinstance(node, _And):
        return all(_evaluate(operand, item) for operand in node.operands)
    return any(_evaluate(operand, item) for operand in node.operands)


class Filter:
    """A compiled filter expression.

    Selectors walk objects by exact (case-sensitive) key. When a selector passes through a list before its last
    part, the rest of the selector is applied to every element and the expression matches if any element does
    (so `Checks.Status == passing` means "some check is passing", and `Checks.Status != passing` means "some check
    is not passing"); an empty list there matches nothing. A selector ending on a list tests membership with
    `in`/`contains`, emptiness with `is empty`. The raw value is converted to the type of the value it meets
    (`Port == 80`, `EnableTagOverride == true`, `"80" == Port` alike). Combinations go-bexpr would reject when
    the filter is created (`==` on a list, `matches` on a number, a value that does not convert) do not match,
    whatever the operator; `is empty` also works on strings, which go-bexpr rejects.
    """

    __slots__ = ("_ast", "expression")

    def __init__(self, expression: str, ast: _Node) -> None:
        self.expression = expression
        self._ast = ast

    def matches(self, item: object) -> bool:
        return _evaluate(self._ast, item)

    def __repr__(self) -> str:
        return f"Filter({self.expression!r})"


def compile_filter(expression: str) -> Filter:
    """Parse `expression`; raise FilterError with go-bexpr's message when it is malformed."""
    parser = _Parser(expression)
    try:
        ast = parser.parse()
    except _TooDeepError as exc:
        raise FilterError(
            f'{_position(expression, exc.pos)}: rule "grouping": parentheses nested more than {MAX_NESTING} deep'
        ) from None
    except RecursionError:
        raise FilterError("expression too deeply nested") from None
    if ast is None or parser.errors:
        raise _syntax_error(parser)
    return Filter(expression, _prepare(ast, {}))


def filter_items(expression: str | None, items: list) -> list:
    """The items the expression matches, in order; an absent or empty expression returns `items` itself."""
    if not expression:
        return items
    compiled = compile_filter(expression)
    return [item for item in items if compiled.matches(item)]
