"""Declared ranges and choices: a value no component could use is one line naming the key, the
value and what is allowed, when the config is built."""

import glob
import numbers
import os
import textwrap

import pytest

from daaf.config import build_config, flatten_config, get_cfg
from daaf.config.checks import ListOf, OneOf, OrNone, Range, declared_value_checks
from daaf.utils.errors import ConfigError

from conftest import REPO

CONFIG = os.path.join(REPO, "configs", "Synthetic", "trinet_R18.yaml")


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("SOLVER.MAX_ITER", "0", "SOLVER.MAX_ITER: 0 is not allowed; expected an integer >= 1"),
        ("SOLVER.MAX_ITER", "-5", "SOLVER.MAX_ITER: -5 is not allowed; expected an integer >= 1"),
        ("DATALOADER.NUM_WORKERS", "-1", "DATALOADER.NUM_WORKERS: -1 is not allowed; expected an integer >= 0"),
        ("INPUT.SIZE_TRAIN", "(0, 0)", "INPUT.SIZE_TRAIN: [0, 0] is not allowed; expected a list of 2 values, each an integer >= 1"),
        ("INPUT.SIZE_TEST", "(256,)", "INPUT.SIZE_TEST: [256] is not allowed; expected a list of 2 values, each an integer >= 1"),
        ("SOLVER.BASE_LR", "-0.1", "SOLVER.BASE_LR: -0.1 is not allowed; expected a number > 0"),
        ("INPUT.FLIP.PROB", "1.5", "INPUT.FLIP.PROB: 1.5 is not allowed; expected a number in [0, 1]"),
        ("TEST.METRIC", "'cosin'", "TEST.METRIC: 'cosin' is not allowed; expected one of 'cosine', 'euclidean'"),
        ("MODEL.DEVICE", "gpu", "MODEL.DEVICE: 'gpu' is not allowed; expected 'cpu', 'cuda' or 'cuda:<index>'"),
        (
            "MODEL.DAAF.PAB.GROUPS",
            "coco5",
            "MODEL.DAAF.PAB.GROUPS: 'coco5' is not allowed; expected one of 'coco1', 'coco4', 'coco6', 'coco7', 'coco17'",
        ),
        ("SOLVER.WEIGHT_DECAY_BIAS", "-1.0", "SOLVER.WEIGHT_DECAY_BIAS: -1.0 is not allowed; expected None or a number >= 0"),
    ],
)
def test_a_value_outside_its_declared_range_is_one_line(key, value, message):
    with pytest.raises(ConfigError) as info:
        build_config(CONFIG, [key, value])
    assert str(info.value) == message


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_a_non_finite_learning_rate_in_a_yaml_file_is_refused(tmp_path, text):
    config = tmp_path / "c.yaml"
    config.write_text(textwrap.dedent(f'_BASE_: "{CONFIG}"\nSOLVER:\n  BASE_LR: {text}\n'))
    with pytest.raises(ConfigError, match=r"^SOLVER.BASE_LR: -?(nan|inf) is not allowed; expected a number > 0$"):
        build_config(str(config))


def test_every_numeric_key_declares_what_it_allows_and_every_default_is_allowed():
    checks = declared_value_checks()
    defaults = flatten_config(get_cfg())
    numeric = {
        k
        for k, v in defaults.items()
        if (isinstance(v, numbers.Real) and not isinstance(v, bool))
        or (isinstance(v, (list, tuple)) and v and all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in v))
    }
    assert numeric - set(checks) == set(), "numeric keys without a declared range"
    assert set(checks) - set(defaults) == set(), "checks of keys the default config does not have"
    for key, check in checks.items():
        assert check.allows(defaults[key]), f"{key}: the default {defaults[key]!r} is outside {check.describe()}"


def test_the_checks_say_what_they_allow():
    assert Range(1, integer=True).describe() == "an integer >= 1"
    assert Range(0, 1, low_open=True).describe() == "a number in (0, 1]"
    assert Range().describe() == "a finite number" and not Range().allows(float("nan")) and Range(allow_inf=True).allows(float("inf"))
    assert not Range(1, integer=True).allows(True) and not Range(1, integer=True).allows(1.5) and Range(1, integer=True).allows(2.0)
    assert OneOf(1, 2).allows(2) and not OneOf(1, 2).allows(2.0) and not OneOf("a").allows("b")
    assert ListOf(Range(0), lengths=(0, 2)).allows([]) and not ListOf(Range(0), lengths=(0, 2)).allows([1])
    assert OrNone(Range(0)).allows(None) and not OrNone(Range(0)).allows(-1)


def test_every_shipped_config_is_within_the_declared_ranges():
    files = glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True)
    files += glob.glob(os.path.join(REPO, "projects", "DAAF", "configs", "*.yaml"))
    assert len(files) > 10
    for path in files:
        build_config(path)  # raises on a value outside its range
