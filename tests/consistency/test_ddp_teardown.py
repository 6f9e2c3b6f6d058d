"""Every recipe that opens a DDP process group closes it.

A rank that leaves its process group to interpreter finalisation can die
with SIGABRT after a successful run (gloo's worker threads), which fails the
whole ``torchrun`` job: see ``speechbrain_sense.training.distributed``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    path
    for path in (ROOT / "recipes").rglob("*.py")
    if "ddp_init_group" in path.read_text(encoding="utf-8")
)


def main_block(tree):
    """Finds a module's ``if __name__ == "__main__":`` block.

    Arguments
    ---------
    tree : ast.Module
        The parsed script.

    Returns
    -------
    ast.If or None
        The block, or None if the script has none.
    """
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__"
        ):
            return node
    return None


def is_call_to(statement, name):
    """Whether a statement is a bare call of ``name``.

    Arguments
    ---------
    statement : ast.stmt
        The statement.
    name : str
        The function's name (or last attribute).

    Returns
    -------
    bool
        True for ``name()`` or ``a.b.name()``.
    """
    if not (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Call)
    ):
        return False
    func = statement.value.func
    return getattr(func, "id", getattr(func, "attr", None)) == name


def test_recipes_open_process_groups():
    """The check below has recipes to look at."""
    assert len(SCRIPTS) >= 7, SCRIPTS


@pytest.mark.parametrize(
    "script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT / "recipes"))
)
def test_main_block_ends_by_destroying_the_process_group(script):
    """The main block's last statement is ``ddp_destroy_group()``, at its top
    level, so every rank that got there calls it."""
    block = main_block(ast.parse(script.read_text(encoding="utf-8")))
    assert block is not None, f"{script}: no __main__ block"
    assert is_call_to(block.body[-1], "ddp_destroy_group"), (
        f"{script}:{block.body[-1].lineno}: the main block must end with "
        "ddp_destroy_group() (it opens a group with ddp_init_group)"
    )
