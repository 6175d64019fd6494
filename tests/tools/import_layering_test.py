"""Dependencies point one way: every import in florence_keras/, recipes/ and tools/ follows the layering.

    layers <- losses <- models <- data <- {training | evaluation | export} <- recipes
                        models <- converters <- recipes

(`a <- b`: b may import a, and everything a may import.) Siblings never import each other: training and evaluation
are two consumers of the same models and data, and export serves a Task (the model and its preprocessing), so it
needs neither training nor evaluation code. `florence_keras/__init__.py` (the public API) may import any layer;
`florence_keras.version` is a leaf anyone may import. tools/ may import the library, never the tests; nothing in
florence_keras/ or recipes/ imports tests either (also not by putting a tests folder on `sys.path`), and absl flags
are defined and read only in recipes (the library takes plain arguments).

Every import counts: module level, inside functions (lazy), relative, and `importlib.import_module("...")` with a
constant name. A failure lists each offending edge with its file and line.

Run this file directly for the package-level dependency picture (`python tests/tools/import_layering_test.py`).
"""

import ast
import collections
import os
import sys

# The real checkout, also under `bazel test` (runfiles are symlinks into it; the test is tagged "external" in
# tools/generate_build.py so Bazel never serves a cached pass after the tree changed).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
SCANNED_ROOTS = ("florence_keras", "recipes", "tools")
LIBRARY_LAYERS = ("layers", "losses", "models", "data", "converters", "training", "evaluation", "export")

# What each layer may import besides itself and `version`.
ALLOWED = {
    "layers": set(),
    "losses": {"layers"},
    "models": {"layers", "losses"},
    "converters": {"layers", "losses", "models"},
    "data": {"layers", "losses", "models"},
    "training": {"layers", "losses", "models", "data"},
    "evaluation": {"layers", "losses", "models", "data"},
    "export": {"layers", "losses", "models", "data"},
    "florence_keras": set(LIBRARY_LAYERS),  # the package's __init__: the public API
    "version": set(),
    "recipes": set(LIBRARY_LAYERS) | {"florence_keras"},
    "tools": set(LIBRARY_LAYERS) | {"florence_keras"},
}

Edge = collections.namedtuple("Edge", ["path", "line", "source", "target", "imported"])


def layer_of_path(path):
    """The layer of a repository file ("florence_keras/models/x.py" -> "models")."""
    parts = path.split("/")
    if parts[0] != "florence_keras":
        return parts[0]
    if len(parts) == 2:
        return "version" if parts[1] == "version.py" else "florence_keras"
    return parts[1]


def layer_of_module(dotted):
    """The layer of an imported first-party module, or None for a third-party one."""
    parts = dotted.split(".")
    if parts[0] == "tests":
        return "tests"
    if parts[0] in ("recipes", "tools", "benchmarks"):
        return parts[0]
    if parts[0] != "florence_keras":
        return None
    if len(parts) == 1:
        return "florence_keras"
    if parts[1] == "version":
        return "version"
    return parts[1] if parts[1] in LIBRARY_LAYERS else "florence_keras"


def _module_name(path):
    """`florence_keras/models/x.py` -> `florence_keras.models.x` (an `__init__` is its package)."""
    parts = path[: -len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_path_with_tests(node):
    """True when an expression names a `tests` folder (`os.path.join(root, "tests", ...)`, "tests/training")."""
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            if child.value == "tests" or child.value.startswith("tests/") or "/tests/" in child.value:
                return True
    return False


def imports_of(path, source, repo_root=REPO_ROOT):
    """`[(line, dotted module name)]` imported by one file, first-party or not."""
    tree = ast.parse(source, filename=path)
    name = _module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    folder = os.path.join(repo_root, os.path.dirname(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # `from florence_keras import models` imports florence_keras.models.
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            attr = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
                found.append((node.lineno, str(node.args[0].value)))
            # sys.path.insert(0, ".../tests/...") then `import helper`: an import of the tests.
            if (attr in ("insert", "append") and isinstance(func, ast.Attribute)
                    and ast.unparse(func.value) == "sys.path" and any(_is_path_with_tests(a) for a in node.args)):
                found.append((node.lineno, "tests"))
    resolved = []
    for line, module in found:
        top = module.split(".")[0]
        if top not in ("florence_keras", "recipes", "tools", "tests", "benchmarks"):
            # A module beside the importing file (a recipe's shared flags module): the same layer.
            if os.path.exists(os.path.join(folder, f"{top}.py")):
                module = f"{os.path.dirname(path).replace('/', '.')}.{module}"
        resolved.append((line, module))
    return resolved


def scan(repo_root=REPO_ROOT, roots=SCANNED_ROOTS):
    """`(edges, absl_flag_uses)`: every first-party import edge between layers, and absl flags in the library."""
    edges, flag_uses = [], []
    for root in roots:
        for folder, dirs, files in os.walk(os.path.join(repo_root, root)):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
            for filename in sorted(files):
                if not filename.endswith(".py"):
                    continue
                path = os.path.relpath(os.path.join(folder, filename), repo_root).replace(os.sep, "/")
                with open(os.path.join(repo_root, path), encoding="utf-8") as f:
                    source = f.read()
                source_layer = layer_of_path(path)
                for line, module in imports_of(path, source, repo_root):
                    target = layer_of_module(module)
                    if target is not None:
                        edges.append(Edge(path, line, source_layer, target, module))
                    if root == "florence_keras" and module.split(".")[:2] == ["absl", "flags"]:
                        flag_uses.append(f"{path}:{line} imports {module}")
                if root == "florence_keras":
                    flag_uses.extend(_flag_definitions(path, source))
    return edges, flag_uses


def _flag_definitions(path, source):
    found = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("DEFINE")):
            found.append(f"{path}:{node.lineno} calls {ast.unparse(node.func)}(...)")
    return found


def violations(edges):
    """The edges the layering forbids, as readable lines."""
    bad = []
    for edge in edges:
        if edge.target in (edge.source, "version"):
            continue
        allowed = ALLOWED.get(edge.source)
        if allowed is None or edge.target not in allowed:
            may = ", ".join(sorted(allowed)) if allowed else "nothing outside itself"
            bad.append(f"{edge.path}:{edge.line}: {edge.source} -> {edge.target} (imports {edge.imported}); "
                       f"{edge.source} may import: {may}")
    return bad


def package_edges(edges):
    """`{(source layer, target layer): number of imports}` between different layers."""
    counts = collections.Counter((e.source, e.target) for e in edges if e.source != e.target)
    return dict(sorted(counts.items()))


def dependency_picture(edges):
    """The package-level dependency graph as text: one line per layer with what it imports."""
    by_source = collections.defaultdict(dict)
    for (source, target), count in package_edges(edges).items():
        by_source[source][target] = count
    order = ["layers", "losses", "models", "converters", "data", "training", "evaluation", "export",
             "florence_keras", "recipes", "tools"]
    lines = []
    for source in order + sorted(set(by_source) - set(order)):
        targets = by_source.get(source, {})
        text = ", ".join(f"{t} ({n})" for t, n in sorted(targets.items())) or "(nothing first-party)"
        lines.append(f"{source:>15} -> {text}")
    return "\n".join(lines)


# ---- the tests -----------------------------------------------------------------------------------------------


def test_imports_follow_the_layering():
    edges, _ = scan()
    assert len(edges) > 100  # the scan really read the tree
    bad = violations(edges)
    assert not bad, ("Imports against the layering (file:line: edge):\n  " + "\n  ".join(bad)
                     + "\n\nPackage-level picture:\n" + dependency_picture(edges))


def test_no_absl_flags_in_the_library():
    _, flag_uses = scan()
    assert not flag_uses, "absl flags belong in recipes/ only:\n  " + "\n  ".join(flag_uses)


def test_the_checker_finds_each_kind_of_backward_import(tmp_path):
    # A small tree with one offence of each kind, and allowed imports that must not be reported.
    files = {
        "florence_keras/__init__.py": "from florence_keras import models\n",
        "florence_keras/version.py": "__version__ = '0'\n",
        "florence_keras/layers/a.py": "import numpy\n",
        "florence_keras/models/__init__.py": "from . import m\n",
        "florence_keras/models/m.py": "from florence_keras.layers import a\nfrom florence_keras import version\n",
        "florence_keras/models/lazy.py": "def f():\n    from florence_keras.training import t\n",
        "florence_keras/training/t.py": (
            "import importlib\nfrom ..evaluation import e\n"
            "importlib.import_module('florence_keras.export.x')\n"
        ),
        "florence_keras/evaluation/e.py": "from absl import flags\nflags.DEFINE_string('x', None, '')\n",
        "florence_keras/export/x.py": "from florence_keras.models import m\n",
        "recipes/r.py": "import shared_flags\nfrom florence_keras.export import x\n",
        "recipes/shared_flags.py": "from florence_keras.evaluation import e\n",
        "tools/tool.py": "import os, sys\nsys.path.insert(0, os.path.join('root', 'tests', 'training'))\n",
        "tools/other.py": "from tests.training import toy\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    edges, flag_uses = scan(str(tmp_path))
    bad = {line.split(" (imports")[0] for line in violations(edges)}
    assert bad == {
        "florence_keras/models/lazy.py:2: models -> training",        # lazy import
        "florence_keras/training/t.py:2: training -> evaluation",     # relative import, siblings
        "florence_keras/training/t.py:3: training -> export",         # importlib.import_module
        "tools/tool.py:2: tools -> tests",                            # a tests folder put on sys.path
        "tools/other.py:1: tools -> tests",
    }
    assert package_edges(edges)[("recipes", "export")] == 1
    assert ("recipes", "evaluation") in package_edges(edges)  # through the sibling flags module
    assert flag_uses == ["florence_keras/evaluation/e.py:1 imports absl.flags",
                         "florence_keras/evaluation/e.py:2 calls flags.DEFINE_string(...)"]


if __name__ == "__main__":
    all_edges, _ = scan()
    print(dependency_picture(all_edges))
    problems = violations(all_edges)
    print(f"\n{len(problems)} import(s) against the layering" + (":" if problems else "."))
    for problem in problems:
        print("  " + problem)
    sys.exit(1 if problems else 0)
