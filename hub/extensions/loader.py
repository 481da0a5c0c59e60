"""Find, import, register and check the extensions the settings name.

`EXTENSIONS` names packages: a folder under EXTENSIONS_DIR of that name, else an
importable package (a dotted name; the extension's name is its last part).
`AUTOLOAD_EXTENSIONS` adds every folder under EXTENSIONS_DIR (not starting with `.` or
`_`), each with the values in its `autoload-config.py`. Anything wrong (an import or
syntax error, a hook pluggy refuses, a setting nobody declared, a bad value) raises
`ExtensionError` naming the extension: `run.py` prints it and exits with status 2
before any part of the hub starts.

Values of an extension's settings, later wins: its declared defaults, its
autoload-config.py, the hub's settings file, the environment (NAME or HUB_NAME, YAML).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
import yaml

from hub import settings as settings_mod
from hub.errors import HubError, SettingsError
from hub.extensions import hookspecs
from hub.extensions.api import Extension, Setting
from hub.settings import Settings

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
AUTOLOAD_CONFIG = "autoload-config.py"
FOLDER_MODULE_PREFIX = "hub_extension_"  # sys.modules name of a folder extension


class ExtensionError(SettingsError):
    code = "bad_extension"


@dataclass
class Extensions:
    manager: pluggy.PluginManager
    loaded: list[Extension]

    def __iter__(self) -> Iterator[Extension]:
        return iter(self.loaded)

    def call(self, hook: str, ext: Extension) -> Any:
        """`hook(ext=ext)` on `ext` alone; None when it does not implement it."""
        others = [e.module for e in self.loaded if e is not ext]
        try:
            results = self.manager.subset_hook_caller(hook, remove_plugins=others)(ext=ext)
        except Exception as e:  # noqa: BLE001 - its own code failed: say whose
            detail = e.message if isinstance(e, HubError) else f"{type(e).__name__}: {e}"
            raise ExtensionError(f"extension {ext.name}: {hook}: {detail}") from e
        return results[0] if results else None

    def named(self, name: str) -> Extension:
        for e in self.loaded:
            if e.name == name:
                return e
        raise SettingsError(f"no extension {name!r} is loaded (loaded: {', '.join(self.names) or 'none'})")

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.loaded]


_cache: dict[int, tuple[Settings, Extensions]] = {}


def of(settings: Settings) -> Extensions:
    """The extensions of `settings`, loaded once per settings object in this process."""
    hit = _cache.get(id(settings))
    if hit is None or hit[0] is not settings:
        hit = (settings, load(settings))
        _cache[id(settings)] = hit
    return hit[1]


def wanted(settings: Settings) -> list[tuple[str, str, bool]]:
    """(extension name, what to import, autoloaded) in load order, each once."""
    folder = settings.extensions_path
    out: dict[str, tuple[str, str, bool]] = {}
    for entry in settings.EXTENSIONS:
        if not isinstance(entry, str) or not entry:
            raise ExtensionError(f"EXTENSIONS must list package names, got {entry!r}")
        name = entry.rsplit(".", 1)[-1]
        if not NAME.fullmatch(name):
            raise ExtensionError(f"extension {entry!r}: its name {name!r} must be lower case letters, digits "
                                 "and _ (at most 40), starting with a letter")
        if name in out:
            raise ExtensionError(f"extension {name} is listed twice in EXTENSIONS")
        out[name] = (name, entry, False)
    if settings.AUTOLOAD_EXTENSIONS and folder.is_dir():
        for d in sorted(folder.iterdir()):
            if d.is_dir() and d.name[0] not in "._" and d.name not in out and d.name != "__pycache__":
                if not NAME.fullmatch(d.name):
                    raise ExtensionError(f"extension folder {d}: its name must be lower case letters, digits "
                                         "and _ (at most 40), starting with a letter")
                out[d.name] = (d.name, d.name, True)
    return list(out.values())


def _import(settings: Settings, name: str, entry: str) -> tuple[ModuleType, Path | None]:
    folder = settings.extensions_path / entry
    if "." not in entry and folder.is_dir():
        init = folder / "__init__.py"
        if not init.is_file():
            raise ExtensionError(f"extension {name} failed to load: {folder} has no __init__.py")
        mod_name = FOLDER_MODULE_PREFIX + name
        if mod_name in sys.modules and getattr(sys.modules[mod_name], "__file__", None) == str(init):
            return sys.modules[mod_name], folder
        spec = importlib.util.spec_from_file_location(mod_name, init, submodule_search_locations=[str(folder)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[mod_name]
            raise
        return module, folder
    module = importlib.import_module(entry)
    file = getattr(module, "__file__", None)
    return module, Path(file).parent if file else None


def _declared(name: str, settings_list: Any, core: set[str]) -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    prefix = name.upper() + "_"
    for item in settings_list or []:
        if not isinstance(item, Setting):
            raise ExtensionError(f"extension {name}: hub_settings must return Setting objects, got {item!r}")
        if not item.name.startswith(prefix) or not item.name.isupper():
            raise ExtensionError(f"extension {name}: its setting {item.name} must be upper case and start "
                                 f"with {prefix}")
        if item.name in core or item.name in out:
            raise ExtensionError(f"extension {name}: setting {item.name} is declared twice")
        if not item.help.strip():
            raise ExtensionError(f"extension {name}: setting {item.name} has no help text")
        out[item.name] = item
    return out


def _env_value(settings: Settings, name: str) -> tuple[bool, Any]:
    found, value = False, None
    for key in (name, settings_mod.ENV_PREFIX + name):
        if key in settings.extension_env:
            raw = settings.extension_env[key]
            try:
                value = yaml.safe_load(raw) if raw != "" else ""
            except yaml.YAMLError as e:
                raise ExtensionError(f"environment variable {key} is not valid YAML: {e}") from e
            found, value = True, "" if value is None else value
    return found, value


def _values(settings: Settings, ext: Extension, declared: dict[str, Setting], autoload: bool) -> dict[str, Any]:
    values = {n: s.default for n, s in declared.items()}
    if autoload and ext.folder is not None:
        path = ext.folder / AUTOLOAD_CONFIG
        try:
            from_file = settings_mod.read_file(path)
        except SettingsError as e:
            raise ExtensionError(f"extension {ext.name} failed to load: {e.message}") from e
        for n, v in from_file.items():
            if n not in declared:
                raise ExtensionError(f"extension {ext.name}: unknown setting {n} in {path}; it declares: "
                                     f"{', '.join(sorted(declared)) or 'none'}")
            values[n] = v
    for n in declared:
        if n in settings.extension_values:
            values[n] = settings.extension_values[n]
        found, v = _env_value(settings, n)
        if found:
            values[n] = v
    for n, v in values.items():
        try:
            values[n] = settings_mod._coerce(n, v, type(declared[n].default).__name__)
        except SettingsError as e:
            raise ExtensionError(f"extension {ext.name}: {e.message}") from e
    return values


def load(settings: Settings) -> Extensions:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    core = {f for f, _d, _h in Settings.help_rows()}
    loaded: list[Extension] = []
    claimed: set[str] = set()
    for name, entry, autoload in wanted(settings):
        try:
            module, folder = _import(settings, name, entry)
        except ExtensionError:
            raise
        except SyntaxError as e:
            raise ExtensionError(f"extension {name} failed to load: SyntaxError: {e.msg} "
                                 f"({e.filename}, line {e.lineno})") from e
        except BaseException as e:  # noqa: BLE001 - anything its import raises stops the hub
            if isinstance(e, KeyboardInterrupt):
                raise
            raise ExtensionError(f"extension {name} failed to load: {type(e).__name__}: {e}") from e
        try:
            pm.register(module, name=name)
        except ValueError as e:  # the same module under two names
            raise ExtensionError(f"extension {name} failed to load: {e}") from e
        except pluggy.PluginValidationError as e:
            raise ExtensionError(f"extension {name} failed to load: {e}") from e
        ext = Extension(name, module, folder, settings)
        loaded.append(ext)
        declared = _declared(name, _settings_hook(pm, loaded, ext), core)
        ext.settings = _values(settings, ext, declared, autoload)
        claimed |= declared.keys()
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        who = getattr(e, "plugin", None)
        label = pm.get_name(who) if who is not None else "?"
        raise ExtensionError(f"extension {label} failed to load: {e}") from e
    extensions = Extensions(pm, loaded)
    for ext in loaded:
        extensions.call("hub_check", ext)
    unknown = sorted(set(settings.extension_values) - claimed)
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]} in the settings file: neither the hub's nor one of "
                            f"its extensions' ({', '.join(e.name for e in loaded) or 'none loaded'})")
    strays = sorted(set(settings.EXTENSION_API_KEYS) - {e.name for e in loaded})
    if strays:
        raise SettingsError(f"EXTENSION_API_KEYS names {strays[0]}, which is not a loaded extension")
    return extensions


def _settings_hook(pm: pluggy.PluginManager, loaded: list[Extension], ext: Extension) -> Any:
    others = [e.module for e in loaded if e is not ext]
    try:
        results = pm.subset_hook_caller("hub_settings", remove_plugins=others)()
    except Exception as e:  # noqa: BLE001 - its own code failed
        raise ExtensionError(f"extension {ext.name} failed to load: hub_settings: {type(e).__name__}: {e}") from e
    return results[0] if results else []
