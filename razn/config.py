"""Typed configuration: YAML files into dataclasses, validated on load.

Config classes are plain frozen dataclasses with a docstring per field and
range checks in ``__post_init__`` (raising :class:`~razn.errors.ConfigError`).
This module turns mappings into them, field by field, with clear errors:

* unknown keys are refused with a did-you-mean suggestion;
* values are checked against the annotated type (int, float, str, bool,
  Literal, Optional, list/tuple of those, nested dataclasses);
* command-line overrides ``a.b=value`` are parsed with ``yaml.safe_load`` and
  applied before validation.

YAML is always loaded with ``yaml.safe_load``: a config never runs code.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from razn.errors import ConfigError

T = TypeVar("T")


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build a ``cls`` from a YAML file (or the class defaults) plus ``key=value`` overrides."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        data = read_yaml_mapping(path)
    from_file = copy.deepcopy(data)
    for override in overrides:
        apply_override(data, override)
    try:
        return from_mapping(cls, data, source=source)
    except ConfigError as exc:
        if not overrides:
            raise
        # Name the --set that caused it, not the file: the file may be fine.
        culprit = _override_behind(exc.reason, overrides)
        if culprit is None:
            try:
                from_mapping(cls, from_file, source=source)
            except ConfigError:
                raise exc from None  # the file is bad on its own
            culprit = " ".join(overrides)
        raise ConfigError(f"--set {culprit}: {exc.reason}") from None


def _override_behind(reason: str, overrides: Sequence[str]) -> str | None:
    """The override whose key the error ``reason`` names (the longest such key), if any."""

    def names(key: str) -> bool:  # the whole key: "seed" is not named by "policy.seed"
        return re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", reason) is not None

    named = [o for o in overrides if names(o.partition("=")[0].strip())]
    return max(named, key=lambda o: len(o.partition("=")[0]), default=None)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping (safe loader only)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {_one_line(exc)}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}", path)
    return data


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``data['a']['b'] = value`` from the string ``'a.b=value'`` (value parsed as YAML)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not of the form key=value (e.g. seed=3)")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def from_mapping(
    cls: type[T], data: Mapping[str, Any], source: str = "<config>", where: str = ""
) -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys and wrong types."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where or 'config'}: expected a mapping, got {type(data).__name__}", source
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    retired: Mapping[str, str] = getattr(cls, "RETIRED_KEYS", {})
    data = {key: value for key, value in data.items() if key not in retired}
    for key in data:
        if key not in fields:
            raise ConfigError(
                f"unknown key {_qualified(where, key)!r}{_did_you_mean(key, fields)}", source
            )
    hints = get_type_hints(cls)
    kwargs = {
        name: _coerce(hints[name], data[name], source, _qualified(where, name)) for name in data
    }
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if exc.path is None:
            raise ConfigError(exc.reason, source) from None
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}", source) from None


def to_dict(obj: Any) -> Any:
    """A plain (YAML/JSON-serialisable) view of a config dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_yaml(obj: Any, path: str | Path) -> None:
    """Write the resolved config ``obj`` as YAML (the run's record of what it used)."""
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False), encoding="utf-8")


def check_range(
    name: str, value: float, low: float | None = None, high: float | None = None
) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high`` (either bound optional)."""
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(f"{name} must be in {bounds}, got {value}")


def _coerce(hint: Any, value: Any, source: str, where: str) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(option, value, source, where)
            except ConfigError as exc:
                errors.append(exc.reason)
        raise ConfigError(errors[0], source)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where} must be one of {choices}, got {value!r}", source)
        return value
    if origin in (list, tuple, Sequence):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}", source)
        item = args[0] if args else Any
        if origin is tuple and len(args) > 1 and args[1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}", source)
            return tuple(
                _coerce(a, v, source, f"{where}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        items = [_coerce(item, v, source, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, source, where)  # type: ignore[arg-type]
    return _coerce_scalar(hint, value, source, where)


def _coerce_scalar(hint: Any, value: Any, source: str, where: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Path:
        if isinstance(value, str | Path):
            return Path(value)
    else:
        return value
    raise ConfigError(f"{where} must be {hint.__name__}, got {value!r}", source)


def _qualified(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _did_you_mean(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known keys: {', '.join(sorted(known))}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
