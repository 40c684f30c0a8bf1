"""The import graph of a generated package, read from its source, and the cycles in it.

Every import statement counts wherever it stands (module level, inside a function, under
``if TYPE_CHECKING:``): a cycle that only the type checker sees still ties the modules together.
Importing a submodule runs its parents' ``__init__`` first; that is not counted as an edge, as
import-linter does not count it either.
"""

import ast
from pathlib import Path


def module_name(package_dir: Path, path: Path) -> str:
    """Return the dotted name of the module at ``path`` in the package at ``package_dir``."""
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(package_dir: Path, path: Path, modules: set[str]) -> set[str]:
    """Return the package's modules that the module at ``path`` imports."""
    name = module_name(package_dir, path)
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from a import b` imports the module a.b when there is one, else a name of a
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            targets = [name if name in modules else base for name in submodules]
        else:
            continue
        found |= {target for target in targets if target in modules}
    found.discard(name)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Return each module of the package mapped to the package's modules it imports."""
    paths = sorted(package_dir.rglob("*.py"))
    modules = {module_name(package_dir, path) for path in paths}
    return {module_name(package_dir, p): imports_of(package_dir, p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)
