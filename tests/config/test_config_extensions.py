"""Config extensions and build_config: a module's keys are there before any YAML is merged, from
whichever place names the module (the file, its _BASE_ chain, the command line)."""

import os
import subprocess
import sys
import textwrap

import pytest

from daaf.config import CfgNode, apply_config_extensions, build_config, config_imports, get_cfg, registered_config_extensions
from daaf.utils.errors import ConfigError

from conftest import REPO, TESTS

DEFAULT_DUMP = os.path.join(TESTS, "config", "default_config.yaml")


@pytest.fixture(autouse=True)
def isolated_extensions(monkeypatch):
    """The extensions the in-process tests register are forgotten afterwards: the registry is
    process-wide, and a later test in this worker must get the default config."""
    import daaf.config.extensions as extensions

    monkeypatch.setattr(extensions, "_EXTENSIONS", dict(extensions._EXTENSIONS))
    modules = set(sys.modules)
    yield
    for name in set(sys.modules) - modules:
        if name.endswith("_keys"):
            del sys.modules[name]


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


def user_module(tmp_path, name="user_keys", key="USER_KEYS"):
    """A module outside the package that adds MODEL.<key>.{WEIGHT, NAMES} through an extension."""
    return write(
        tmp_path / f"{name}.py",
        f"""\
        from daaf.config import CfgNode as CN
        from daaf.config import config_extension

        @config_extension
        def add_{name}_config(cfg):
            cfg.MODEL.{key} = CN()
            cfg.MODEL.{key}.WEIGHT = 1.0
            cfg.MODEL.{key}.NAMES = ["a"]
        """,
    )


def run_python(code):
    """``code`` in a fresh interpreter (nothing registered yet), from the repository."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_the_default_config_keeps_every_key_and_value():
    """The builtin families (DAAF's branches, the detectron2 labeler) add their keys through
    extensions; the default config is the pinned dump (made when all of them sat in the core
    defaults; since then INPUT.MAX_IMAGE_PIXELS is new), so a change to it is a deliberate one."""
    with open(DEFAULT_DUMP) as f:
        assert get_cfg().dump() == f.read()
    names = registered_config_extensions()
    assert "daaf.modeling.attention.config.add_daaf_config" in names
    assert "daaf.pseudo_label.detectron2_labeler.add_detectron2_labeler_config" in names


def test_the_core_defaults_hold_no_key_of_the_builtin_extensions():
    from daaf.config.defaults import _C

    assert "DAAF" not in _C.MODEL and "DETECTRON2" not in _C.PSEUDO_LABEL


def test_a_fresh_process_gets_the_builtin_keys_from_get_cfg_alone():
    proc = run_python(
        """
        from daaf.config import get_cfg
        cfg = get_cfg()
        print(cfg.MODEL.DAAF.PAB.GROUPS, cfg.PSEUDO_LABEL.DETECTRON2.MASK_WEIGHTS == "")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["coco6", "True"]


@pytest.mark.parametrize("where", ["file", "base", "command line"])
def test_a_user_modules_keys_can_be_set_wherever_the_module_is_named(tmp_path, where):
    module = user_module(tmp_path)
    imports = f'IMPORTS: ["{module}"]\n'
    base = write(tmp_path / "base.yaml", imports if where == "base" else "SOLVER:\n  MAX_ITER: 7\n")
    config = write(
        tmp_path / "child.yaml",
        f'_BASE_: "base.yaml"\n{imports if where == "file" else ""}MODEL:\n  USER_KEYS:\n    WEIGHT: 0.5\n',
    )
    opts = ["IMPORTS", f"['{module}']"] if where == "command line" else []
    proc = run_python(
        f"""
        from daaf.config import build_config
        cfg = build_config({config!r}, {opts!r} + ["MODEL.USER_KEYS.NAMES", "['x', 'y']"])
        print(cfg.MODEL.USER_KEYS.WEIGHT, list(cfg.MODEL.USER_KEYS.NAMES), list(cfg.IMPORTS), cfg.is_frozen())
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == f"0.5 ['x', 'y'] ['{module}'] True"
    assert base  # the base file is part of the chain in every case


def test_the_dumped_config_names_every_module_of_the_chain_and_reads_back(tmp_path):
    first, second = user_module(tmp_path, "first_keys", "FIRST_KEYS"), user_module(tmp_path, "second_keys", "SECOND_KEYS")
    write(tmp_path / "base.yaml", f'IMPORTS: ["{first}"]\nMODEL:\n  FIRST_KEYS:\n    WEIGHT: 2.0\n')
    config = write(tmp_path / "child.yaml", f'_BASE_: "base.yaml"\nIMPORTS: ["{second}"]\nMODEL:\n  SECOND_KEYS:\n    WEIGHT: 3.0\n')
    cfg = build_config(config)
    assert list(cfg.IMPORTS) == [first, second]  # fvcore's merge alone would keep the child's list
    dumped = write(tmp_path / "dumped.yaml", cfg.dump())
    again = build_config(dumped)
    assert again == cfg and again.MODEL.FIRST_KEYS.WEIGHT == 2.0 and again.MODEL.SECOND_KEYS.WEIGHT == 3.0


def test_config_imports_are_read_without_importing_anything(tmp_path):
    config = write(tmp_path / "c.yaml", 'IMPORTS: ["not.a.module"]\n')
    assert config_imports(config, ["IMPORTS", "['other.module', 'not.a.module']"]) == ["not.a.module", "other.module"]
    with pytest.raises(ConfigError, match="IMPORTS: cannot import module 'not.a.module'"):
        build_config(config)


def test_unknown_keys_still_name_the_key_and_the_file(tmp_path):
    module = user_module(tmp_path)
    config = write(tmp_path / "c.yaml", f'IMPORTS: ["{module}"]\nMODEL:\n  USER_KEYS:\n    WIEGHT: 0.5\n')
    with pytest.raises(ConfigError) as info:
        build_config(config)
    assert str(info.value).startswith(f"{config}: unknown config key MODEL.USER_KEYS.WIEGHT (")
    with pytest.raises(ConfigError, match="command-line override: .*MODEL.USER_KEYS.WIEGHT"):
        build_config(None, ["IMPORTS", f"['{module}']", "MODEL.USER_KEYS.WIEGHT", "1"])


@pytest.mark.parametrize(
    "content, expected",
    [
        ("- a\n- b\n", "expected a mapping of config keys (KEY: value), got a YAML list"),
        ("IMPORTS: 3\n", "IMPORTS must be a list of module names or .py paths, got 3"),
        ("_BASE_: [1]\n", "_BASE_ must be a file name or a list of them, got 1"),
    ],
)
def test_config_files_that_are_not_configs_are_one_line(tmp_path, content, expected):
    config = write(tmp_path / "c.yaml", content)
    with pytest.raises(ConfigError) as info:
        build_config(config)
    assert str(info.value) == f"{config}: {expected}"


def test_a_folder_and_a_base_cycle_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=f"^{tmp_path}: is a folder; expected a YAML config file$"):
        build_config(str(tmp_path))
    a = write(tmp_path / "a.yaml", '_BASE_: "b.yaml"\n')
    write(tmp_path / "b.yaml", '_BASE_: "a.yaml"\n')
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(a)
    assert (
        str(info.value) == f"{a}: _BASE_ files include each other: {tmp_path / 'a.yaml'} -> {tmp_path / 'b.yaml'} -> {tmp_path / 'a.yaml'}"
    )


def test_an_extension_may_not_change_keys_it_did_not_add(monkeypatch):
    from daaf.config import extensions

    def lowers_the_lr(cfg):
        cfg.SOLVER.BASE_LR = 1.0

    monkeypatch.setattr(extensions, "_EXTENSIONS", {"tests.lowers_the_lr": lowers_the_lr})
    with pytest.raises(ConfigError, match="config extension tests.lowers_the_lr changes keys it did not add: SOLVER.BASE_LR"):
        apply_config_extensions(get_cfg())
    cfg = CfgNode({"SOLVER": {"BASE_LR": 0.1}})
    monkeypatch.setattr(extensions, "_EXTENSIONS", {"tests.adds": lambda c: setattr(c, "NEW", 1)})
    apply_config_extensions(cfg)
    assert cfg.NEW == 1 and cfg.SOLVER.BASE_LR == 0.1
