"""Read the post-gen hook's pruning table without rendering it: one source of truth."""

import ast
from pathlib import Path

HOOK = Path(__file__).resolve().parent.parent / "hooks" / "post_gen_project.py"


def prune_table() -> dict[tuple[str, ...], list[str]]:
    """Return the hook's PRUNE table, each key as the tuple of options its paths need."""
    for node in ast.parse(HOOK.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["PRUNE"]:
            table = ast.literal_eval(node.value)
            return {(key,) if isinstance(key, str) else key: paths for key, paths in table.items()}
    raise LookupError("PRUNE not found in the post-gen hook")
