"""The package's import structure: every module imports on its own, no cycles, and the layers
depend on each other one way (data below the labelers, the models and the trainer)."""

import ast
import json
import os
import subprocess
import sys

from conftest import REPO

PACKAGE = os.path.join(REPO, "daaf")

# What each subpackage may import, anywhere in its code (imports deferred into functions count too),
# besides itself, daaf.utils and daaf.config (daaf/__init__ holds only the version). The one import by
# name is daaf.config.get_cfg's of the builtin config extensions (BUILTIN_CONFIG_MODULES), which
# plug in as a user's IMPORTS do: test_get_cfg_imports_by_name_only_the_builtin_extensions holds it.
ALLOWED = {
    "utils": set(),
    "config": set(),
    "data": set(),
    "solver": set(),
    "modeling": {"data"},
    "evaluation": {"data"},
    "pseudo_label": {"data"},
    "analysis": {"data", "evaluation", "modeling"},
    "engine": {"data", "modeling", "evaluation", "solver", "pseudo_label", "analysis"},
    "tools": {"data", "modeling", "evaluation", "solver", "pseudo_label", "analysis", "engine"},
}


def module_names():
    """Every module of the package, by its dotted name."""
    names = []
    for folder, _, files in os.walk(PACKAGE):
        for file in sorted(files):
            if file.endswith(".py"):
                relative = os.path.relpath(os.path.join(folder, file), REPO)[: -len(".py")]
                names.append(relative.replace(os.sep, ".").removesuffix(".__init__"))
    return sorted(names)


def module_file(name):
    """The source file of module ``name`` (a package's __init__.py)."""
    path = os.path.join(REPO, *name.split("."))
    return os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"


def module_level_imports(name, anywhere=False):
    """The daaf modules ``name`` imports at module level (relative imports resolved); with
    ``anywhere``, also those imported inside its functions and classes."""
    path = module_file(name)
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree) if anywhere else tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "daaf"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "daaf":
                submodules = {f"{base}.{a.name}" for a in node.names} & set(module_names())
                # "from . import x" of a submodule x needs x, not the package being initialised
                found |= submodules if len(submodules) == len(node.names) else submodules | {base}
    return found - {name}


def third_party_imports():
    """Every non-daaf module the package imports anywhere (optional ones inside ``try`` and deferred
    ones inside functions too): the fork test loads them once, so each fork pays only for daaf."""
    found = set()
    for name in module_names():
        for node in ast.walk(ast.parse(open(module_file(name)).read())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module)
    return sorted(m for m in found if m.split(".")[0] != "daaf")


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    """Each module is imported first in a process of its own (forked after the third-party
    libraries are loaded): an import cycle shows as an ImportError whatever else was imported."""
    script = f"""
import json, os, sys, traceback, importlib
for library in {third_party_imports()!r}:  # loaded once, shared by the forks
    try:
        importlib.import_module(library)
    except ImportError:  # an optional one (detectron2, onnx, ...)
        pass
failures = {{}}
for name in {module_names()!r}:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            message = ""
        except BaseException:
            message = traceback.format_exc(limit=-3)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        message = f.read()
    os.waitpid(pid, 0)
    if message:
        failures[name] = message
print(json.dumps(failures))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    failures = json.loads(result.stdout.strip().splitlines()[-1])
    assert failures == {}, "\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_no_import_cycle_among_the_modules():
    graph = {name: module_level_imports(name) for name in module_names()}

    def cycle_from(start):
        stack, on_path = [(start, iter(sorted(graph[start])))], [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.pop()
            elif child in on_path:
                return on_path[on_path.index(child) :] + [child]
            elif child in graph:
                stack.append((child, iter(sorted(graph[child]))))
                on_path.append(child)
        return None

    # a package importing its own submodules is how packages work; a cycle through two modules is not
    cycles = [c for c in map(cycle_from, graph) if c and not all(b.startswith(a + ".") for a, b in zip(c, c[1:]))]
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_the_layers_depend_on_each_other_one_way():
    violations = []
    for name in module_names():
        parts = name.split(".")
        if len(parts) < 2:
            continue
        layer = parts[1]
        for imported in module_level_imports(name, anywhere=True):
            other = imported.split(".")[1] if "." in imported else ""
            if other and other != layer and other not in ALLOWED[layer] | {"utils", "config"}:
                violations.append(f"{name} imports {imported}")
    assert not violations, violations


def test_importing_the_data_layer_imports_no_labeler_model_or_trainer():
    code = "import sys, daaf.data; print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('daaf.')}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    layers = set(ast.literal_eval(result.stdout.strip()))
    assert "data" in layers and not layers & {"pseudo_label", "modeling", "engine", "evaluation", "analysis"}, layers


def test_get_cfg_imports_by_name_only_the_builtin_extensions():
    """No module of the package imports another through importlib by a name it builds, except
    daaf.config (the builtin config extensions) and daaf.config.imports (a config's IMPORTS)."""
    calls = {}
    for name in module_names():
        for node in ast.walk(ast.parse(open(module_file(name)).read())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module":
                calls.setdefault(name, []).append(ast.unparse(node.args[0]))
    from daaf.config.extensions import BUILTIN_CONFIG_MODULES

    assert calls == {"daaf.config.config": ["module"], "daaf.config.imports": ["name"]}
    assert all(m.split(".")[1] in ALLOWED["engine"] for m in BUILTIN_CONFIG_MODULES)
