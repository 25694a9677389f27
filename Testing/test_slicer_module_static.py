"""What can be checked of the Slicer module without a desktop Slicer: its .ui, CMake lists and imports.

The Widget cannot run here, so these tests catch what would otherwise only fail inside Slicer: a
widget name typed differently in code and .ui, a file missing from the installed extension, an
import of torch (or of Qt) where Slicer loads the module at start-up.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from WMHSegmenterLib.engine.tasks import task_metadata

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "WMHSegmenter"
MODULE_FILE = MODULE / "WMHSegmenter.py"
LIBRARY = MODULE / "WMHSegmenterLib"
UI_FILE = MODULE / "Resources" / "UI" / "WMHSegmenter.ui"
#: Modules a real Slicer provides to a scripted module (and only to it).
SLICER_ONLY = {"qt", "ctk", "slicer", "vtk", "PythonQt", "PyTorchUtils"}
#: Heavy or optional packages that must not load when Slicer imports the module at start-up.
NOT_AT_STARTUP = ("torch", "safetensors", "PIL")


def module_tree() -> ast.Module:
    return ast.parse(MODULE_FILE.read_text(), filename=str(MODULE_FILE))


def ui_widgets() -> dict[str, str]:
    root = ET.parse(UI_FILE).getroot()
    return {w.get("name"): w.get("class") for w in root.iter("widget")}


def cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.DOTALL)
    assert match, f"{variable} not set"
    return match.group(1).split()


def imported_modules(node: ast.AST) -> list[tuple[str, int]]:
    """(module name, line) for every import under ``node``."""
    found = []
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            found += [(alias.name, child.lineno) for alias in child.names]
        elif isinstance(child, ast.ImportFrom) and child.level == 0:
            found.append((child.module, child.lineno))
    return found


def top_level_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """Imports that run when Slicer loads the module (not those inside functions and classes)."""
    statements = [n for n in tree.body if not isinstance(n, ast.ClassDef | ast.FunctionDef)]
    return imported_modules(ast.Module(body=statements, type_ignores=[]))


def test_ui_parses_with_a_qmrml_widget_root_and_unique_names():
    root = ET.parse(UI_FILE).getroot()
    top = root.find("widget")
    assert (top.get("class"), top.get("name")) == ("qMRMLWidget", "WMHSegmenter")
    names = [w.get("name") for w in root.iter("widget")]
    assert len(names) == len(set(names))
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {cls for cls in ui_widgets().values() if not cls.startswith("Q")}
    assert used <= declared


def test_every_mrml_widget_receives_the_scene():
    root = ET.parse(UI_FILE).getroot()
    connected = {
        c.findtext("receiver")
        for c in root.iter("connection")
        if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
        and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    mrml = {name for name, cls in ui_widgets().items() if cls.startswith("qMRML") and name != "WMHSegmenter"}
    assert mrml and mrml == connected


def test_every_widget_the_code_uses_exists_in_the_ui():
    used = {
        node.attr
        for node in ast.walk(module_tree())
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "ui"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }
    widgets = ui_widgets()
    assert used, "the module uses no widgets?"
    assert sorted(used - set(widgets)) == []
    modalities = {i["name"] for task in ("wmh", "brats") for i in task_metadata(task)["inputs"]}
    for name in modalities:  # reached with getattr(self.ui, f"{name}Selector")
        assert widgets[f"{name}Selector"] == "qMRMLNodeComboBox"
        assert widgets[f"{name}Label"] == "QLabel"


def test_module_file_defines_what_slicer_looks_for():
    classes = {node.name for node in module_tree().body if isinstance(node, ast.ClassDef)}
    assert {"WMHSegmenter", "WMHSegmenterWidget", "WMHSegmenterTest"} <= classes


def test_every_python_file_is_in_the_module_cmake_scripts():
    scripts = cmake_list((MODULE / "CMakeLists.txt").read_text(), "MODULE_PYTHON_SCRIPTS")
    expected = ["${MODULE_NAME}.py"] + sorted(p.relative_to(MODULE).as_posix() for p in LIBRARY.rglob("*.py"))
    assert sorted(scripts) == sorted(expected)


def test_every_resource_is_in_the_module_cmake_resources():
    resources = cmake_list((MODULE / "CMakeLists.txt").read_text(), "MODULE_PYTHON_RESOURCES")
    on_disk = sorted(
        p.relative_to(MODULE).as_posix()
        for p in (MODULE / "Resources").rglob("*")
        if p.is_file() and not p.name.startswith(".") and "__pycache__" not in p.parts
    )
    assert sorted(resources) == on_disk
    for required in (
        "Resources/UI/WMHSegmenter.ui",
        "Resources/Icons/WMHSegmenter.png",
        "Resources/requirements.txt",
    ):
        assert required in resources


def test_cmake_files_follow_the_extension_template():
    top = (ROOT / "CMakeLists.txt").read_text()
    for needed in (
        "cmake_minimum_required(",
        "project(WMHSegmenter)",
        "find_package(Slicer REQUIRED)",
        "include(${Slicer_USE_FILE})",
        "add_subdirectory(WMHSegmenter)",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ):
        assert needed in top
    for variable in ("HOMEPAGE", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "CATEGORY"):
        assert re.search(rf'set\(EXTENSION_{variable} "[^"]+"\)', top), variable
    assert re.search(r'set\(EXTENSION_DEPENDS "[^"]*\bPyTorch\b[^"]*"\)', top)
    module = (MODULE / "CMakeLists.txt").read_text()
    for needed in (
        "slicerMacroBuildScriptedModule(",
        "WITH_GENERIC_TESTS",
        "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)",
    ):
        assert needed in module


def test_extension_icon_and_screenshot_urls_name_files_in_the_repository():
    """The Extensions Manager shows these pictures from the repository's main branch: a renamed or
    never-made file leaves a broken image on the extension's page."""
    top = (ROOT / "CMakeLists.txt").read_text()
    prefix = "https://raw.githubusercontent.com/wmhsegmenter/WMHSegmenter/main/"
    urls = []
    for variable in ("ICONURL", "SCREENSHOTURLS"):
        urls += re.search(rf'set\(EXTENSION_{variable} "([^"]+)"\)', top).group(1).split()
    assert len(urls) >= 2
    for url in urls:
        assert url.startswith(prefix), url
        assert (ROOT / url.removeprefix(prefix)).is_file(), url


def test_icon_is_a_128_pixel_png():
    with Image.open(MODULE / "Resources" / "Icons" / "WMHSegmenter.png") as icon:
        assert (icon.format, icon.size) == ("PNG", (128, 128))


def test_module_file_imports_slicer_modules_only_where_slicer_provides_them():
    """Top level: what Slicer offers every scripted module; torch and PyTorchUtils only inside functions."""
    tree = module_tree()
    allowed_roots = SLICER_ONLY | {"WMHSegmenterLib"} | set(sys.stdlib_module_names)
    for name, line in top_level_imports(tree):
        assert name.split(".")[0] in allowed_roots - {"PyTorchUtils"}, (
            f"line {line}: import {name} at top level"
        )
    for name, line in imported_modules(tree):
        assert name.split(".")[0] != "torch" or _inside_test(tree, line), (
            f"line {line}: torch outside the self-test"
        )


def _inside_test(tree: ast.Module, line: int) -> bool:
    test = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "WMHSegmenterTest")
    return test.lineno <= line <= test.end_lineno


@pytest.mark.parametrize(
    "path", sorted(LIBRARY.rglob("*.py")), ids=lambda p: p.relative_to(LIBRARY).as_posix()
)
def test_library_never_needs_the_slicer_application(path):
    """The library runs outside Slicer: no Qt, no slicer.app; MRML (``import slicer``) only in scene/."""
    tree = ast.parse(path.read_text(), filename=str(path))
    in_scene = path.relative_to(LIBRARY).parts[0] == "scene"
    for name, line in imported_modules(tree):
        root = name.split(".")[0]
        mrml = name in ("slicer", "vtk") or name.startswith("vtk.")
        if root in SLICER_ONLY and not (in_scene and mrml):
            pytest.fail(f"{path.name}:{line} imports {name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "slicer":
            assert node.attr not in ("app", "util", "modules", "mrmlScene", "packaging"), (
                f"{path.name}:{node.lineno}"
            )


def test_importing_the_modules_library_loads_no_torch():
    """Slicer imports every module at start-up: what WMHSegmenter.py and scene/ import must stay light."""
    pytest.importorskip("slicer", reason="scene modules need slicer-core")
    modules = sorted(
        {name for name, _ in top_level_imports(module_tree()) if name.startswith("WMHSegmenterLib")}
    )
    modules += [
        f"WMHSegmenterLib.scene.{p.stem}"
        for p in sorted((LIBRARY / "scene").glob("*.py"))
        if p.stem != "__init__"
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in {NOT_AT_STARTUP!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
