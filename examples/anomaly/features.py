"""Feature vectors for a batch of web-request events, computed a column at a time.

`extract(events)` returns a float32 matrix, one row per event, columns named by FEATURES.
The string work is done on whole batches: the batch's paths are joined into one text that
is lower-cased and URL-decoded in a few C-level calls, then split back; counts come from
numpy string ufuncs (`np.strings.count`) and from the paths viewed as a matrix of code
points. A token absent from the whole batch costs one substring test of the joined text,
not a pass per event. The only per-event Python is pulling fields out of the dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Percent-encodings undone before looking for tokens, so `%27` counts as `'`. Lower case:
# they are applied to lower-cased text. `%25` (the percent sign) is left alone, so double
# encoding stays visible in the `percent` count.
DECODE = (
    ("%27", "'"),
    ("%22", '"'),
    ("%3c", "<"),
    ("%3e", ">"),
    ("%2f", "/"),
    ("%5c", "\\"),
    ("%2e", "."),
    ("%3b", ";"),
    ("%3d", "="),
    ("%28", "("),
    ("%29", ")"),
    ("%20", " "),
    ("+", " "),
)

# Multi-character tokens, counted in the decoded, lower-cased path. Grouped by what they
# suggest; each group is one feature (the sum of its tokens' counts).
TOKEN_GROUPS: dict[str, tuple[str, ...]] = {
    "sql": (
        "union select", "select ", " or ", "' or", "or 1=1", "'='", "--", "sleep(",
        "waitfor delay", "drop table", "information_schema", "version()",
    ),
    "traversal": ("../", "..\\", "..;/", "....//", "/etc/passwd", "/etc/shadow", "win.ini",
                  "/proc/self", "web-inf"),
    "xss": ("<script", "</script", "javascript:", "onerror", "onload", "alert(", "<img",
            "<svg", "document.cookie"),
    "probe": ("/.env", "/.git", "wp-admin", "wp-login", "phpmyadmin", "cgi-bin", ".php",
              "server-status", ".sql", ".bak"),
}  # fmt: skip

# Single characters, counted on the decoded path's code-point matrix.
CHARS = {"quote": "'", "dquote": '"', "lt": "<", "gt": ">", "semicolon": ";", "paren": "("}

SCANNER_AGENTS = (
    "sqlmap", "nikto", "nmap", "masscan", "gobuster", "dirbuster", "wpscan", "zgrab",
    "acunetix", "nessus", "openvas", "w3af", "hydra", "nuclei",
)  # fmt: skip

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD")

FEATURES: tuple[str, ...] = (
    "path_len",
    "query_len",
    "digit_ratio",
    "percent",
    *(f"char_{name}" for name in CHARS),
    *(f"tok_{name}" for name in TOKEN_GROUPS),
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "log_bytes",
    "scanner_agent",
    "agent_len",
    *(f"method_{m.lower()}" for m in METHODS),
    "method_other",
)

_SEP = "\x1f"  # joins a batch's strings; a string holding it takes the slow path
_ZERO, _NINE = ord("0"), ord("9")


def extract(events: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """A (len(events), len(FEATURES)) float32 matrix. Missing fields count as empty/zero."""
    n = len(events)
    out = np.zeros((n, len(FEATURES)), dtype=np.float32)
    if n == 0:
        return out
    paths = [str(e.get("path") or "") for e in events]
    agents = [str(e.get("user_agent") or "") for e in events]
    methods = np.array([str(e.get("method") or "") for e in events])
    status = _numbers([e.get("status") for e in events])
    size = _numbers([e.get("bytes") for e in events])

    col = 0

    def put(values: np.ndarray) -> None:
        nonlocal col
        out[:, col] = values
        col += 1

    raw_lower, raw_text = _lower(paths)
    decoded_text = raw_text
    for encoded, plain in DECODE:
        if encoded in decoded_text:
            decoded_text = decoded_text.replace(encoded, plain)
    decoded = _split(decoded_text, n, [_decode(p) for p in raw_lower])

    lengths = np.fromiter(map(len, paths), dtype=np.float32, count=n)
    put(lengths)
    question = np.strings.find(raw_lower, "?")
    put(np.where(question >= 0, lengths - question - 1, 0))
    points = decoded.view(np.uint32).reshape(n, -1)  # code points, zero-padded
    digits = ((points >= _ZERO) & (points <= _NINE)).sum(axis=1)
    put(digits / np.maximum(lengths, 1))
    put(np.strings.count(raw_lower, "%") if "%" in raw_text else 0)
    for char in CHARS.values():
        put((points == ord(char)).sum(axis=1) if char in decoded_text else 0)
    for tokens in TOKEN_GROUPS.values():
        total = np.zeros(n, dtype=np.int64)
        for token in tokens:
            if token in decoded_text:
                total += np.strings.count(decoded, token)
        put(total)

    status_class = status // 100
    for klass in (2, 3, 4, 5):
        put(status_class == klass)
    put(np.log1p(np.maximum(size, 0)))

    agents_lower, agents_text = _lower(agents)
    scanner = np.zeros(n, dtype=bool)
    for name in SCANNER_AGENTS:
        if name in agents_text:
            scanner |= np.strings.find(agents_lower, name) >= 0
    put(scanner)
    put(np.fromiter(map(len, agents), dtype=np.float32, count=n))

    known = np.zeros(n, dtype=bool)
    for method in METHODS:
        is_method = methods == method
        known |= is_method
        put(is_method)
    put(~known)
    assert col == len(FEATURES)
    return out


def _numbers(values: list[Any]) -> np.ndarray:
    """Floats; anything that is not a number counts as 0."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([_number(v) for v in values], dtype=np.float64)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _lower(strings: list[str]) -> tuple[np.ndarray, str]:
    """The strings lower-cased as a numpy array, and joined as one text (for `in` tests)."""
    text = _SEP.join(strings).lower()
    return _split(text, len(strings), [s.lower() for s in strings]), text


def _split(text: str, n: int, fallback: list[str] | None = None) -> np.ndarray:
    """`text` split back into its `n` strings, as a fixed-width unicode array.

    When a string held the separator the split is wrong; `fallback` (the strings computed
    one by one) is used instead.
    """
    parts = text.split(_SEP)
    if len(parts) != n and fallback is not None:
        parts = fallback
    return np.array(parts, dtype=str)


def _decode(path: str) -> str:
    for encoded, plain in DECODE:
        path = path.replace(encoded, plain)
    return path
