"""Static files as a browser should get them: content-hashed names cached for a year, gzip for text.

At start-up every file under the static folder is read once. JavaScript modules import each other by
relative path (`import { h } from './dom.js'`); those imports are rewritten to the hashed names
(`'./dom.3f2a9c1b0e.js'`), dependencies first, so a module's hash covers the modules it imports and
a change anywhere gives every module that reaches it a new URL. The same holds for `url(...)` in
CSS. Text files are gzip-compressed once, here, not per request.

URLs served:
- `/static/<dir>/<stem>.<hash>.<ext>` — the fingerprinted file: `Cache-Control: public,
  max-age=31536000, immutable`. Only the shell links to these, and the shell is `no-cache`, so a new
  deploy is picked up by the next page load and never by a half-old page.
- `/static/<dir>/<name>` — the plain name still answers, with `no-cache` and an ETag, for anything
  outside the shell that links to a file by its plain name.

With `watch=True` (dev) the folder is re-read when a file changed, so an edit shows on reload.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from huirongke.web.bundle import bundle

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
HASH_LENGTH = 10
COMPRESSIBLE = {".js", ".mjs", ".css", ".svg", ".json", ".txt", ".html", ".map", ".webmanifest"}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}

# `from './x.js'`, `import './x.js'`, `import('./x.js')`: relative module specifiers only.
_JS_IMPORT = re.compile(r"""(\bfrom\s*|\bimport\s*\(?\s*)(['"])(\.\.?/[^'"\s]+)\2""")
# `url(x)`, `url('x')`, `url("x")` in CSS, relative only (no scheme, no data:, no leading /).
_CSS_URL = re.compile(r"""(url\(\s*)(['"]?)(?![a-z][a-z0-9+.-]*:|/|#)([^'")\s]+)\2(\s*\))""", re.I)


@dataclass(frozen=True)
class Asset:
    path: str  # logical, relative to the static folder: "js/app.js"
    hashed: str  # "js/app.3f2a9c1b0e.js"
    body: bytes
    gzipped: bytes | None  # None when not text or not smaller
    media_type: str
    etag: str
    imports: tuple[str, ...]  # logical paths of the modules (or CSS urls) this file references
    missing: tuple[str, ...]  # references to files that do not exist: left as written (the browser 404s)
    source: bytes = b""  # JS and CSS as written (relative imports unchanged): what bundle.py joins


def _references(path: str, text: str) -> list[str]:
    pattern = _JS_IMPORT if path.endswith((".js", ".mjs")) else _CSS_URL
    base = posixpath.dirname(path)
    return [posixpath.normpath(posixpath.join(base, m.group(3))) for m in pattern.finditer(text)]


def _rewrite(path: str, text: str, hashed: dict[str, str]) -> str:
    base = posixpath.dirname(path)

    def relative(spec: str) -> str:
        target = hashed.get(posixpath.normpath(posixpath.join(base, spec)))
        if target is None:  # a missing file: left as written
            return spec
        return _relative(target, base)

    if path.endswith((".js", ".mjs")):
        return _JS_IMPORT.sub(lambda m: f"{m.group(1)}{m.group(2)}{relative(m.group(3))}{m.group(2)}", text)
    if path.endswith(".css"):
        return _CSS_URL.sub(
            lambda m: f"{m.group(1)}{m.group(2)}{relative(m.group(3))}{m.group(2)}{m.group(4)}", text
        )
    return text


def _relative(target: str, base: str) -> str:
    """`target` as a relative URL from the folder `base` (both relative to the static root).
    Not posixpath.relpath, which reads the process's working directory."""
    t, b = target.split("/"), base.split("/") if base else []
    common = 0
    while common < min(len(t) - 1, len(b)) and t[common] == b[common]:
        common += 1
    rel = "/".join([".."] * (len(b) - common) + t[common:])
    return rel if rel.startswith("../") else "./" + rel


def _hashed_name(path: str, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()[:HASH_LENGTH]
    stem, dot, ext = path.rpartition(".")
    return f"{stem}.{digest}.{ext}" if dot else f"{path}.{digest}"


def _media_type(path: str) -> str:
    ext = posixpath.splitext(path)[1].lower()
    return MEDIA_TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def _compress(path: str, body: bytes) -> bytes | None:
    if posixpath.splitext(path)[1].lower() not in COMPRESSIBLE:
        return None
    packed = gzip.compress(body, compresslevel=9, mtime=0)
    return packed if len(packed) < len(body) else None


def _components(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each after the components it references. A module
    cycle is one component: its members are named by one hash of them all."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def build(root: Path) -> dict[str, Asset]:
    """Every file under `root`, fingerprinted and compressed, by logical path."""
    raw: dict[str, bytes] = {}
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root)
        if file.is_file() and not any(part.startswith(".") for part in rel.parts):
            raw[rel.as_posix()] = file.read_bytes()
    texts = {p: b.decode("utf-8") for p, b in raw.items() if p.endswith((".js", ".mjs", ".css"))}
    found = {p: (_references(p, texts[p]) if p in texts else []) for p in raw}
    graph = {p: [d for d in deps if d in raw] for p, deps in found.items()}
    hashed: dict[str, str] = {}
    assets: dict[str, Asset] = {}
    for component in _components(graph):
        if len(component) == 1 and component[0] not in graph[component[0]]:
            path = component[0]
            body = _rewrite(path, texts[path], hashed).encode("utf-8") if path in texts else raw[path]
            hashed[path] = _hashed_name(path, body)
            bodies = {path: body}
        else:  # a cycle: one digest over every member (imports outside it already hashed)
            joint = hashlib.sha256()
            for path in component:
                joint.update(path.encode() + b"\0" + raw[path] + b"\0")
                joint.update(" ".join(hashed[d] for d in graph[path] if d in hashed).encode() + b"\0")
            for path in component:
                hashed[path] = _hashed_name(path, joint.hexdigest().encode() + path.encode())
            bodies = {p: _rewrite(p, texts[p], hashed).encode("utf-8") for p in component}
        for path, body in bodies.items():
            digest = hashed[path].rsplit(".", 2)[-2]
            assets[path] = Asset(
                path=path,
                hashed=hashed[path],
                body=body,
                gzipped=_compress(path, body),
                media_type=_media_type(path),
                etag=f'"{digest}"',
                imports=tuple(dict.fromkeys(graph[path])),
                missing=tuple(d for d in found[path] if d not in raw),
                source=raw[path] if path in texts else b"",
            )
    return assets


def _fingerprint(root: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(
        (str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(root.rglob("*")) if f.is_file()
    )


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (`gzip`, `*`, not `gzip;q=0`)."""
    for part in accept_encoding.split(","):
        coding, *params = (s.strip() for s in part.split(";"))
        if coding.lower() not in ("gzip", "*"):
            continue
        for param in params:
            if param.lower().startswith("q="):
                try:
                    return float(param[2:]) > 0
                except ValueError:
                    return False
        return True
    return False


class StaticAssets:
    """The ASGI app mounted at /static, and the shell's source of asset URLs."""

    def __init__(self, root: Path, *, prefix: str = "/static/", watch: bool = False) -> None:
        self.root = root
        self.prefix = prefix
        self.watch = watch
        self._load()

    def _load(self) -> None:
        self._stamp = _fingerprint(self.root) if self.watch else ()
        self.assets = build(self.root)
        # Hashed names from an earlier build stay served: a page loaded just before an edit (dev)
        # still gets the files it names.
        self._by_url: dict[str, tuple[Asset, bool]] = {
            url: found for url, found in getattr(self, "_by_url", {}).items() if found[1]
        }
        for asset in self.assets.values():
            self._by_url[asset.path] = (asset, False)
            self._by_url[asset.hashed] = (asset, True)
        self._bundles: dict[str, Asset | None] = {}

    def script(self, entry: str) -> tuple[str, list[str]]:
        """The shell's script URL for the module `entry`, and the module URLs to preload with it:
        one fingerprinted bundle of every module it reaches (bundle.py) when they can be joined,
        otherwise the entry module itself and all the modules it reaches."""
        self._fresh()
        if entry not in self._bundles:
            self._bundles[entry] = self._bundle(entry)
        joined = self._bundles[entry]
        if joined is not None:
            return self.prefix + joined.hashed, []
        urls = self.module_urls(entry)
        return urls[-1], urls[:-1]

    def _bundle(self, entry: str) -> Asset | None:
        def source(path: str) -> str | None:
            asset = self.assets.get(path)
            return asset.source.decode("utf-8") if asset is not None and not asset.missing else None

        text = bundle(entry, source, lambda path: list(self.assets[path].imports))
        if text is None:
            return None
        body = text.encode("utf-8")
        path = entry.removesuffix(".js") + ".bundle.js"
        hashed = _hashed_name(path, body)
        asset = Asset(
            path=path,
            hashed=hashed,
            body=body,
            gzipped=_compress(path, body),
            media_type=_media_type(path),
            etag=f'"{hashed.rsplit(".", 2)[-2]}"',
            imports=(),
            missing=(),
        )
        self._by_url[asset.path] = (asset, False)
        self._by_url[asset.hashed] = (asset, True)
        return asset

    def _fresh(self) -> None:
        if self.watch and _fingerprint(self.root) != self._stamp:
            self._load()

    def url(self, path: str) -> str:
        """The fingerprinted URL of a logical path (`app.css` -> `/static/app.3f2a9c1b0e.css`)."""
        self._fresh()
        return self.prefix + self.assets[path].hashed

    def module_urls(self, entry: str) -> list[str]:
        """The fingerprinted URLs of `entry` and every module it reaches, dependencies first: the
        shell preloads them all at once instead of discovering them one round trip per level."""
        self._fresh()
        seen: dict[str, None] = {}
        entered: set[str] = set()

        def walk(path: str) -> None:
            if path in entered:
                return
            entered.add(path)
            for dep in self.assets[path].imports:
                walk(dep)
            seen[path] = None

        walk(entry)
        return [self.prefix + self.assets[p].hashed for p in seen]

    def lookup(self, url_path: str) -> tuple[Asset, bool] | None:
        """(asset, fingerprinted?) for a path relative to the mount, or None."""
        self._fresh()
        return self._by_url.get(url_path.lstrip("/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        found = self.lookup(_mount_relative(scope))
        if found is None:
            raise HTTPException(status_code=404)
        response = respond(found[0], immutable=found[1], request_headers=Headers(scope=scope))
        await response(scope, receive, send)


def _mount_relative(scope: Scope) -> str:
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    return path[len(root_path) :] if root_path and path.startswith(root_path) else path


def respond(asset: Asset, *, immutable: bool, request_headers: Headers) -> Response:
    headers = {
        "Cache-Control": IMMUTABLE if immutable else REVALIDATE,
        "ETag": asset.etag,
    }
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if _matches(request_headers.get("if-none-match", ""), asset.etag):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and accepts_gzip(request_headers.get("accept-encoding", "")):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


def _matches(if_none_match: str, etag: str) -> bool:
    tags: Iterable[str] = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    return any(t in (etag, "*") for t in tags)
