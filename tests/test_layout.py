"""The layout promises of issue 15: no import cycles anywhere in the package (function-level
imports included), no private names imported across modules, and a default (transform) file
decodes without torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Source folders and the package names they install as (setup.cfg's package_dir).
ROOTS = {"hinercodec": REPO / "hinercodec", "hinercodec.formats": REPO / "formats", "hinercodec.cli": REPO / "cli"}


def _modules() -> dict[str, Path]:
    out = {}
    for package, root in ROOTS.items():
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if name.startswith("hinercodec.formats") and package == "hinercodec":
                continue
            out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) for every import statement, relative ones resolved."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [a.name for a in node.names]
            if node.module is None:  # from . import x: x is a module
                found += [(f"{mod}.{n}", []) for n in names]
            else:
                found.append((mod, names))
                found += [(f"{mod}.{n}", []) for n in names if f"{mod}.{n}" in modules]
    return found


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {m: sorted({i for i, _ in _imports(m, p, modules) if i in modules and i != m}) for m, p in modules.items()}
    # A package's __init__ importing its own submodules is how packages work: leave those edges out.
    for m in graph:
        graph[m] = [i for i in graph[m] if not (i.startswith(m + ".") and modules[m].name == "__init__.py")]
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_private_names_across_modules() -> None:
    modules = _modules()
    bad = []
    for m, p in modules.items():
        for mod, names in _imports(m, p, modules):
            if mod in modules:
                bad += [f"{m} imports {mod}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


def test_transform_file_decodes_without_torch() -> None:
    """torch made unimportable: encoding and decoding a default file still work, and nothing
    imported it."""
    script = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import numpy as np
from hinercodec import api, demo
cube = demo.sample().data[:32, :32, :16]
data = api.encode(cube, None, bpppb=0.5, effort=1).data
out = api.decode(data)
assert out.shape == cube.shape and out.dtype == cube.dtype
api.interp(data, lambdas=[0.25])
api.info(data)
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_cli_decode_to_npy_imports_neither_torch_nor_scipy(tmp_path: Path) -> None:
    """`hinerc decode x.hnr -o x.npy` starts quickly (issue 16: a decode within 3x a bare numpy
    import + 0.5 s): torch and scipy (only MATLAB / NetCDF3 files need it) stay unimported."""
    from hinercodec import api, demo

    src = tmp_path / "s.hnr"
    src.write_bytes(api.encode(demo.sample().data[:32, :32, :16], None, bpppb=0.5, effort=1).data)
    script = ("import sys; sys.argv = ['hinerc', 'decode', sys.argv[1], '-o', sys.argv[2]]\n"
              "from hinercodec.cli.main import main\n"
              "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'scipy'}))")
    run = subprocess.run([sys.executable, "-c", script, str(src), str(tmp_path / "d.npy")], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip().splitlines()[-1] == "[]", (run.stdout, run.stderr)


def test_network_file_without_torch_is_one_clear_error(tmp_path: Path) -> None:
    """A network (hiner) file with torch missing: exit 5 and one line naming what to install."""
    pytest.importorskip("torch")
    from hinercodec import api, demo

    cube = demo.sample().data[:32, :32, :8]
    path = tmp_path / "n.hnr"
    path.write_bytes(api.encode(cube, None, bpppb=4.0, model="hiner", epochs=1, device="cpu").data)
    script = ("import sys; sys.modules['torch'] = None; from hinercodec.cli.main import main; "
              f"sys.argv = ['hinerc', 'decode', {str(path)!r}, '-o', {str(tmp_path / 'o.npy')!r}]; main()")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 5, run.stderr
    assert run.stderr.count("\n") == 1 and "PyTorch" in run.stderr and "pip install torch" in run.stderr


def test_a_bug_is_an_internal_error_not_a_corrupt_file(tmp_path: Path, monkeypatch) -> None:
    """An exception that is not about the file (here a RuntimeError planted in the decoder's
    arithmetic) is reported as an internal error, exit 1, never as a damaged file (exit 4)."""
    from click.testing import CliRunner

    from hinercodec import api, demo
    from hinercodec.cli.main import main
    from hinercodec.codecs.transform import decoder

    path = tmp_path / "x.hnr"
    path.write_bytes(api.encode(demo.sample().data[:32, :32, :8], None, bpppb=0.9, effort=1).data)

    def broken(*args, **kwargs):
        raise RuntimeError("planted bug")

    monkeypatch.setattr(decoder, "mix", broken)
    monkeypatch.setattr(decoder.bitstream, "fast_mix", broken)
    result = CliRunner().invoke(main, ["decode", str(path), "-o", str(tmp_path / "o.npy")])
    assert result.exit_code == 1, result.output
    assert "internal error" in result.output and "corrupt" not in result.output
