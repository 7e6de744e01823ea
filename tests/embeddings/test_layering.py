"""embeddings/ sits below search/ and classifiers/: they read and write embeddings through it, never the reverse."""

import ast
from pathlib import Path

EMBEDDINGS = Path(__file__).resolve().parents[2] / "embeddings"
ABOVE = ("search", "classifiers")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


def test_embeddings_imports_neither_search_nor_classifiers():
    offending = {
        f"{path.relative_to(EMBEDDINGS.parent)}: {module}"
        for path in EMBEDDINGS.rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in ABOVE
    }
    assert not offending, offending


def test_the_old_homes_of_the_embedding_code_are_gone():
    root = EMBEDDINGS.parent
    assert not (root / "search" / "embedding.py").exists()
    assert not (root / "classifiers" / "vectors.py").exists()
