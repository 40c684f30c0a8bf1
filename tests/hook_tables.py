"""Read the hooks' tables (PRUNE, RULES) and names without rendering the hooks: one source."""

import ast
from pathlib import Path

HOOKS = Path(__file__).resolve().parent.parent / "hooks"
HOOK = HOOKS / "post_gen_project.py"


def post_gen_value(name: str):
    """Return the literal the post-gen hook assigns to ``name`` at its top level."""
    for node in ast.parse(HOOK.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise LookupError(f"{name} not found in the post-gen hook")


def prune_table() -> dict[tuple[str, ...], list[str]]:
    """Return the hook's PRUNE table, each key as the tuple of options its paths need."""
    table = post_gen_value("PRUNE")
    return {(key,) if isinstance(key, str) else key: paths for key, paths in table.items()}


def rules_table() -> list[tuple[str, str, dict[str, str]]]:
    """Return the pre-gen hook's RULES as (field, value, needs) rows."""
    for node in ast.parse((HOOKS / "pre_gen_project.py").read_text()).body:
        if isinstance(node, ast.AnnAssign) and node.target.id == "RULES":
            return [
                tuple(ast.literal_eval(arg) for arg in call.args[:3]) for call in node.value.elts
            ]
    raise LookupError("RULES not found in the pre-gen hook")
