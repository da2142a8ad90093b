"""The import structure a newcomer can rely on: no module-level cycle between our modules, and
no hidden ones behind imports inside functions (at most a few, each saying why)."""

import ast

from huey.contrib.djhuey import HUEY

from tests import import_graph

# Function-level imports of our own modules that may stay, each with a comment on its line or
# the line above saying why. Anything else must move to the top of its module.
MAX_LOCAL_IMPORT_STATEMENTS = 5


def test_the_import_graph_has_no_cycle():
    edges, _ = import_graph.build()
    assert import_graph.cycles(edges) == []


def test_the_cycle_check_finds_a_cycle():
    assert import_graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]


def test_function_level_imports_between_our_modules_are_few_and_explained():
    _, local = import_graph.build()
    statements = {(item.module, item.line): item for item in local}
    unexplained = [f"{m}:{line} -> {i.target}" for (m, line), i in statements.items() if not i.comment]
    assert unexplained == []
    assert len(statements) <= MAX_LOCAL_IMPORT_STATEMENTS, sorted(statements)


def test_the_import_check_sees_imports_inside_functions(tmp_path, monkeypatch):
    module = tmp_path / "marketplace" / "late.py"
    module.parent.mkdir()
    (tmp_path / "marketplace" / "__init__.py").write_text("")
    (tmp_path / "marketplace" / "early.py").write_text("from marketplace import late\n")
    module.write_text("def f():\n    from marketplace import early\n")
    monkeypatch.setattr(import_graph, "ROOT", tmp_path)
    edges, local = import_graph.build()
    assert edges["marketplace.early"] == {"marketplace.late"}
    assert [(i.module, i.target, i.comment) for i in local] == [
        ("marketplace.late", "marketplace.early", "")
    ]


def _task_names_in_the_code() -> set[str]:
    names = set()
    for path in import_graph.app_modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None))
                in {"enqueue", "enqueue_on_commit"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(node.args[0].value)
    return names


def test_every_task_queued_by_name_is_registered():
    names = _task_names_in_the_code()
    assert "marketplace.tasks.order_deadline_task" in names  # the scan finds them
    registered = set(HUEY._registry._registry)
    assert names - registered == set()
