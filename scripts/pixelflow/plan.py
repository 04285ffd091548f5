"""Planning helpers used while the Snakefile is parsed (standard library and jsonschema only).

They validate the config against ``config/schema.yaml`` (filling defaults),
check the rules a JSON schema cannot express, split datasets into shards, and
find which core modules a script imports so that rules can declare them.
"""

import ast
import glob
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pixelflow.atomic import write_text
from pixelflow.formats import FORMAT_DTYPES

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
DTYPE_BYTES = {"uint8": 1, "uint16": 2, "float32": 4}


class ConfigError(ValueError):
    """The config breaks the schema or a rule; the message names the key."""


def key_path(parts) -> str:
    """``datasets.noise.count``-style name for a path of keys and list positions."""
    return ".".join(str(part) for part in parts) or "(top level)"


def _defaults_validator(schema: dict):
    """A jsonschema validator class that fills ``default`` values while validating."""
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    validate_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema_node):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = _copy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema_node)

    return jsonschema.validators.extend(base, {"properties": properties_with_defaults})


def _copy(value):
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def load_schema(path) -> dict:
    """Read a YAML JSON-schema file."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def validate_config(config: dict, schema: dict) -> dict:
    """Check ``config`` against ``schema`` in place, filling defaults; raise ConfigError."""
    import jsonschema

    for name in (config.get("datasets") or {}) if isinstance(config.get("datasets"), dict) else ():
        check_name(name, ["datasets", name])
    validator = _defaults_validator(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(f"config key {key_path(error.absolute_path)}: {error.message}")
    return config


def check_name(name, where) -> None:
    """Names become folder and file names: letters, digits, '_' and '-' only."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"config key {key_path(where)}: name {name!r} must start with a letter or digit and use "
            "only letters, digits, '_' and '-' (no '/', '..' or spaces)"
        )


@dataclass(frozen=True)
class DatasetPlan:
    """How one dataset is split into shards."""

    name: str
    kind: str  # "generated" or "external"
    count: int
    shard_size: int
    files: tuple = ()

    @property
    def shards(self) -> list[str]:
        """Shard ids ``0000``, ``0001``, ..."""
        return [f"{k:04d}" for k in range(math.ceil(self.count / self.shard_size))]

    def bounds(self, shard: str) -> tuple[int, int]:
        """Image indexes ``(start, stop)`` of a shard."""
        start = int(shard) * self.shard_size
        if not 0 <= start < self.count:
            raise ConfigError(f"dataset {self.name!r} has no shard {shard}")
        return start, min(start + self.shard_size, self.count)

    def shards_covering(self, count: int) -> list[str]:
        """The shards holding images ``0..count-1``."""
        return self.shards[: math.ceil(min(count, self.count) / self.shard_size)]


def check_generated(name: str, spec: dict) -> None:
    """Rules between keys of a generated dataset that the schema cannot say."""
    where = ["datasets", name]
    if spec["dtype"] not in FORMAT_DTYPES[spec["format"]]:
        raise ConfigError(
            f"config key {key_path(where + ['dtype'])}: {spec['format']} cannot hold {spec['dtype']} pixels "
            f"(use format tiff for float32; {spec['format']} takes {', '.join(FORMAT_DTYPES[spec['format']])})"
        )
    shape = spec["shape"]
    if len(shape) == 3 and shape[2] not in (3, 4):
        raise ConfigError(
            f"config key {key_path(where + ['shape', 2])}: {shape[2]} channels; use 3 (RGB) or 4 (RGBA), "
            "or [height, width] for grey"
        )
    if spec["format"] == "bmp" and len(shape) == 3 and shape[2] == 4:
        raise ConfigError(f"config key {key_path(where + ['format'])}: bmp cannot hold an alpha channel")


def external_files(name: str, pattern: str, workdir) -> tuple:
    """The files an external dataset's glob names, in sorted path order."""
    matches = sorted(
        path
        for path in glob.glob(
            str(Path(workdir) / pattern) if not Path(pattern).is_absolute() else pattern, recursive=True
        )
        if Path(path).is_file()
    )
    if not matches:
        raise ConfigError(f"config key datasets.{name}.path: the glob {pattern!r} matches no files")
    workdir = Path(workdir).resolve()
    relative = []
    for match in matches:
        path = Path(match).resolve()
        relative.append(str(path.relative_to(workdir)) if path.is_relative_to(workdir) else str(path))
    return tuple(relative)


def shard_job_threads(max_threads: int, cores: int | None, shards: int) -> int:
    """Worker processes of one shard job: the cores shared among ``shards`` jobs, 1 to ``max_threads``.

    Without a known core count (a cluster executor) every job gets ``max_threads``.
    """
    if cores is None:
        return max_threads
    return max(1, min(max_threads, cores // max(1, shards)))


def plan_datasets(config: dict, workdir) -> dict[str, DatasetPlan]:
    """Shard plans for every dataset of a validated config."""
    plans = {}
    for name, spec in config["datasets"].items():
        shard_size = spec.get("shard_size", config["shard_size"])
        if "path" in spec:
            files = external_files(name, spec["path"], workdir)
            plans[name] = DatasetPlan(name, "external", len(files), shard_size, files)
        else:
            check_generated(name, spec)
            plans[name] = DatasetPlan(name, "generated", spec["count"], shard_size)
    return plans


def generated_shard_spec(config: dict, name: str) -> dict:
    """Everything a generated image's bytes depend on, apart from its index."""
    spec = config["datasets"][name]
    return {
        "name": name,
        "generator": spec["generator"],
        "seed": spec.get("seed", config["seed"]),
        "shape": list(spec["shape"]),
        "dtype": spec["dtype"],
        "format": spec["format"],
        "compression": spec["compression"],
    }


def image_bytes(spec: dict) -> int:
    """Uncompressed bytes of one generated image (external: a nominal 1 MB)."""
    if "shape" not in spec:
        return 1 << 20
    return math.prod(spec["shape"]) * DTYPE_BYTES.get(spec.get("dtype", "uint8"), 4)


def imported_core_modules(script, package: str = "pixelflow") -> list[str]:
    """Source files of ``package`` that ``script`` imports, directly or through each other.

    The package is looked up beside the script. Importing a module also runs
    the ``__init__.py`` of every package above it, so those are included and
    followed too. Returns sorted paths as strings, so that rules can declare
    them as inputs.
    """
    script = Path(script)
    package_dir = script.parent / package
    seen: set[Path] = set()
    pending: list[tuple[Path, tuple | None]] = [(script, None)]
    while pending:
        source, parts = pending.pop()
        stat = source.stat()
        for module in _file_imports(source, stat.st_mtime_ns, stat.st_size, package, parts):
            for path, module_parts in _module_files(package_dir, module):
                if path not in seen:
                    seen.add(path)
                    pending.append((path, module_parts))
    return sorted(str(path) for path in seen)


# Import lists by file, kept across runs in a JSON file (see load_imports_cache):
# key -> [mtime_ns, size, modules]. Parsing every core module costs about 0.1 s.
_KNOWN_IMPORTS: dict[str, list] = {}
_CHANGED_IMPORTS: set[str] = set()
IMPORTS_CACHE_VERSION = 1


def imports_cache_path(environ=os.environ) -> Path:
    """Where the import lists are kept: one file per user, like Python's bytecode caches.

    Keys are absolute source paths, so every run folder and every checkout can
    share it. ``$XDG_CACHE_HOME/pixelflow`` or ``~/.cache/pixelflow``.
    """
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "pixelflow" / "imports.json"


def load_imports_cache(path) -> None:
    """Reuse the import lists an earlier run saved to ``path`` (a missing or unreadable file: none)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("version") == IMPORTS_CACHE_VERSION:
        _KNOWN_IMPORTS.update(data.get("files", {}))


def save_imports_cache(path) -> None:
    """Save the import lists to ``path`` (atomically) if any was parsed anew; an unwritable path is skipped."""
    if not _CHANGED_IMPORTS:
        return
    # Entries of files that no longer exist (deleted checkouts) are dropped.
    files = {key: entry for key, entry in _KNOWN_IMPORTS.items() if os.path.exists(key.split("|", 1)[0])}
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"version": IMPORTS_CACHE_VERSION, "files": files}, sort_keys=True))
    except OSError:
        return
    _CHANGED_IMPORTS.clear()


def _file_imports(source: Path, mtime_ns: int, size: int, package: str, parts) -> tuple[tuple, ...]:
    """Modules of ``package`` that one file imports; each version of a file is parsed once."""
    key = f"{source.resolve()}|{package}|{parts!r}"
    known = _KNOWN_IMPORTS.get(key)
    if known is not None and known[:2] == [mtime_ns, size]:
        return tuple(tuple(module) for module in known[2])
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    is_init = source.name == "__init__.py"
    modules = tuple(module for node in _statements(tree) for module in _imported_modules(node, package, parts, is_init))
    _KNOWN_IMPORTS[key] = [mtime_ns, size, [list(module) for module in modules]]
    _CHANGED_IMPORTS.add(key)
    return modules


def _statements(tree):
    """Every statement of a module, nested ones included (imports are statements; expressions are skipped)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                pending.extend(child for child in children if isinstance(child, ast.AST))


def _imported_modules(node, package: str, parts, is_init: bool) -> list[tuple]:
    """Module names (tuples of parts below ``package``) that an import node may load.

    ``parts`` names the importing file inside the package (None for the script).
    """
    if isinstance(node, ast.Import):
        return [
            tuple(alias.name.split(".")[1:])
            for alias in node.names
            if alias.name == package or alias.name.startswith(package + ".")
        ]
    if not isinstance(node, ast.ImportFrom):
        return []
    module = node.module.split(".") if node.module else []
    if node.level == 0:
        if not module or module[0] != package:
            return []
        base = tuple(module[1:])
    else:
        if parts is None:
            return []
        current = parts if is_init else parts[:-1]
        up = node.level - 1
        if up > len(current):
            return []
        base = tuple(current[: len(current) - up]) + tuple(module)
    return [base] + [base + (alias.name,) for alias in node.names if alias.name != "*"]


def _module_files(package_dir: Path, parts: tuple) -> list[tuple[Path, tuple]]:
    """Files Python runs to import module ``parts``: each enclosing package's __init__.py, then the module."""
    module = package_dir.joinpath(*parts)
    if module.with_suffix(".py").is_file() and parts:
        own = (module.with_suffix(".py"), parts)
    elif (module / "__init__.py").is_file():
        own = (module / "__init__.py", parts)
    else:
        return []
    enclosing = [(package_dir.joinpath(*parts[:k], "__init__.py"), parts[:k]) for k in range(len(parts))]
    return [(path, names) for path, names in enclosing if path.is_file()] + [own]
