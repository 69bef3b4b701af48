"""The type stubs (`python/futex_semaphore.pyi`) against the compiled module: the same public
names, classes and bases, methods and properties, and each method's parameters (names, kinds,
defaults); and the installed package ships them with its `py.typed` marker."""

import ast
import inspect
from pathlib import Path

import pytest

import futex_semaphore as fs

STUB = Path(__file__).resolve().parents[1] / "futex_semaphore.pyi"

# Class attributes every class has (`__annotations__` once something has asked for it), or
# that only a `repr` reads.
# The awaitables' `__iter__` and `__next__` too (for `yield from` and asyncio's C task):
# declared, they make a type checker take an awaitable for a generator and fail to infer
# `asyncio.create_task(sem.acquire())`'s type.
IGNORED = {"__doc__", "__module__", "__annotations__", "__new__", "__repr__", "__iter__", "__next__"}


def stub_tree():
    return ast.parse(STUB.read_text(), filename=str(STUB))


def stub_classes():
    return {node.name: node for node in stub_tree().body if isinstance(node, ast.ClassDef)}


def stub_members(cls):
    """What a stub class defines: methods (`FunctionDef`), properties among them."""
    return {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}


def test_the_stub_names_what_the_module_exports():
    stub = set()
    for node in stub_tree().body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            stub.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stub.add(node.target.id)
        elif isinstance(node, ast.Assign) and node.targets[0].id == "__all__":
            assert ast.literal_eval(node.value) == fs.__all__
            stub.add("__all__")
    assert stub == set(fs.__all__) | {"__all__"}


def test_a_star_import_takes_the_public_names_only():
    # The module has no name of its own for pickling, `fork` and exit hooks: an installed
    # package re-exports the extension's names with `from .futex_semaphore import *`.
    assert [n for n in fs.__all__ if n.startswith("_")] == ["__version__"]
    scope = {}
    exec("from futex_semaphore import *", scope)
    assert set(scope) - {"__builtins__"} == set(fs.__all__)


def test_each_class_has_the_stubs_bases_and_members():
    for name, node in stub_classes().items():
        runtime = getattr(fs, name)
        own_bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
        assert {b.__name__ for b in runtime.__bases__ if b is not object} == own_bases, name
        members = set(stub_members(node))
        assert {a for a in vars(runtime) if a not in IGNORED} == members, name


def runtime_parameters(function, method=True):
    params = list(inspect.signature(function).parameters.values())
    return [(p.name, p.kind, p.default) for p in params[method:]]  # `self` apart


def stub_parameters(node, method=True):
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults))
    defaults += [ast.literal_eval(d) for d in args.defaults]
    out = []
    for i, (arg, default) in enumerate(zip(positional, defaults)):
        kind = (
            inspect.Parameter.POSITIONAL_ONLY
            if i < len(args.posonlyargs)
            else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        out.append((arg.arg, kind, default))
    if args.vararg:
        out.append((args.vararg.arg, inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.empty))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
        out.append((arg.arg, inspect.Parameter.KEYWORD_ONLY, value))
    if args.kwarg:
        out.append((args.kwarg.arg, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty))
    return out[method:]  # `self` apart


def test_each_method_takes_the_stubs_parameters():
    checked = 0
    for name, node in stub_classes().items():
        runtime = getattr(fs, name)
        for member, function in stub_members(node).items():
            attribute = inspect.getattr_static(runtime, member)
            is_property = any(
                isinstance(d, ast.Name) and d.id == "property" for d in function.decorator_list
            )
            if is_property:
                assert inspect.isdatadescriptor(attribute), f"{name}.{member}"
                continue
            assert callable(attribute), f"{name}.{member}"
            assert stub_parameters(function) == runtime_parameters(attribute), f"{name}.{member}"
            checked += 1
    for node in stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            runtime = getattr(fs, node.name)
            assert stub_parameters(node, False) == runtime_parameters(runtime, False), node.name
            checked += 1
    assert checked >= 30


def test_the_installed_package_ships_the_stub_and_py_typed():
    package = Path(fs.__file__).parent
    if Path(fs.__file__).name != "__init__.py":
        pytest.skip("futex_semaphore is a bare extension module here, not an installed package")
    assert (package / "py.typed").is_file()
    assert (package / "__init__.pyi").read_text() == STUB.read_text()


def test_the_module_and_every_public_member_have_a_docstring():
    assert fs.__doc__ and "ProcessSemaphore" in fs.__doc__
    undocumented = []
    for name, node in stub_classes().items():
        runtime = getattr(fs, name)
        assert runtime.__doc__, name
        for member in stub_members(node):
            doc = getattr(inspect.getattr_static(runtime, member), "__doc__", None)
            if not doc or doc.startswith(("Return repr", "Call self")):
                undocumented.append(f"{name}.{member}")
    assert undocumented == []
