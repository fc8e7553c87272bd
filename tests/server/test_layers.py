"""The server package's layers: preparation below, the serving runtime reading it only as an artefact.

Imports are read from the source (module level and inside functions alike), so a lazy import
cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import reranker_server

PACKAGE: Final = Path(reranker_server.__file__).parent
#: The one runtime module that may reach into preparation: serving without --artefact prepares there.
PREPARES_ON_THE_SPOT: Final = {"reranker_server.loading", "reranker_server.cli", "reranker_server.testmodel"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reranker_server"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("reranker_server")}
        graph[module_name(path)] = found - {"reranker_server"}
    return graph


def test_the_server_modules_import_each_other_without_a_cycle() -> None:
    graph = imports()
    visiting, done = set(), set()

    def visit(module: str, path: list[str]) -> None:
        if module in done or module not in graph:
            return
        assert module not in visiting, f"import cycle: {' -> '.join([*path, module])}"
        visiting.add(module)
        for imported in graph[module]:
            visit(imported, [*path, module])
        visiting.discard(module)
        done.add(module)

    for module in graph:
        visit(module, [])


def test_only_the_loading_edge_reaches_into_the_preparation() -> None:
    reaching = {
        module
        for module, imported in imports().items()
        if not module.startswith("reranker_server.preparation")
        and any(name.startswith("reranker_server.preparation") for name in imported)
    }
    assert reaching <= PREPARES_ON_THE_SPOT


def test_the_preparation_never_imports_the_http_layer_or_the_batcher() -> None:
    serving = {
        "reranker_server.api",
        "reranker_server.batcher",
        "reranker_server.warmup",
        "reranker_server.serve",
    }
    for module, imported in imports().items():
        if module.startswith("reranker_server.preparation"):
            assert not imported & serving, f"{module} imports {sorted(imported & serving)}"
