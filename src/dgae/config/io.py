"""Configs as data: JSON round-trip, ``key=value`` overrides with type checks, valid keys.

The CLI maps ``key=value`` overrides onto a preset with :func:`apply_overrides`, which rejects
unknown keys and values that do not fit the field's type (a ``Literal`` field only its names).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from dgae.config.schema import ConfigError, check_choice

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return from_dict(tp, value, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        return value
    if origin is Literal:
        check_choice(where, value, tp)
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}={value!r}: expected true or false")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}={value!r}: expected a number")
        try:
            number = float(value) if tp is float else int(str(value), 0)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{where}={value!r}: expected {tp.__name__}") from None
            if tp is int and not number.is_integer():
                raise ConfigError(f"{where}={value!r}: expected an integer") from None
            number = tp(number)
        return number
    if tp is str:
        return str(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error listing the valid ones."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    data = {k: v for k, v in data.items() if k not in getattr(cls, "REMOVED", ())}
    unknown = sorted(set(data) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; valid keys: {names}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def resolved(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a config dict as once written) as the current schema reads it: fields added
    since take their defaults, so a record compares equal to the config it still means."""
    return to_dict(from_dict(cls, data))


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2) + "\n")


def load_json(cls: type[T], path: str | Path) -> T:
    return from_dict(cls, json.loads(Path(path).read_text()))


def valid_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted key an override may set, e.g. ``model.decoder.base_channels``."""
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = f"{prefix}{f.name}"
        keys += valid_keys(value, name + ".") if dataclasses.is_dataclass(value) else [name]
    return keys


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``cfg`` with ``key.sub=value`` overrides applied (types are checked)."""
    cfg = json_copy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        *parents, leaf = key.strip().split(".")
        node = cfg
        for part in parents:
            if not dataclasses.is_dataclass(node) or not hasattr(node, part):
                raise ConfigError(f"unknown override key {key!r}; valid keys: {valid_keys(cfg)}")
            node = getattr(node, part)
        fields = (
            {f.name for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else ()
        )
        if leaf not in fields or dataclasses.is_dataclass(getattr(node, leaf)):
            raise ConfigError(f"unknown override key {key!r}; valid keys: {valid_keys(cfg)}")
        setattr(node, leaf, _coerce(raw, typing.get_type_hints(type(node))[leaf], key))
        # a field that stands for another (one of two ways to give a length) resets it
        reset = getattr(type(node), "OVERRIDE_RESETS", {}).get(leaf)
        if reset is not None:
            setattr(node, *reset)
    return cfg


def json_copy(cfg: T) -> T:
    """Deep copy through the JSON form (also proves the config round-trips)."""
    return from_dict(type(cfg), to_dict(cfg))
