"""Static files: fingerprinted names cached for a year, gzip for text, imports rewritten to the hashed
names, and a shell that is revalidated on every load so a deploy is picked up at once."""

from __future__ import annotations

import gzip
import posixpath
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from huirongke.web.assets import IMMUTABLE, StaticAssets, accepts_gzip, build
from huirongke.web.bundle import bundle
from huirongke.web.routes import ENTRY_MODULE, STATIC_DIR

HASHED = re.compile(r"\.[0-9a-f]{10}\.(js|css|svg)$")
IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.\.?/[^'"]+)['"]""")


def shell_urls(html: str) -> dict[str, list[str]]:
    return {
        "stylesheet": re.findall(r'<link rel="stylesheet" href="([^"]+)"', html),
        "icon": re.findall(r'<link rel="icon" href="([^"]+)"', html),
        "preload": re.findall(r'<link rel="modulepreload" href="([^"]+)"', html),
        "script": re.findall(r'<script type="module" src="([^"]+)"', html),
    }


def test_the_shell_is_revalidated_and_names_only_fingerprinted_files(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-cache"
    urls = shell_urls(r.text)
    assert urls["stylesheet"] and urls["icon"] and urls["script"]
    for url in [u for group in urls.values() for u in group]:
        assert url.startswith("/static/") and HASHED.search(url), url
    assert "/static/app.css" not in r.text and "/static/js/app.js" not in r.text


def test_fingerprinted_files_are_immutable_and_gzipped(client):
    urls = shell_urls(client.get("/").text)
    for url in urls["stylesheet"] + urls["script"] + urls["preload"] + urls["icon"]:
        packed = client.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
        assert packed.status_code == 200, url
        assert packed.headers["Cache-Control"] == IMMUTABLE == "public, max-age=31536000, immutable"
        assert packed.headers["Content-Encoding"] == "gzip", url
        assert packed.headers["Vary"] == "Accept-Encoding"
        assert packed.headers["ETag"]
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers
        assert plain.headers["Vary"] == "Accept-Encoding"  # a shared cache keeps both apart
        assert packed.content == plain.content  # httpx decoded the gzip body: the same bytes
        assert int(packed.headers["Content-Length"]) < len(plain.content)
    css = client.get(urls["stylesheet"][0])
    assert css.headers["content-type"].startswith("text/css")
    js = client.get(urls["script"][0])
    assert js.headers["content-type"].startswith("text/javascript")


def test_every_module_import_points_at_a_fingerprinted_file(client):
    """Following the imports from the fingerprinted entry module reaches only hashed URLs, each
    served immutably (the separate modules stay served beside the bundle)."""
    assets: StaticAssets = client.app.state.assets
    todo, seen = [assets.url(ENTRY_MODULE)], set()
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.headers["Cache-Control"] == IMMUTABLE, url
        for spec in IMPORT.findall(r.text):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(url), spec))
            assert HASHED.search(target), f"{url} imports {spec} by its plain name"
            todo.append(target)
    assert seen == set(assets.module_urls(ENTRY_MODULE))
    assert len(seen) > 10  # the whole client, not just the entry


def test_the_static_folder_has_no_broken_references():
    assets = build(STATIC_DIR)
    assert ENTRY_MODULE in assets and "app.css" in assets
    assert {a.path: a.missing for a in assets.values() if a.missing} == {}


def test_plain_names_still_answer_but_are_revalidated(client):
    r = client.get("/static/app.css")
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["Vary"] == "Accept-Encoding"
    again = client.get("/static/app.css", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    hashed = shell_urls(client.get("/").text)["stylesheet"][0]
    assert client.get(hashed, headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    assert client.get(hashed, headers={"If-None-Match": '"0000000000"'}).status_code == 200


def test_unknown_files_and_other_methods_get_the_error_body(client):
    r = client.get("/static/js/app.0000000000.js")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert client.get("/static/../routes.py").status_code == 404
    assert client.post("/static/app.css").status_code == 405
    assert client.head("/static/app.css").status_code == 200


def write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")


def test_a_change_in_an_imported_module_renames_every_importer(tmp_path):
    write(tmp_path, "js/app.js", "import { b } from './views/b.js';\nb();\n")
    write(tmp_path, "js/views/b.js", "import { c } from '../c.js';\nexport const b = () => c;\n")
    write(tmp_path, "js/c.js", "export const c = 1;\n")
    write(tmp_path, "js/d.js", "export const d = 1;\n")
    write(tmp_path, "app.css", ".a { background: url('img/x.svg'); }\n")
    write(tmp_path, "img/x.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>")
    before = build(tmp_path)
    b, c = before["js/views/b.js"], before["js/c.js"]
    assert f"from '../{posixpath.basename(c.hashed)}'" in b.body.decode()
    assert f"from './views/{posixpath.basename(b.hashed)}'" in before["js/app.js"].body.decode()
    assert f"url('./{before['img/x.svg'].hashed}')" in before["app.css"].body.decode()

    write(tmp_path, "js/c.js", "export const c = 2;\n")
    after = build(tmp_path)
    for path in ("js/c.js", "js/views/b.js", "js/app.js"):
        assert after[path].hashed != before[path].hashed, path
    assert after["js/d.js"].hashed == before["js/d.js"].hashed  # not reached: unchanged
    assert after["app.css"].hashed == before["app.css"].hashed


def test_a_module_cycle_is_named_by_one_hash_of_both(tmp_path):
    write(tmp_path, "a.js", "import { b } from './b.js';\nexport const a = 1;\n")
    write(tmp_path, "b.js", "import { a } from './a.js';\nexport const b = 2;\n")
    assets = build(tmp_path)
    a, b = assets["a.js"], assets["b.js"]
    assert f"'./{b.hashed}'" in a.body.decode() and f"'./{a.hashed}'" in b.body.decode()
    write(tmp_path, "b.js", "import { a } from './a.js';\nexport const b = 3;\n")
    again = build(tmp_path)
    assert again["a.js"].hashed != a.hashed and again["b.js"].hashed != b.hashed
    store = StaticAssets(tmp_path)
    assert store.module_urls("a.js") == ["/static/" + again["b.js"].hashed, "/static/" + again["a.js"].hashed]


def test_a_missing_import_is_left_as_written(tmp_path):
    write(tmp_path, "a.js", "import { x } from './gone.js';\n")
    assert build(tmp_path)["a.js"].missing == ("gone.js",)
    assert "'./gone.js'" in build(tmp_path)["a.js"].body.decode()


def test_watch_mode_picks_up_an_edit_and_production_does_not(tmp_path):
    write(tmp_path, "a.js", "export const a = 1;\n")
    watching, fixed = StaticAssets(tmp_path, watch=True), StaticAssets(tmp_path)
    first = watching.url("a.js")
    assert fixed.url("a.js") == first
    write(tmp_path, "a.js", "export const a = 22;\n")
    assert watching.url("a.js") != first
    assert fixed.url("a.js") == first


def test_binary_files_are_not_compressed(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    write(tmp_path, "tiny.css", "a{}")
    assets = build(tmp_path)
    assert assets["x.png"].gzipped is None and assets["x.png"].media_type == "image/png"
    assert assets["tiny.css"].gzipped is None  # gzip would be larger
    big = "body { color: red; }\n" * 200
    write(tmp_path, "big.css", big)
    assert gzip.decompress(build(tmp_path)["big.css"].gzipped or b"") == big.encode()


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        ("gzip", True),
        ("br, gzip, deflate", True),
        ("gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("GZIP ; q=0.0", False),
        ("identity", False),
        ("br", False),
        ("", False),
        ("gzip;q=x", False),
    ],
)
def test_accept_encoding(header, gzip_ok):
    assert accepts_gzip(header) is gzip_ok


# --- one bundle for the whole client ------------------------------------------------------------


def test_the_shell_loads_one_bundle_of_every_module(client, tmp_path):
    """Over HTTP/1.1 thirty-odd modules cost several round trips; the shell loads one file."""
    urls = shell_urls(client.get("/").text)
    assert urls["preload"] == []
    (script,) = urls["script"]
    assert re.search(r"/static/js/app\.bundle\.[0-9a-f]{10}\.js$", script), script
    r = client.get(script, headers={"Accept-Encoding": "gzip"})
    assert r.headers["Cache-Control"] == IMMUTABLE and r.headers["Content-Encoding"] == "gzip"
    text = r.text
    assets: StaticAssets = client.app.state.assets
    modules = [u.removeprefix("/static/") for u in assets.module_urls(ENTRY_MODULE)]
    logical = {a.hashed: a.path for a in assets.assets.values()}
    order = [logical[m] for m in modules]
    # every module once, each after the modules it imports (the order the browser runs them)
    starts = [text.index(f'__hrk["{path}"] = (() => {{') for path in order]
    assert starts == sorted(starts)
    assert all(text.count(f'__hrk["{path}"] = (') == 1 for path in order)
    assert not re.search(r"^\s*(import|export)\b", text, re.M)
    node = shutil.which("node")
    if node:  # a syntax check by a real JavaScript parser, as an ES module
        (tmp_path / "bundle.mjs").write_text(text, encoding="utf-8")
        result = subprocess.run(
            [node, "--check", str(tmp_path / "bundle.mjs")], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr


def test_bundle_binds_imports_in_evaluation_order(tmp_path):
    write(tmp_path, "c.js", "export const c = 1;\nexport function f() { return c; }\n")
    write(tmp_path, "b.js", "import { c as one } from './c.js';\nexport class B { v = one; }\n")
    write(tmp_path, "a.js", "import { B } from './b.js';\nimport { f } from './c.js';\nnew B(); f();\n")
    store = StaticAssets(tmp_path)
    script, preload = store.script("a.js")
    assert preload == [] and ".bundle." in script
    text = store.lookup(script.removeprefix("/static/"))[0].body.decode()  # type: ignore[index]
    assert text.index('__hrk["c.js"]') < text.index('__hrk["b.js"]') < text.index('__hrk["a.js"]')
    assert 'const { c: one } = __hrk["c.js"];' in text
    assert "return { c, f };" in text and "return { B };" in text
    node = shutil.which("node")
    if node:  # run it: the classes and functions are wired up
        (tmp_path / "run.mjs").write_text(
            text + '\nconsole.log(new __hrk["b.js"].B().v, __hrk["c.js"].f());\n'
        )
        out = subprocess.run([node, str(tmp_path / "run.mjs")], capture_output=True, text=True)
        assert out.stdout.split() == ["1", "1"], out.stderr


@pytest.mark.parametrize(
    "source",
    [
        "export default function x() {}\n",
        "export let x = 1;\n",
        "const x = 1;\nexport { x };\n",
        "import * as c from './c.js';\n",
        "const m = await import('./c.js');\n",
        "export const { x } = { x: 1 };\n",
    ],
)
def test_syntax_the_bundle_does_not_handle_falls_back_to_modules(tmp_path, source):
    write(tmp_path, "c.js", "export const c = 1;\n")
    write(tmp_path, "a.js", source)
    store = StaticAssets(tmp_path)
    script, preload = store.script("a.js")
    assert script == store.url("a.js")
    assert preload == [u for u in store.module_urls("a.js") if u != script]


def test_a_cycle_falls_back_to_modules(tmp_path):
    write(tmp_path, "a.js", "import { b } from './b.js';\nexport const a = 1;\n")
    write(tmp_path, "b.js", "import { a } from './a.js';\nexport const b = 2;\n")
    assert (
        bundle("a.js", lambda p: (tmp_path / p).read_text(), lambda p: ["b.js" if p == "a.js" else "a.js"])
        is None
    )
    store = StaticAssets(tmp_path)
    assert store.script("a.js") == (store.url("a.js"), [store.url("b.js")])


def test_relative_urls_never_read_the_working_directory(tmp_path, monkeypatch):
    """A server whose working directory was deleted (a replaced release folder) still starts."""
    from huirongke.web.assets import _relative

    assert _relative("js/dom.1.js", "js/views") == "../dom.1.js"
    assert _relative("js/a.1.js", "js") == "./a.1.js"
    assert _relative("js/views/b.1.js", "js") == "./views/b.1.js"
    assert _relative("img/x.1.svg", "") == "./img/x.1.svg"
    assert _relative("img/x.1.svg", "css/deep") == "../../img/x.1.svg"
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert build(STATIC_DIR)[ENTRY_MODULE].body
