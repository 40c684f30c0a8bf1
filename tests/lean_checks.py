"""What tier 1 holds every bake's own code to: its size, and only public APIs of its libraries.

The owner reads and upgrades every line of a generated project for years, so its Python
(outside tests and migrations) is counted, each option's share reported, within a budget per
bake that keeps headroom; and no line reaches into a library's private parts, which an upgrade
may change without notice. Read by tests/test_lean.py, which also runs each check on code written
to fail it.
"""

import ast
import builtins
import importlib
from collections.abc import Iterator
from pathlib import Path

# Folders of a generated project whose Python is not the service's own code.
NOT_COUNTED = {"tests", "migrations"}
# Underscored names that are documented public API all the same, each with where it is.
PUBLIC_UNDERSCORED = {
    # werkzeug.local.LocalProxy._get_current_object: documented ("Local proxies" in werkzeug's
    # docs) as the way to get the object behind current_app or request.
    "_get_current_object",
}
# Library classes a project class may subclass, each documented as meant to be subclassed.
SUBCLASSABLE = {
    "pydantic.BaseModel": "pydantic's models",
    "pydantic_settings.BaseSettings": "pydantic-settings' settings classes",
    "sqlalchemy.orm.DeclarativeBase": "SQLAlchemy 2's declarative base",
    "werkzeug.routing.BaseConverter": "werkzeug's 'Custom Converters'",
    "click.ClickException": "click's 'Exception Handling': raise your own subclass",
    "logging.Filter": "the logging module's filters",
    "celery.Task": "Celery's 'Custom task classes'",
    "werkzeug.wsgi.LimitedStream": "werkzeug's LimitedStream: on_disconnect is there to override",
    "flask.Request": "Flask.request_class: 'the class that is used for request objects'",
    "Exception": "a built-in exception",
    "typing.NamedTuple": "the typing module",
    "typing.TypedDict": "the typing module",
    "enum.Enum": "the enum module: 'Enum is the base class for all enum enumerations'",
    "enum.StrEnum": "the enum module: 'the same as Enum, but its members are also strings'",
    "flask_login.UserMixin": "Flask-Login: 'you can inherit from UserMixin'",
    "opentelemetry.sdk.trace.sampling.Sampler": "OpenTelemetry's 'Custom samplers': subclass it",
}


def service_modules(root: Path) -> Iterator[Path]:
    """Yield every Python file of a generated project but its tests and migrations."""
    for path in sorted(root.rglob("*.py")):
        if not NOT_COUNTED.intersection(path.relative_to(root).parts):
            yield path


def line_count(path: Path) -> int:
    """Return a file's number of lines, as `wc -l` counts them for a file ending in a newline."""
    return len(path.read_text().splitlines())


def service_lines(root: Path) -> int:
    """Return the lines of a generated project's own Python (service_modules), all together."""
    return sum(line_count(path) for path in service_modules(root))


def _imports(tree: ast.Module, package: str) -> dict[str, str]:
    """Return each name a module binds by importing a library, and what it names (a.b.c)."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top != package:  # import a.b binds a; import a.b as c binds c to a.b
                    bound[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != package:
                for alias in node.names:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _dotted(node: ast.expr) -> list[str] | None:
    """Return the names of an attribute chain (a.b.c -> [a, b, c]); None if it is not one."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(names)]


def _is_module(name: str) -> bool:
    """Say whether a dotted name names a module (not a class, function or object of one)."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _private(name: str) -> bool:
    """Say whether a name is private: one leading underscore, not a dunder, not listed public."""
    dunder = name.startswith("__") and name.endswith("__")
    return name.startswith("_") and not dunder and name not in PUBLIC_UNDERSCORED


def private_uses(source: str, package: str) -> list[str]:
    """Return each reach into a library's internals in a module's source, as 'line: what'.

    Found: an underscored attribute of anything but the module's own self or cls; an import of
    a library's underscored module or name; a library module's attribute assigned; a class
    whose base is a library class not listed in SUBCLASSABLE.
    """
    tree = ast.parse(source)
    imported = _imports(tree, package)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{node.lineno}: private attribute .{node.attr}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            module = getattr(node, "module", None) or ""
            if getattr(node, "level", 0) or module.split(".")[0] == package:
                continue
            names = [module, *(alias.name for alias in node.names)]
            if any(_private(part) for name in names for part in name.split(".") if part):
                found.append(f"{node.lineno}: import of a private module or name {names}")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                chain = _dotted(target) if isinstance(target, ast.Attribute) else None
                if chain and chain[0] in imported and _is_module(imported[chain[0]]):
                    found.append(f"{node.lineno}: library attribute replaced: {'.'.join(chain)}")
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                chain = _dotted(base) or ["?"]
                if chain[0] in imported:
                    full = ".".join([imported[chain[0]], *chain[1:]])
                elif chain[0] in vars(builtins):
                    full = chain[0]
                else:
                    continue  # a class of the project's own
                if full not in SUBCLASSABLE:
                    found.append(f"{node.lineno}: class {node.name} subclasses {full}")
    return found
