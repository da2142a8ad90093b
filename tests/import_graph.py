"""The project's import graph, read from the source with `ast` (nothing is imported).

Edges follow Python's rules as import linters do: `from pkg import name` points at the module
`pkg.name` when that is a module of ours, else at `pkg` (its `__init__`); implicit imports of
parent packages are not edges. Imports under `if TYPE_CHECKING:` are not edges either: they
never run.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("project", "marketplace", "negotiation", "realtime", "sandbox")


@dataclass(frozen=True)
class LocalImport:
    """An import of one of our modules inside a function or class body."""

    module: str
    line: int
    target: str
    comment: str  # the comment on the import's line or the line above, "" when there is none


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_modules() -> dict[str, Path]:
    modules = {}
    for package in APP_PACKAGES:
        base = ROOT / package
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            if "migrations" in path.parts:
                continue
            modules[module_name(path)] = path
    return modules


def _resolve(node: ast.ImportFrom | ast.Import, current: str, is_package: bool) -> list[str]:
    """The module names one import statement refers to (ours or not)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = current.split(".") if is_package else current.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, *(node.module.split(".") if node.module else [])])
    else:
        source = node.module or ""
    return [f"{source}.{alias.name}" for alias in node.names] + [source]


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.Module) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """(module-level imports, imports inside functions or classes)."""
    top: list[ast.stmt] = []
    nested: list[ast.stmt] = []

    def visit(node: ast.AST, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking_block(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                (nested if inside else top).append(child)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, True)
            else:
                visit(child, inside)

    visit(tree, False)
    return top, nested


def _targets(node: ast.stmt, current: str, modules: dict[str, Path]) -> set[str]:
    is_package = modules[current].name == "__init__.py"
    found = set()
    names = _resolve(node, current, is_package)  # type: ignore[arg-type]
    if isinstance(node, ast.ImportFrom):
        *members, source = names
        ours = [member for member in members if member in modules]
        found.update(ours)
        if len(ours) < len(members) and source in modules:
            found.add(source)
    else:
        found.update(name for name in names if name in modules)
    found.discard(current)
    return found


def _comment_for(lines: list[str], line: int) -> str:
    same = lines[line - 1].partition("#")[2].strip()
    if same and "noqa" not in same:
        return same
    above = lines[line - 2].strip() if line >= 2 else ""
    return above[1:].strip() if above.startswith("#") else ""


def build() -> tuple[dict[str, set[str]], list[LocalImport]]:
    """(module-level edges between our modules, our function-level imports of our modules)."""
    modules = app_modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    local: list[LocalImport] = []
    for name, path in modules.items():
        source = path.read_text()
        tree = ast.parse(source)
        top, nested = _imports(tree)
        for node in top:
            edges[name] |= _targets(node, name, modules)
        lines = source.splitlines()
        for node in nested:
            for target in sorted(_targets(node, name, modules)):
                local.append(LocalImport(name, node.lineno, target, _comment_for(lines, node.lineno)))
    return edges, local


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(edges):
            if node not in index:
                connect(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


if __name__ == "__main__":
    graph, nested_imports = build()
    for component in cycles(graph):
        print("cycle:", " <-> ".join(component))
    for item in nested_imports:
        print(f"local import: {item.module}:{item.line} -> {item.target}  # {item.comment}")
