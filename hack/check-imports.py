#!/usr/bin/env python3
"""Fails when two files under src/ import each other, directly or in a
circle. A file's imports are the paths it names (`use` or inline) that
resolve to another file's module: `crate::a::b`, `super::x`, `self::x`, and
in a module file, bare paths into its child modules. Test modules
(`#[cfg(test)]`) are left out: they belong to the file they test. The
binaries (src/main.rs, src/bin/) are crates of their own and are skipped.

Usage: hack/check-imports.py [SRC_DIR]   (default: src)
"""
import os
import re
import sys


def module_of(path, src):
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return tuple(rel)


def block_end(text, open_at):
    """The index just past the `}` that closes the `{` at `open_at`."""
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(text)


def strip_tests(text):
    """Drops `#[cfg(test)]` items (a module or a function) and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = text.find("{", j)
        semi = text.find(";", j)
        if k < 0 or (0 <= semi < k):
            i = semi + 1
            continue
        i = block_end(text, k)


def inline_modules_relative(text):
    """Inside an inline `mod x { ... }`, `super::` names the file's own
    module: rewritten to `self::` so that it resolves to the file."""
    out, i = [], 0
    for m in re.finditer(r"\bmod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        end = block_end(text, m.end() - 1)
        out.append(text[i : m.start()])
        out.append(text[m.start() : end].replace("super::", "self::"))
        i = end
    out.append(text[i:])
    return "".join(out)


def expand(prefix, body):
    """`a::{b, c::{d, e}}` → ['a::b', 'a::c::d', 'a::c::e'] (roughly)."""
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([\w:]*?)::\{(.*)\}$", part, re.S)
        if m:
            out += expand(prefix + m.group(1) + "::", m.group(2))
        else:
            out.append(prefix + part)
    return out


def paths_in(text):
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text, re.S):
        stmt = re.sub(r"\s+", "", m.group(1))
        m2 = re.match(r"^([\w:]*?)::\{(.*)\}$", stmt, re.S)
        paths += expand(m2.group(1) + "::", m2.group(2)) if m2 else [stmt]
    paths += re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", text)
    return paths


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            path = os.path.join(root, name)
            if not name.endswith(".rs") or path == os.path.join(src, "main.rs"):
                continue
            if os.path.join(src, "bin") in path:
                continue
            files[module_of(path, src)] = path
    edges = {m: set() for m in files}
    for mod, path in files.items():
        is_dir_module = os.path.basename(path) in ("mod.rs", "lib.rs")
        text = inline_modules_relative(strip_tests(open(path, encoding="utf-8").read()))
        children = {m[-1] for m in files if len(m) == len(mod) + 1 and m[: len(mod)] == mod}
        candidates = paths_in(text)
        if is_dir_module:
            candidates += [c for c in re.findall(r"\b(\w+(?:::\w+)+)", text) if c.split("::")[0] in children]
        for p in candidates:
            segs = [s for s in p.split("::") if s]
            if not segs:
                continue
            parent = mod if is_dir_module else mod[:-1]
            if segs[0] == "crate":
                base, rest = (), segs[1:]
            elif segs[0] == "super":
                base, rest = parent, segs[1:]
                while rest and rest[0] == "super":
                    base, rest = base[:-1], rest[1:]
            elif segs[0] == "self":
                base, rest = mod, segs[1:]
            elif is_dir_module and segs[0] in children:
                base, rest = mod, segs
            else:
                continue
            target = base
            for seg in rest:
                if base + (seg,) in files or any(f[: len(base) + 1] == base + (seg,) for f in files):
                    base = base + (seg,)
                    if base in files:
                        target = base
                else:
                    break
            if target != mod and target in files:
                edges[mod].add(target)
    # Cycles: strongly connected components with more than one module.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    name = lambda m: files[m]
    if sccs:
        for comp in sccs:
            print("import cycle among: " + ", ".join(sorted(name(m) for m in comp)))
            for m in sorted(comp):
                inside = sorted(name(t) for t in edges[m] if t in comp)
                print(f"  {name(m)} -> {', '.join(inside)}")
        return 1
    print(f"check-imports: {len(files)} files, {sum(len(e) for e in edges.values())} imports, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
