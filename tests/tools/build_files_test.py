"""BUILD files match the tree (tools/generate_build.py), and the generator's rules hold on small trees."""

import os
import shutil
import subprocess
import textwrap

import pytest

from tools import generate_build

# The real checkout, also under `bazel test` (runfiles are symlinks into it; the test is tagged
# "external" so Bazel never serves a cached pass after the tree changed).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(generate_build.__file__)))


def test_build_files_are_up_to_date():
    problems = generate_build.out_of_date(REPO_ROOT)
    assert not problems, (
        "BUILD files are out of date with the source tree; run `.venv/bin/python tools/generate_build.py`: "
        + ", ".join(f"{path} ({reason})" for path, reason in problems)
    )


def _write(root, files):
    for path, text in files.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(textwrap.dedent(text), encoding="utf-8")


def _rule(build_text, name):
    """The text of the rule called `name` in a BUILD file."""
    for block in build_text.split("\n\n"):
        if f'    name = "{name}",' in block:
            return block
    raise AssertionError(f"no rule {name!r} in:\n{build_text}")


def _deps(rule_text):
    if "    deps = [" not in rule_text:
        return []
    body = rule_text.split("    deps = [", 1)[1].split("]", 1)[0]
    return [line.strip().strip(",").strip('"') for line in body.splitlines() if line.strip()]


@pytest.fixture
def small_tree(tmp_path):
    _write(
        tmp_path,
        {
            "pytest.ini": "[pytest]\n",
            "README.md": "readme\n",
            "florence_keras/__init__.py": "from florence_keras import models\nfrom florence_keras.version import v\n",
            "florence_keras/version.py": "v = 1\n",
            "florence_keras/assets/vocab.txt": "a\n",
            "florence_keras/assets/table.json": "{}\n",
            "florence_keras/NOTICE.txt": "MIT\n",
            "florence_keras/presets/tiny/config.json": "{}\n",
            "florence_keras/presets/tiny/assets/merges.txt": "a b\n",
            "florence_keras/models/__init__.py": "from florence_keras.models.encoder import Encoder\n",
            "florence_keras/models/encoder.py": """\
                '''Reads `assets/vocab.txt`.'''
                import numpy as np
                from florence_keras.models import registry
                from . import blocks
                class Encoder:
                    pass
                """,
            "florence_keras/models/blocks.py": """\
                import os
                TABLE = os.path.join(os.path.dirname(__file__), "..", "assets", "table.json")
                def build():
                    from florence_keras.models import encoder  # inside a function: may close a cycle
                    return encoder
                """,
            "florence_keras/models/registry.py": 'import os\nDIR = os.path.join("x", "presets")\n',
            "recipes/train.py": "from florence_keras.models.encoder import Encoder\n",
            "tests/conftest.py": "import pytest\n",
            "tests/helpers.py": "X = 1\n",
            "tests/models/encoder_test.py": """\
                from florence_keras.models import encoder
                from tests.helpers import X
                def test_x():
                    open("README.md").read()
                """,
            "tests/recipes/train_test.py": """\
                import subprocess, sys
                def test_train():
                    subprocess.run([sys.executable, "recipes/%s.py" % "train"])
                """,
            "tests/training/toy_model.py": "X = 1\n",
            "tests/training/trainer_test.py": """\
                import pathlib, sys
                sys.path.insert(0, str(pathlib.Path(__file__).parent))
                from toy_model import X
                """,
            "tests/evaluation/loader_test.py": """\
                import importlib.util, os
                SPEC = importlib.util.spec_from_file_location(
                    "toy", os.path.join(os.path.dirname(os.path.dirname(__file__)), "training", "toy_model.py"))
                """,
            "tests/data/testdata/cat.png": "png\n",
            "tests/data/reader_test.py": 'PATH = "testdata/cat.png"\n',
        },
    )
    return tmp_path


def test_libraries_get_their_imports_and_data(small_tree):
    builds = generate_build.render_packages(generate_build.Tree(str(small_tree)), sizes={})
    models = builds["florence_keras/models/BUILD"]
    # Relative and absolute first-party imports; third-party ones (numpy) add nothing.
    assert _deps(_rule(models, "encoder")) == [":blocks", ":registry"]
    # blocks -> encoder only inside a function and encoder -> blocks at module level: the lazy edge goes.
    assert _deps(_rule(models, "blocks")) == []
    # The package __init__ depends on what it imports; submodules never on their own __init__.
    assert _deps(_rule(models, "models")) == [":encoder"]
    # Data: a docstring path, os.path.join pieces, a named folder; a file nobody names goes to the top library.
    assert '"//florence_keras:assets/vocab.txt"' in _rule(models, "encoder")
    assert '"//florence_keras:assets/table.json"' in _rule(models, "blocks")
    assert '"//florence_keras:presets/tiny/config.json"' in _rule(models, "registry")
    # The outermost named folder wins: registry names "presets", blocks only "assets".
    assert '"//florence_keras:presets/tiny/assets/merges.txt"' in _rule(models, "registry")
    assert "merges.txt" not in _rule(models, "blocks")
    top = builds["florence_keras/BUILD"]
    assert '":NOTICE.txt"' in _rule(top, "florence_keras")
    assert "exports_files([" in top and '"assets/vocab.txt",' in top
    assert _deps(_rule(top, "florence_keras")) == [":version", "//florence_keras/models"]


def test_tests_get_runtime_closure_conftest_and_files(small_tree):
    builds = generate_build.render_packages(generate_build.Tree(str(small_tree)), sizes={})
    encoder_test = _rule(builds["tests/models/BUILD"], "encoder_test")
    assert encoder_test.startswith("pytest_test(")
    # Its import, the package __init__s Python runs first, conftest and the helper it imports.
    assert _deps(encoder_test) == [
        "//florence_keras",
        "//florence_keras/models:encoder",
        "//tests:conftest",
        "//tests:helpers",
    ]
    assert '"//:README.md"' in encoder_test
    assert 'size = "large"' in encoder_test  # not measured yet
    assert '"README.md"' in builds["BUILD"] and '"pytest.ini"' in builds["BUILD"]
    # A recipe run in a subprocess: the test mirrors recipes/train.py, so it depends on it.
    assert "//recipes:train" in _deps(_rule(builds["tests/recipes/BUILD"], "train_test"))
    # A data file named relative to the test's own folder.
    assert '":testdata/cat.png"' in _rule(builds["tests/data/BUILD"], "reader_test")
    assert _rule(builds["tests/BUILD"], "helpers").count("testonly = True") == 1
    # A helper beside the test, imported after the test put its own folder on sys.path.
    assert ":toy_model" in _deps(_rule(builds["tests/training/BUILD"], "trainer_test"))
    # A helper loaded by its path, relative to a folder above the test.
    assert "//tests/training:toy_model" in _deps(_rule(builds["tests/evaluation/BUILD"], "loader_test"))


def test_sizes_come_from_measured_times(small_tree):
    tree = generate_build.Tree(str(small_tree))
    builds = generate_build.render_packages(tree, sizes={"tests/models/encoder_test.py": 12.0})
    assert 'size = "small"' in _rule(builds["tests/models/BUILD"], "encoder_test")
    assert generate_build.size_for(None) == "large"
    assert generate_build.size_for(20.0) == "small"  # 3 x 20 s fits the 60 s timeout
    assert generate_build.size_for(20.5) == "medium"
    assert generate_build.size_for(100.0) == "medium"
    assert generate_build.size_for(101.0) == "large"
    assert generate_build.size_for(1000.0) == "enormous"


def test_sizes_from_testlogs(small_tree):
    logs = small_tree / "testlogs" / "tests"
    (logs / "models" / "encoder_test").mkdir(parents=True)
    (logs / "models" / "encoder_test" / "test.log").write_text(
        "noise\npytest_main: tests/models/encoder_test.py finished with exit code 0 in 7.25 s\n", encoding="utf-8"
    )
    (logs / "recipes" / "train_test").mkdir(parents=True)
    (logs / "recipes" / "train_test" / "test.log").write_text(
        "pytest_main: tests/recipes/train_test.py finished with exit code 1 in 3.0 s\n", encoding="utf-8"
    )
    tree = generate_build.Tree(str(small_tree))
    # Only passing runs count.
    assert generate_build.sizes_from_testlogs(tree, str(small_tree / "testlogs")) == {
        "tests/models/encoder_test.py": 7.2
    }


def test_write_then_check_then_drift(small_tree):
    root = str(small_tree)
    written = generate_build.write_all(root)
    assert "BUILD" in written and "florence_keras/models/BUILD" in written
    assert generate_build.out_of_date(root) == []
    assert generate_build.main(["--repo_root", root, "--check"]) == 0
    # A new module is drift; so is a BUILD file left in a folder without Python files.
    (small_tree / "florence_keras" / "models" / "decoder.py").write_text("X = 2\n", encoding="utf-8")
    (small_tree / "recipes" / "train.py").unlink()
    assert generate_build.out_of_date(root) == [
        ("florence_keras/models/BUILD", "differs"),
        ("tests/recipes/BUILD", "differs"),  # train_test no longer mirrors a recipe
        ("recipes/BUILD", "stale (its folder has no .py files now)"),
    ]
    assert generate_build.main(["--repo_root", root, "--check"]) == 1
    generate_build.write_all(root)
    assert generate_build.out_of_date(root) == []
    assert not (small_tree / "recipes" / "BUILD").exists()


def test_hand_written_build_files_are_left_alone(small_tree):
    hand = small_tree / "tools" / "python" / "BUILD"
    hand.parent.mkdir(parents=True)
    hand.write_text("# hand-written\n", encoding="utf-8")
    (small_tree / "tools" / "python" / "python3").write_text("#!/bin/sh\n", encoding="utf-8")
    generate_build.write_all(str(small_tree))
    assert hand.read_text(encoding="utf-8") == "# hand-written\n"
    assert generate_build.out_of_date(str(small_tree)) == []


def test_module_level_cycle_is_an_error(tmp_path):
    _write(tmp_path, {"florence_keras/a.py": "from florence_keras import b\n", "florence_keras/b.py": "import florence_keras.a\n"})
    with pytest.raises(generate_build.BuildGenerationError, match="florence_keras/a.py <-> florence_keras/b.py"):
        generate_build.render_packages(generate_build.Tree(str(tmp_path)), sizes={})


def test_unparsable_module_is_named(tmp_path):
    _write(tmp_path, {"florence_keras/broken.py": "def f(:\n"})
    with pytest.raises(generate_build.BuildGenerationError, match="florence_keras/broken.py"):
        generate_build.Tree(str(tmp_path))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_untracked_files_outside_the_python_roots_do_not_count_in_a_git_checkout(small_tree):
    # A test that names a root file which is only a stray output (a harness's `test.log`) in this checkout.
    (small_tree / "tests" / "models" / "log_test.py").write_text('LOG = "test.log"\nDOC = "extra/a.md"\n',
                                                               encoding="utf-8")
    (small_tree / "extra").mkdir()
    (small_tree / "extra" / "a.md").write_text("a\n", encoding="utf-8")
    (small_tree / "test.log").write_text("stray\n", encoding="utf-8")

    # Without the caller's GIT_DIR / GIT_INDEX_FILE (set when the suite runs from a git hook): this tree's own repo.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}

    def git(*args):
        subprocess.run(["git", "-C", str(small_tree), *args], check=True, capture_output=True, env=env)

    # Outside a git checkout every file counts.
    rule = _rule(generate_build.render_packages(generate_build.Tree(str(small_tree)), sizes={})["tests/models/BUILD"],
                 "log_test")
    assert '"//:test.log"' in rule and '"//:extra/a.md"' in rule
    git("init", "-q")
    git("add", "--", *[p for p in os.listdir(small_tree) if p not in (".git", "test.log")])
    builds = generate_build.render_packages(generate_build.Tree(str(small_tree)), sizes={})
    rule = _rule(builds["tests/models/BUILD"], "log_test")
    assert '"//:extra/a.md"' in rule  # tracked
    assert "test.log" not in rule and "test.log" not in builds["BUILD"]  # untracked: not the project's
    # New modules count before they are added: the Python roots are read from the folders.
    assert '"//:README.md"' in _rule(builds["tests/models/BUILD"], "encoder_test")
