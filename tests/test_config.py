"""Typed config loading: YAML into dataclasses, overrides, did-you-mean, safe YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from razn.config import check_range, dump_yaml, load_config, to_dict
from razn.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    rate: float = 0.5
    """A rate in [0, 1]."""
    names: tuple[str, ...] = ("a",)

    def __post_init__(self) -> None:
        check_range("inner.rate", self.rate, 0, 1)


@dataclass(frozen=True)
class Outer:
    seed: int = 0
    mode: Literal["fast", "slow"] = "fast"
    size: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_without_a_file():
    assert load_config(Outer) == Outer()


def test_yaml_file_with_nested_section_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ninner:\n  rate: 1\n  names: [x, y]\n")
    config = load_config(Outer, path, overrides=["mode=slow", "inner.rate=0.25", "size=null"])
    assert config == Outer(seed=3, mode="slow", size=None, inner=Inner(rate=0.25, names=("x", "y")))
    assert isinstance(config.inner.rate, float)


def test_unknown_key_suggests_the_close_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  rat: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Outer, path)
    assert str(info.value) == f"{path}: unknown key 'inner.rat'; did you mean 'rate'?"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", "seed must be int, got 'abc'"),
        ("seed=true", "seed must be int, got True"),
        ("mode=medium", "mode must be one of 'fast', 'slow', got 'medium'"),
        ("inner.rate=2", r"inner.rate must be in [0, 1], got 2.0"),
        ("inner=3", "inner: expected a mapping, got int"),
        ("noequals", "is not of the form key=value"),
    ],
)
def test_invalid_values_are_refused_with_the_reason(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(Outer, overrides=[override])
    assert message in str(info.value)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(Outer, path)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(Outer, tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        load_config(Outer, tmp_path / "list.yaml")


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = Outer(seed=7, inner=Inner(names=("p", "q")))
    dump_yaml(config, tmp_path / "resolved.yaml")
    assert load_config(Outer, tmp_path / "resolved.yaml") == config
    assert to_dict(config)["inner"] == {"rate": 0.5, "names": ["p", "q"]}


def test_errors_name_the_set_that_caused_them_and_otherwise_the_file(tmp_path):
    from razn.errors import ConfigError
    from razn.run_config import RunConfig

    good = tmp_path / "good.yaml"
    good.write_text("name: good\n", encoding="utf-8")
    cases = [
        (["seed=abc"], "--set seed=abc: seed must be int"),
        (["policy.lrr=1"], "--set policy.lrr=1: unknown key 'policy.lrr'"),
        (["seed=1", "levels.downsamples=[8, 4, 1]"], "--set seed=1 levels.downsamples=[8, 4, 1]:"),
    ]
    for overrides, expected in cases:
        with pytest.raises(ConfigError) as raised:
            load_config(RunConfig, good, overrides)
        assert str(raised.value).startswith(expected), str(raised.value)
        assert str(good) not in str(raised.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: abc\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: seed must be int") as raised:
        load_config(RunConfig, bad, ["policy.seed=3"])
    assert "--set" not in str(raised.value)


def test_levels_context_needs_one_margin_per_level_that_the_networks_can_take():
    from razn.errors import ConfigError
    from razn.run_config import RunConfig

    config = load_config(RunConfig, None, ["levels.context=[0, 0, 32, 64]"])
    assert [config.levels.margin(level) for level in range(4)] == [0, 0, 32, 64]
    assert load_config(RunConfig, None, []).levels.margin(3) == 0  # none by default
    with pytest.raises(ConfigError, match=r"levels\.context has 2 margins for 4 working levels"):
        load_config(RunConfig, None, ["levels.context=[0, 64]"])
    with pytest.raises(ConfigError, match=r"levels\.context\[3\] 20 px: .* 256 \+ 2 × 20 = 296"):
        load_config(RunConfig, None, ["levels.context=[0, 0, 0, 20]"])
