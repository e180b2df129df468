"""A double of the web search providers the gateway calls, on loopback:
one threaded HTTP server answering, under a path prefix per provider, in
that provider's own wire format:

- `/tavily`: POST JSON {query, max_results, include_domains?,
  exclude_domains?}, `Authorization: Bearer KEY` → {"results": [{title,
  url, content, published_date}]};
- `/serper`: POST JSON {q, num}, `X-API-KEY: KEY` → {"organic": [{title,
  link, snippet, date}]};
- `/brave`: GET ?q=&count=, `X-Subscription-Token: KEY` → {"web":
  {"results": [{title, url, description (with <strong> marks), age}]}};
- `/searxng`: GET ?q=&format=json (403 without format=json) →
  {"results": [{title, url, content, publishedDate}]};
- `/custom`: POST JSON {query, count, allowed_domains, blocked_domains,
  user_location}, optional Bearer key → {"results": [{url, title,
  snippet, page_age}]};
- `/ddg`: POST form q= → DuckDuckGo's HTML results page: an ad (a
  duckduckgo.com/y.js link) first, then results linked through
  //duckduckgo.com/l/?uddg=URL, their titles and snippets marked with <b>.

Results are derived from the query alone (`site:` operators taken out),
so a test knows what the gateway should show: five hits on
docs.example.com, blog.example.org, www.other.net, example.com and
notexample.com, titled "Result N for QUERY". The double never filters
by domain itself, so any filtering seen is the gateway's.

Every request is recorded (provider, method, path, query string,
headers, parsed body, and the search text as the provider read it).
`fail_with(status)` and `stall(seconds)` change how a provider (or all
of them) answers; a wrong API key gets 401."""

import hashlib
import html
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qsl, quote, urlsplit

# The gateway's provider kind → the path prefix it is served under.
PATHS = {
    "tavily": "tavily",
    "serper": "serper",
    "brave": "brave",
    "searxng": "searxng",
    "custom": "custom",
    "duckduckgo": "ddg",
}
PROVIDERS = tuple(PATHS.values())

# Where the five results of every query live (host, path tail).
SITES = [
    ("docs.example.com", "guide"),
    ("blog.example.org", "post"),
    ("www.other.net", "page"),
    ("example.com", "home"),
    ("notexample.com", "lookalike"),
]
AD_URL = "https://duckduckgo.com/y.js?ad_domain=shop.example&ad_provider=bingv7aa&u3=x"
AD_TITLE = "Sponsored: buy search results"

_SITE_OPERATORS = re.compile(r"\s*\((?:site:\S+?(?:\s+OR\s+)?)+\)|\s*-?site:\S+")


def plain_query(q):
    """`q` without the `site:` / `-site:` operators the gateway adds for
    providers that filter domains only through the query."""
    return " ".join(_SITE_OPERATORS.sub("", q or "").split())


def hits_for(query, kind="custom", count=5):
    """The results the double gives for `query`, as the gateway should read
    them: {url, title, snippet, page_age}. DuckDuckGo's page has no dates."""
    q = plain_query(query)
    slug = hashlib.sha1(q.encode()).hexdigest()[:10]
    out = []
    for i, (host, tail) in enumerate(SITES[: max(0, min(count, len(SITES)))], start=1):
        out.append(
            {
                "url": f"https://{host}/{slug}/{tail}",
                "title": f"Result {i} for {q}",
                "snippet": f"Snippet {i} about {q}.",
                "page_age": "2 days ago" if i == 1 and kind != "duckduckgo" else None,
            }
        )
    return out


def _ddg_page(hits, q):
    """A results page as html.duckduckgo.com/html/ serves it: an ad, then
    organic results whose links go through DuckDuckGo's redirect."""
    first, _, rest = html.escape(q).partition(" ")
    marked = f"<b>{first}</b> {rest}".strip()
    items = [
        '<div class="result results_links results_links_deep result--ad result--ad--small">'
        '<div class="links_main links_deep result__body">'
        f'<h2 class="result__title"><a rel="nofollow" class="result__a" href="{html.escape(AD_URL)}">'
        f"{html.escape(AD_TITLE)}</a></h2>"
        f'<a class="result__snippet" href="{html.escape(AD_URL)}">Ad text.</a>'
        "</div></div>"
    ]
    for i, h in enumerate(hits, start=1):
        href = f"//duckduckgo.com/l/?uddg={quote(h['url'], safe='')}&amp;rut=abc{i}"
        items.append(
            '<div class="result results_links results_links_deep web-result ">'
            '<div class="links_main links_deep result__body">'
            '<h2 class="result__title">'
            f'<a rel="nofollow" class="result__a" href="{href}">Result {i} for {marked}</a></h2>'
            f'<a class="result__snippet" href="{href}">Snippet {i} about {marked}.</a>'
            '<div class="clear"></div></div></div>'
        )
    return (
        "<!DOCTYPE html><html><head><title>DuckDuckGo</title></head><body>"
        '<div class="serp__results"><div id="links" class="results">'
        + "\n".join(items)
        + "</div></div></body></html>"
    ).encode()


def _answer(provider, query, count):
    """(content type, body) of a successful answer."""
    kind = next(k for k, p in PATHS.items() if p == provider)
    hits = hits_for(query, kind, count)
    if provider == "tavily":
        results = []
        for h in hits:
            r = {"title": h["title"], "url": h["url"], "content": h["snippet"], "score": 0.9, "raw_content": None}
            if h["page_age"]:
                r["published_date"] = h["page_age"]
            results.append(r)
        body = {"query": query, "answer": None, "images": [], "results": results, "response_time": 0.12}
    elif provider == "serper":
        organic = []
        for i, h in enumerate(hits, start=1):
            r = {"title": h["title"], "link": h["url"], "snippet": h["snippet"], "position": i}
            if h["page_age"]:
                r["date"] = h["page_age"]
            organic.append(r)
        params = {"q": query, "type": "search", "engine": "google"}
        body = {"searchParameters": params, "organic": organic, "credits": 1}
    elif provider == "brave":
        results = []
        for h in hits:
            # Brave marks the query's words in descriptions.
            desc = h["snippet"].replace(plain_query(query), f"<strong>{html.escape(plain_query(query))}</strong>")
            r = {"title": h["title"], "url": h["url"], "description": desc, "language": "en"}
            if h["page_age"]:
                r["age"] = h["page_age"]
            results.append(r)
        body = {"type": "search", "query": {"original": query}, "web": {"type": "search", "results": results}}
    elif provider == "searxng":
        results = [
            {"url": h["url"], "title": h["title"], "content": h["snippet"], "engine": "double",
             "category": "general", "publishedDate": h["page_age"]}
            for h in hits
        ]
        body = {"query": query, "number_of_results": len(results), "results": results,
                "answers": [], "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": []}
    elif provider == "custom":
        results = []
        for h in hits:
            r = {"url": h["url"], "title": h["title"], "snippet": h["snippet"]}
            if h["page_age"]:
                r["page_age"] = h["page_age"]
            results.append(r)
        body = {"results": results}
    else:  # ddg
        return "text/html; charset=UTF-8", _ddg_page(hits, plain_query(query))
    return "application/json", json.dumps(body).encode()


class ProviderDouble:
    """The provider double; `url` is its base (http://127.0.0.1:PORT)."""

    def __init__(self):
        # The key each provider expects; None: no key is checked.
        self.keys = {
            "tavily": "tvly-dev-" + secrets.token_hex(12),
            "serper": secrets.token_hex(20),
            "brave": "BSA" + secrets.token_hex(14),
            "searxng": None,
            "custom": None,
            "ddg": None,
        }
        self.got = []
        self.lock = threading.Lock()
        self._failures = {}
        self._stalls = {}
        self._wake = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer._handle(self)

            def do_POST(self):
                outer._handle(self)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # -- what tests use

    def url_for(self, kind):
        """The whole endpoint URL to give `ccag search set --url` for a provider kind."""
        return f"{self.url}/{PATHS[kind]}"

    def key_for(self, kind):
        return self.keys[PATHS[kind]]

    def expect_key(self, kind, key):
        """The key the provider of `kind` accepts from now on (None: any, or none)."""
        self.keys[PATHS[kind]] = key

    def expected(self, query, kind, count=5):
        """The hits the gateway should show for `query` searched with `kind`."""
        return hits_for(query, kind, count)

    def fail_with(self, status, kind=None):
        """Answers `status` instead of results: one provider kind, or all.
        429 and 500 are answered with a JSON error, DuckDuckGo's 202 with
        its challenge page."""
        with self.lock:
            self._failures[PATHS[kind] if kind else "*"] = status

    def stall(self, seconds, kind=None):
        """Waits `seconds` before answering (`heal` or `close` ends the wait)."""
        with self.lock:
            self._stalls[PATHS[kind] if kind else "*"] = seconds
            self._wake.clear()

    def heal(self):
        with self.lock:
            self._failures.clear()
            self._stalls.clear()
        self._wake.set()

    def requests(self, kind=None):
        """Requests received, oldest first: of one provider kind, or all."""
        with self.lock:
            return [g for g in self.got if kind is None or g.provider == PATHS[kind]]

    def queries(self, kind=None):
        """The search text of each request, as the provider read it."""
        return [g.query for g in self.requests(kind)]

    def clear(self):
        with self.lock:
            self.got.clear()

    def close(self):
        self._wake.set()
        self.server.shutdown()
        self.server.server_close()

    # -- serving

    def _handle(self, h):
        parts = urlsplit(h.path)
        provider = parts.path.strip("/").split("/", 1)[0]
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in h.headers.items()}
        raw = h.rfile.read(int(headers.get("content-length") or 0))
        ctype = headers.get("content-type", "")
        if ctype.startswith("application/json"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        elif ctype.startswith("application/x-www-form-urlencoded"):
            body = dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
        else:
            body = raw.decode(errors="replace") if raw else None
        query, count = self._search_of(provider, h.command, params, body)
        record = SimpleNamespace(
            provider=provider, method=h.command, path=h.path, params=params,
            headers=headers, body=body, query=query, count=count,
        )
        with self.lock:
            if provider in PROVIDERS:
                self.got.append(record)
            failure = self._failures.get(provider, self._failures.get("*"))
            stall = self._stalls.get(provider, self._stalls.get("*"))
        if provider not in PROVIDERS:
            return self._send(h, 404, "application/json", b'{"error": "no such provider"}')
        if stall:
            self._wake.wait(stall)
        want = {"tavily": "POST", "serper": "POST", "brave": "GET", "searxng": "GET", "custom": "POST", "ddg": "POST"}
        if h.command != want[provider]:
            return self._send(h, 405, "application/json", b'{"error": "method not allowed"}')
        if not self._key_ok(provider, headers, body):
            # Never echo what was sent: real services do not either.
            return self._send(h, 401, "application/json", b'{"error": "invalid API key"}')
        if failure:
            if provider == "ddg" and failure == 202:
                page = b"<html><body><div class='anomaly-modal'>Unfortunately, bots use DuckDuckGo too.</div>"
                return self._send(h, 202, "text/html; charset=UTF-8", page + b"</body></html>")
            extra = {"retry-after": "1"} if failure == 429 else {}
            err = json.dumps({"error": f"failing with {failure}"}).encode()
            return self._send(h, failure, "application/json", err, extra)
        if provider == "searxng" and params.get("format") != "json":
            # What an instance without the JSON format enabled answers.
            return self._send(h, 403, "text/html", b"<html>403 Forbidden</html>")
        if not query:
            return self._send(h, 400, "application/json", b'{"error": "query is required"}')
        ctype, payload = _answer(provider, query, count)
        self._send(h, 200, ctype, payload)

    @staticmethod
    def _search_of(provider, method, params, body):
        """(search text, result count) as the provider reads them."""
        b = body if isinstance(body, dict) else {}

        def num(v, default=5):
            try:
                return int(v)
            except (TypeError, ValueError):
                return default

        if provider == "tavily":
            return b.get("query"), num(b.get("max_results"))
        if provider == "serper":
            return b.get("q"), num(b.get("num"), 10)
        if provider == "brave":
            return params.get("q"), num(params.get("count"), 20)
        if provider == "searxng":
            return params.get("q"), 5
        if provider == "custom":
            return b.get("query"), num(b.get("count"))
        if provider == "ddg":
            return b.get("q") or params.get("q"), 5
        return None, 0

    def _key_ok(self, provider, headers, body):
        key = self.keys.get(provider)
        if key is None:
            return True
        if provider == "serper":
            return headers.get("x-api-key") == key
        if provider == "brave":
            return headers.get("x-subscription-token") == key
        if provider == "tavily" and isinstance(body, dict) and body.get("api_key") == key:
            return True
        return headers.get("authorization") == f"Bearer {key}"

    @staticmethod
    def _send(h, status, ctype, payload, extra=None):
        try:
            h.send_response(status)
            h.send_header("content-type", ctype)
            h.send_header("content-length", str(len(payload)))
            for k, v in (extra or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway gave up (its search timeout) while we stalled
