"""Log template mining: Drain over messages whose values are masked first, with one global setting.

Drain (He, Zhu, Zheng, Lyu, "Drain: An Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017)
puts each message in a tree by its token count and first token, then joins it to the most similar
template of that leaf, turning the positions where they differ into a wildcard. We use drain3's
implementation, change what it is fed and override a few of its small methods. Quality is measured as
grouping accuracy (GA: the share of messages whose group holds exactly the messages of their true
event; Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP 2019) on the Loghub 2k
samples with the corrected labels of Khan et al. (ICSE 2022): `benchmarks/logparse.py` prints it.

Rules, in the order they apply, and why:

1. Clip. A message is mined on its first `MAX_CHARS` characters, cut at a space, and the rest becomes
   one wildcard: the statement shows in the head of a message, and a megabyte line costs no more than
   a long one.
2. Protect. Caller-given words (the catalogue's service names) are wrapped in markers that no other
   rule can cross, and the digits in them and in code locations (`TravelServiceImpl#451`,
   `File.java:45`, `module.py:45`) are hidden from the value rules: these name the service or the
   statement, so they must stay visible and never become a wildcard.
3. Values. A piece of a token that holds a digit is a value, from its first digit to the end of the
   piece (pieces end at whitespace, brackets, quotes, `;`, `|` and `=`, and at `:` or `,` unless a
   digit follows: `12:30:05` is one value, `index:5` keeps its key). One rule for decimal and hexadecimal, so `00000005` and `0000000d` are one field, as are
   `812ms` and `9000ms`, while the stem before the digits stays (`node-<*>`, `chunk_<*>`), as in
   Loghub's own templates. A stem made only of hex letters is part of the value (`deadbeef12` is one
   id), and so is a dotted host in front of a port (`host.example.org:5070` is one value). Dates with
   month names, quoted strings after `=` or `:`, an empty `()`, `[]` or `{}`, and the words
   true/false/null/none/nil are values too.
4. Optional tail. A parenthesised group of at most three tokens that ends the message and holds a
   value, such as "(12.8 KB)" or "(took <*>)", is set aside: whether a message reports it does not
   make it another event. The template shows it once ("(<*>)" when its forms differ).
5. Anchors. HTTP methods, protected words and code locations, with their positions, select a Drain
   tree of their own: "GET /a" and "POST /a" differ in one token of nine, which any similarity
   threshold low enough to join values would merge, and `#451` / `#457` are two statements.
6. Drain, changed in three ways: a token that holds a wildcard or looks like a value (a dotted or
   slashed name) never becomes a branch of the tree, so a masked first token or a host does not open
   a branch per message; the similarity counts a masked token against a wildcard as equal (drain3
   counts it as different, so a message with many values never reaches the threshold); and the
   threshold is `SIMILARITY` = 0.6 (drain3's 0.4 let a 600-line event absorb an unrelated message).
   Each distinct masked text goes to Drain once (most messages repeat one), and a leaf compares with
   its newest `LEAF_CLUSTERS` clusters only, so a flood of unrelated messages costs linear time.
7. Few constant words. After all messages are in, a wildcard position whose values are all plain
   words is a constant after all when they are at most `CONSTANT_VALUES` words each seen in at least
   `CONSTANT_REPEATS` messages ("replica Draining" / "replica Ready", "role=admin" / "role=viewer"): values are
   many and mostly seen once, constants few and repeated (the idea behind frequency-based parsers,
   e.g. Dai et al., "Logram: Efficient Log Parsing Using n-Gram Dictionaries", TSE 2020). Names in
   CONSTANT_CASE are enum constants in the code (states, event types), a closed set: up to
   `CONSTANT_NAMES` of them stay, seen once or more ("moved from QUEUED to RUNNING"). The
   template of a group is therefore final only when every message has been added.

One setting serves every system: the threshold, the depth and the counts were chosen on the 8-system
development split, where mean GA moves by less than 0.002 for similarity 0.55-0.7, depth 4-5 or
CONSTANT_VALUES 4-8; none is tuned per source. Mining never raises on a `str`: the rules are regular
expressions over clipped text, and a rule that finds nothing leaves the text as it is.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from operator import eq
from typing import Any

from drain3.drain import Drain

WILDCARD = "<*>"
SIMILARITY = 0.6
DEPTH = 4  # drain3 counts the root and the token-count level: 4 branches on the first token only.
MAX_CHARS = 4096
CONSTANT_VALUES = 6
CONSTANT_REPEATS = 2
CONSTANT_NAMES = 16
LEAF_CLUSTERS = 100

# Markers around a protected word or code location, and stand-ins for its digits: private-use
# characters, which no rule below matches (`\d` is Unicode category Nd; these are Co).
_OPEN, _CLOSE = "\ue000", "\ue001"
_HIDE_DIGITS = str.maketrans({str(d): chr(0xE010 + d) for d in range(10)})
_SHOW = str.maketrans({_OPEN: None, _CLOSE: None} | {chr(0xE010 + d): str(d) for d in range(10)})

# Each pattern below starts with a literal or a character class, so that the regex engine tries a
# match only where one can begin, and the rarer rules run only when a cheap `in` test finds a hint.
_DELIM = "\\s;()\\[\\]{}<>\"'|" + _OPEN + _CLOSE
_PIECE = f"[^{_DELIM}=:,]"
_VALUE = re.compile(rf"\d{_PIECE}*(?:[:,]\d{_PIECE}*)*")
# Applied to the reversed text, where what stood before a value follows its "<*>" (no fixed-width
# look-behind could look back): a dotted host before a port, a sign, a stem made only of hex letters,
# or a month name (and weekday) before up to four values, such as "Tue Mar 3 09:15:00 2026", joins it.
_REVERSED_MONTH = "(?:naJ|beF|raM|rpA|yaM|nuJ|luJ|guA|peS|tcO|voN|ceD)"
_REVERSED_DAY = "(?:noM|euT|deW|uhT|irF|taS|nuS)"
_REVERSED_STEM = re.compile(
    rf">\*<(?:-?:(?=[^{_DELIM}=:,]*\.)[^{_DELIM}=:,]+"
    rf"|[-+](?![A-Za-z0-9]|{_CLOSE})"
    rf"|[-_.]?[a-fA-F]+(?:[-_.][a-fA-F]+)*(?!{_PIECE})"
    rf"|(?:\s+,?>\*<){{0,3}}\s+\.?[a-z]{{0,6}}{_REVERSED_MONTH}(?:\s+,?[a-z]{{0,6}}{_REVERSED_DAY})?(?![A-Za-z]))"
)
_WORD_VALUE = re.compile(rf"[tTfFnN](?<!{_PIECE}.)(?<!{_OPEN}.)(?i:rue|alse|ull|one|il)(?!{_PIECE})")
_QUOTED = re.compile(rf"([=:])(?:\"[^\"\n{_OPEN}]{{0,256}}\"|'[^'\n{_OPEN}]{{0,256}}')")
_EMPTY = re.compile(r"([(\[{])(?<!\S.)([)\]}])(?!\S)")
_CODE_EXTENSIONS = "java|kt|scala|groovy|py|go|rb|js|ts|cs|c|cc|cpp|h|hpp|php|rs|swift|m"
_CODE_HINT = re.compile(rf"\.(?:{_CODE_EXTENSIONS}):\d")
_CODE_TAIL = re.compile(rf"#\d+|\.(?:{_CODE_EXTENSIONS}):\d+")
_METHOD = re.compile('[GHPDOCT](?<![^\\s"].)(?:ET|EAD|OST|UT|ELETE|ATCH|PTIONS|ONNECT|RACE)(?![^\\s"])')
_MARKED = re.compile(_OPEN)
_BUILD_HASH = re.compile(r"(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{6,}")
# A token the tree must not branch on: it holds a wildcard or is a dotted or slashed name.
_VALUE_LIKE = re.compile(r"\w[./]\w")
# A plain word (rule 7), optionally after a key and inside quotes or brackets.
_PLAIN_WORD = re.compile(r"(?:[A-Za-z_][\w.-]*[=:])?[\"'(\[]?[A-Za-z][A-Za-z_-]*[\"')\]]?[.,:;]?")
_CONSTANT_CASE = re.compile(r"(?:[A-Za-z_][\w.-]*[=:])?[\"'(\[]?[A-Z][A-Z_]+[\"')\]]?[.,:;]?")


class Miner:
    """Groups log messages into templates; see the module docstring for the rules.

    One miner serves one comparison (both windows' samples, so a template means the same on both
    sides); it keeps every distinct masked message, so it is not meant to run unbounded.
    """

    def __init__(self, protected: Collection[str] = ()) -> None:
        self._protected = _protected_pattern(protected)
        self._drains: dict[tuple[tuple[int, str], ...], _Drain] = {}
        self._forms: dict[str, int] = {}  # masked text -> form
        self._tokens: list[list[str]] = []
        self._clusters: list[Any] = []  # drain3's LogCluster of each form
        self._tails: list[str] = []
        self._counts: list[int] = []
        self._templates: list[str] | None = None

    def add(self, message: str) -> int:
        """Add one message; return an id for `template`. Messages with the same masked text share an id;
        messages of one group may have several ids, all with the same template."""
        masked = _mask(_protect(_clip(message), self._protected))
        form = self._forms.get(masked)
        if form is None:  # most messages repeat a form: Drain sees each form once
            form = self._forms[masked] = self._add_form(masked)
        self._counts[form] += 1
        self._templates = None
        return form

    def template(self, cluster_id: int) -> str:
        """The final template of the group of `cluster_id` (an id `add` returned), given every message
        added so far. Messages of one group share their template. Raises IndexError for an unknown id."""
        if not 0 <= cluster_id < len(self._counts):
            raise IndexError(f"no message was given the id {cluster_id}")
        if self._templates is None:
            self._templates = self._final_templates()
        return self._templates[cluster_id]

    def _add_form(self, masked: str) -> int:
        tokens, tail = _fold_tail(masked.split())
        anchors = _anchors(" ".join(tokens))
        drain = self._drains.get(anchors)
        if drain is None:
            drain = self._drains[anchors] = _Drain()
        cluster, _ = drain.add_log_message(tokens)
        self._tokens.append(tokens)
        self._clusters.append(cluster)
        self._tails.append(tail)
        self._counts.append(0)
        return len(self._tokens) - 1

    def _final_templates(self) -> list[str]:
        by_cluster: dict[int, list[int]] = defaultdict(list)
        for form, cluster in enumerate(self._clusters):
            by_cluster[id(cluster)].append(form)
        bases = [""] * len(self._tokens)
        for forms in by_cluster.values():
            template = self._clusters[forms[0]].log_template_tokens
            constant = [p for p, token in enumerate(template) if token == WILDCARD and self._is_constant(forms, p)]
            shared = " ".join(template)
            for form in forms:
                bases[form] = self._restored(template, constant, form) if constant else shared
        tails: dict[str, set[str]] = defaultdict(set)
        for form, tail in enumerate(self._tails):
            if tail:
                tails[bases[form]].add(tail)
        return [_render(base, tails.get(base, set())) for base in bases]

    def _restored(self, template: Sequence[str], positions: Sequence[int], form: int) -> str:
        tokens = list(template)
        for p in positions:
            tokens[p] = self._tokens[form][p]
        return " ".join(tokens)

    def _is_constant(self, forms: Sequence[int], position: int) -> bool:
        """Rule 7: plain words only, and either at most CONSTANT_VALUES of them, each in CONSTANT_REPEATS
        messages or more, or at most CONSTANT_NAMES names in CONSTANT_CASE."""
        counts: dict[str, int] = defaultdict(int)
        for form in forms:
            word = self._tokens[form][position]
            if WILDCARD in word or not _PLAIN_WORD.fullmatch(word):
                return False
            counts[word] += self._counts[form]
            if len(counts) > CONSTANT_NAMES:
                return False
        if len(counts) <= CONSTANT_VALUES and min(counts.values()) >= CONSTANT_REPEATS:
            return True
        return all(_CONSTANT_CASE.fullmatch(word) for word in counts)


def mine_templates(messages: Sequence[str], protected: Collection[str] = ()) -> list[str]:
    """Return the final template of each message, in order."""
    miner = Miner(protected)
    ids = [miner.add(message) for message in messages]
    return [miner.template(cluster_id) for cluster_id in ids]


class _Drain(Drain):  # type: ignore[misc]  # drain3 has no type information
    """drain3's Drain with the changes of rule 6."""

    def __init__(self) -> None:
        super().__init__(depth=DEPTH, sim_th=SIMILARITY, parametrize_numeric_tokens=True)

    @staticmethod
    def has_numbers(s: str) -> bool:
        # drain3 asks this of a token before making it a branch of the tree.
        return WILDCARD in s or _VALUE_LIKE.search(s) is not None

    def fast_match(self, cluster_ids: list[int], tokens: Sequence[str], sim_th: float, include_params: bool) -> Any:
        # A leaf keeps its newest LEAF_CLUSTERS clusters only: a flood of unrelated messages of one length
        # and first token would otherwise cost time quadratic in their number, here and in drain3's
        # insertion. drain3 (pinned) passes the leaf's own list, so trimming it here trims the leaf.
        del cluster_ids[:-LEAF_CLUSTERS]
        return super().fast_match(cluster_ids, tokens, sim_th, include_params)

    def get_content_as_tokens(self, content: list[str]) -> list[str]:
        return content  # the miner passes its tokens, already split

    def get_seq_distance(self, seq1: Sequence[str], seq2: Sequence[str], include_params: bool) -> tuple[float, int]:
        if not seq1:
            return 1.0, 0
        return sum(map(eq, seq1, seq2)) / len(seq1), seq1.count(WILDCARD)

    def create_template(self, seq1: Sequence[str], seq2: Sequence[str]) -> list[str]:
        return [a if a == b else WILDCARD for a, b in zip(seq1, seq2, strict=True)]


def _protected_pattern(words: Collection[str]) -> re.Pattern[str] | None:
    names = sorted({word for word in words if word and not word.isspace()}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, names))) if names else None


def _clip(message: str) -> str:
    if len(message) <= MAX_CHARS:
        return message
    head = message[:MAX_CHARS]
    cut = head.rfind(" ")
    return (head[:cut] if cut > 0 else head) + " " + WILDCARD


def _protect(text: str, protected: re.Pattern[str] | None) -> str:
    """Rule 2."""
    if protected is not None and protected.search(text):
        text = protected.sub(_protect_word, text)
    if "#" in text or _CODE_HINT.search(text):
        text = _hide_code(text)
    return text


def _hide_code(text: str) -> str:
    """Hide the digits of each code location: an identifier, then "#<line>" or ".<extension>:<line>"."""
    parts, done = [], 0
    for match in _CODE_TAIL.finditer(text):
        # The identifier runs back from the match; a regex cannot look back a variable length.
        begin = match.start()
        while begin > done and (text[begin - 1].isalnum() or text[begin - 1] in "_$.-"):
            begin -= 1
        while begin < match.start() and not (text[begin].isalpha() or text[begin] in "_$"):
            begin += 1
        if begin == match.start():
            continue
        # A segment of the file name that looks like a build hash ("checkout.1a2b3c4d.js") is a value
        # still: each build renames it, and the statement is the same.
        name = ".".join(
            segment if _BUILD_HASH.fullmatch(segment) else segment.translate(_HIDE_DIGITS)
            for segment in text[begin : match.start()].split(".")
        )
        parts += [text[done:begin], _OPEN + name + text[match.start() : match.end()].translate(_HIDE_DIGITS) + _CLOSE]
        done = match.end()
    return "".join(parts) + text[done:]


def _protect_word(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    # A whole word only: "search-service" is not protected inside "ts-search-service" or "searches".
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or before in "_.-" or after.isalnum() or after == "_":
        return match.group()
    return _hide(match.group())


def _hide(text: str) -> str:
    return _OPEN + text.translate(_HIDE_DIGITS) + _CLOSE


def _mask(text: str) -> str:
    """Rule 3: every value becomes WILDCARD."""
    # The cheap `in` tests spare most lines a pass of the rarer rules.
    if '="' in text or ':"' in text or "='" in text or ":'" in text:
        text = _QUOTED.sub(r'\1"<*>"', text)
    if "()" in text or "[]" in text or "{}" in text:
        text = _EMPTY.sub(r"\1<*>\2", text)
    text = _VALUE.sub(WILDCARD, text)
    lowered = text.lower()
    if "true" in lowered or "false" in lowered or "null" in lowered or "none" in lowered or "nil" in lowered:
        text = _WORD_VALUE.sub(WILDCARD, text)
    if WILDCARD in text:
        text = _REVERSED_STEM.sub(">*<", text[::-1])[::-1]
    return text


def _fold_tail(tokens: list[str]) -> tuple[list[str], str]:
    """Rule 4: split off an optional trailing "(... <*> ...)" of at most three tokens."""
    if len(tokens) < 2 or not tokens[-1].endswith(")"):
        return tokens, ""
    for start in range(len(tokens) - 1, max(0, len(tokens) - 3) - 1, -1):
        if tokens[start].startswith("("):
            tail = " ".join(tokens[start:])
            foldable = start > 0 and WILDCARD in tail and tail.count("(") == 1 and _OPEN not in tail
            return (tokens[:start], tail) if foldable else (tokens, "")
    return tokens, ""


def _anchors(masked: str) -> tuple[tuple[int, str], ...]:
    """Rule 5: the (position, token) of each token holding an HTTP method, protected word or code location."""
    starts = [m.start() for m in _METHOD.finditer(masked)]
    if _OPEN in masked:
        starts += [m.start() for m in _MARKED.finditer(masked)]
    anchors = {}
    for start in sorted(starts):
        begin = masked.rfind(" ", 0, start) + 1
        end = masked.find(" ", start)
        anchors[masked.count(" ", 0, start)] = masked[begin : end if end >= 0 else len(masked)]
    return tuple(anchors.items())


def _render(base: str, tails: set[str]) -> str:
    if tails:
        base += " " + (next(iter(tails)) if len(tails) == 1 else "(" + WILDCARD + ")")
    return base.translate(_SHOW) if _OPEN in base else base
