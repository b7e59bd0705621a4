"""One file for the whole client: every module an entry reaches, in evaluation order.

Over HTTP/1.1 a browser opens six connections per host, so thirty-odd modules cost five or six round
trips even when all are preloaded; at 300 ms each that is most of a cold load. The client's modules
use a small subset of ES module syntax (named imports of relative modules; `export` in front of a
function, class or const), so they can be joined without a bundler:

    const __hrk = Object.create(null);
    __hrk["js/dom.js"] = (() => { …body without `export`…; return { h, icon }; })();
    __hrk["js/ui.js"] = (() => { const { h, icon } = __hrk["js/dom.js"]; …; return { … }; })();

Each module keeps its own scope, runs once, after the modules it imports, in the order the browser
would run them. Anything outside that subset (`export default`, `export let`, `export { … }`,
`import * as`, dynamic `import()`, `import.meta`, top-level `await`, an import cycle) makes
`bundle()` return None, and the shell preloads the separate modules instead.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

_IMPORT = re.compile(
    r"""^import\s*\{([^}]*)\}\s*from\s*(['"])(\.\.?/[^'"]+)\2[ \t]*;?[ \t]*$"""
    r"""|^import\s*(['"])(\.\.?/[^'"]+)\4[ \t]*;?[ \t]*$""",
    re.M,
)
_EXPORT = re.compile(r"^export\s+(?=(?:async\s+function|function|class|const)\b)", re.M)
_EXPORTED = re.compile(
    r"^export\s+(?:async\s+function\s*\*?|function\s*\*?|class|const)\s*([A-Za-z_$][\w$]*)", re.M
)
_UNSUPPORTED = re.compile(
    r"^\s*export\b(?!\s+(?:async\s+function|function|class|const\s+[A-Za-z_$]))"  # default, let, { }, *
    r"|\bimport\s*\("  # dynamic import
    r"|\bimport\.meta\b"
    r"|^import\b(?!\s*\{[^}]*\}\s*from\s*['\"]\.|\s*['\"]\.)"  # import * as, default imports, bare names
    r"|^(?:const|let|var)\s+[^=\n]+=\s*await\b|^await\b",  # top-level await
    re.M,
)
_NAME = re.compile(r"^[A-Za-z_$][\w$]*$")


def _bindings(names: str) -> str | None:
    """`a, b as c` -> `a, b: c` (a destructuring pattern), or None if it is not that."""
    out = []
    for part in (p.strip() for p in names.split(",")):
        if not part:
            continue
        original, _, local = (s.strip() for s in part.partition(" as "))
        if not _NAME.match(original) or (local and not _NAME.match(local)):
            return None
        out.append(f"{original}: {local}" if local else original)
    return ", ".join(out)


def bundle(
    entry: str, source: Callable[[str], str | None], imports: Callable[[str], list[str]]
) -> str | None:
    """The modules `entry` reaches joined into one script, or None if they use syntax this does not
    handle. `source(path)` is a module's text with its relative imports as written; `imports(path)`
    the logical paths it imports, in order."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(path: str) -> bool:
        if state.get(path) == 2:
            return True
        if state.get(path) == 1:
            return False  # a cycle: its evaluation order is the browser's business
        state[path] = 1
        if not all(visit(dep) for dep in imports(path)):
            return False
        state[path] = 2
        order.append(path)
        return True

    if not visit(entry):
        return None
    parts = [
        f"// {entry} and the modules it imports, joined by huirongke.web.bundle\n",
        "const __hrk = {};\n",
    ]
    for path in order:
        text = source(path)
        module = _module(path, text) if text is not None else None
        if module is None:
            return None
        parts.append(module)
    return "".join(parts)


def _module(path: str, text: str) -> str | None:
    """One module as `__hrk[path] = (() => { … return { exports }; })();`, or None."""
    if _UNSUPPORTED.search(text):
        return None
    base = posixpath.dirname(path)
    failed = False

    def imported(m: re.Match[str]) -> str:
        nonlocal failed
        spec = m.group(3) or m.group(5)
        target = posixpath.normpath(posixpath.join(base, spec))
        if m.group(1) is None:
            return f"/* import {spec} */"
        pattern = _bindings(m.group(1))
        if pattern is None:
            failed = True
            return ""
        return f"const {{ {pattern} }} = __hrk[{_quote(target)}];"

    body = _IMPORT.sub(imported, text)
    if failed or re.search(r"^\s*import\b", body, re.M):
        return None
    names = _EXPORTED.findall(body)
    body = _EXPORT.sub("", body)
    return f"__hrk[{_quote(path)}] = (() => {{\n{body.rstrip()}\nreturn {{ {', '.join(names)} }};\n}})();\n"


def _quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
