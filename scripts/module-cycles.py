#!/usr/bin/env python3
"""Lists the module graph of src/ (who uses whom through `crate::` and
`super::` paths, test modules and doc comments aside) and fails if two
modules use each other, directly or through others.

    python3 scripts/module-cycles.py [--graph]
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return "::".join(rel) or "crate"


def strip(text):
    # Drop `#[cfg(test)] mod tests { ... }` (to the end of file, as written
    # here) and comments.
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
    if cut:
        text = text[: cut.start()]
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))


def known(modules, name):
    while name and name not in modules:
        name = "::".join(name.split("::")[:-1])
    return name


def main():
    files = [
        os.path.join(d, f) for d, _, fs in os.walk(SRC) for f in fs if f.endswith(".rs")
    ]
    modules = {module_of(f): f for f in files}
    edges = {m: set() for m in modules}
    for m, f in modules.items():
        text = strip(open(f, encoding="utf-8").read())
        parent = "::".join(m.split("::")[:-1])
        for path in re.findall(r"\bcrate::((?:\w+::)*\w+)", text):
            target = known(modules, path)
            if target and target != m and not m.startswith(target + "::"):
                edges[m].add(target)
        for path in re.findall(r"\bsuper::((?:\w+::)*\w+)", text):
            full = f"{parent}::{path}" if parent else path
            target = known(modules, full)
            if target and target != m and target != parent:
                edges[m].add(target)
    if "--graph" in sys.argv:
        for m in sorted(edges):
            print(f"{m} -> {', '.join(sorted(edges[m])) or '(nothing)'}")
    # Cycles: depth-first search.
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    for c in cycles:
        print("cycle: " + " -> ".join(c))
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
