"""Config loading and checks shared by every stage's planning (standard library and jsonschema only).

The config is validated against ``config/schema.yaml`` (filling defaults) when
the Snakefile is parsed; every error names its config key. The stages' own
checks (:mod:`pixelflow.planning.datasets` and its siblings) use the helpers
here for names and globs.
"""

import glob
import re
from pathlib import Path

from pixelflow.errors import ConfigError
from pixelflow.formats import ALIASES

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# Format keys that accept an alias (``tif`` for ``tiff``): the canonical name is put in their place.
FORMAT_KEYS = (("reprojection", "format"), ("stats", "save_filtered"))


def key_path(parts) -> str:
    """``datasets.noise.count``-style name for a path of keys and list positions; ``(top level)`` when empty."""
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
    """Read a JSON schema written in YAML (with the safe loader, libyaml's when available)."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def validate_config(config: dict, schema: dict) -> dict:
    """Check ``config`` against ``schema`` in place, filling defaults and canonical format names.

    Dataset names are checked first (:func:`check_name`); of several schema
    errors the best match (``jsonschema.exceptions.best_match``) is reported.
    Then format aliases are replaced (:func:`canonical_formats`).

    Parameters
    ----------
    config : dict
        The loaded config, changed in place.
    schema : dict
        The JSON schema (:func:`load_schema`); its ``default`` values fill missing properties.

    Returns
    -------
    dict
        ``config`` itself.

    Raises
    ------
    ConfigError
        Naming the key that breaks the schema, or a dataset with an unusable name.
    """
    import jsonschema

    for section in ("datasets", "pipelines"):
        for name in config[section] if isinstance(config.get(section), dict) else ():
            check_name(name, [section, name])
    validator = _defaults_validator(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(f"config key {key_path(error.absolute_path)}: {error.message}")
    canonical_formats(config)
    return config


def canonical_formats(config: dict) -> None:
    """Replace format aliases (``tif``) by their canonical names (``tiff``) in a validated config, in place."""
    for section, key in FORMAT_KEYS:
        values = config.get(section)
        if isinstance(values, dict) and values.get(key) in ALIASES:
            values[key] = ALIASES[values[key]]
    for spec in (config.get("datasets") or {}).values():
        if spec.get("format") in ALIASES:
            spec["format"] = ALIASES[spec["format"]]
    for spec in (config.get("pipelines") or {}).values():
        if spec.get("save") in ALIASES:
            spec["save"] = ALIASES[spec["save"]]


def check_name(name, where) -> None:
    """Check a name that becomes folder and file names: a letter or digit, then letters, digits, '_' and '-' only.

    Parameters
    ----------
    name : str
        The name.
    where : list
        The keys leading to it, for the message (:func:`key_path`).

    Raises
    ------
    ConfigError
        Naming ``where``, when ``name`` is not such a string.
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"config key {key_path(where)}: name {name!r} must start with a letter or digit and use "
            "only letters, digits, '_' and '-' (no '/', '..' or spaces)"
        )


def glob_files(pattern: str, key: str, workdir, what: str = "") -> list[str]:
    """The files a config glob names, in sorted path order; relative to ``workdir`` when inside it.

    Parameters
    ----------
    pattern : str
        A glob (``**`` matches any folders), relative to ``workdir`` unless absolute.
    key : str
        The glob's config key, for the message.
    workdir : str or path
        The workflow's folder.
    what : str
        Added to the message in parentheses, e.g. "an empty library".

    Returns
    -------
    list of str
        The matching files (not folders), resolved: relative to ``workdir``
        when inside it, else absolute.

    Raises
    ------
    ConfigError
        Naming ``key``, when the glob matches no file.
    """
    base = Path(workdir)
    full = pattern if Path(pattern).is_absolute() else str(base / pattern)
    matches = sorted(path for path in glob.glob(full, recursive=True) if Path(path).is_file())
    if not matches:
        raise ConfigError(f"config key {key}: the glob {pattern!r} matches no files{f' ({what})' if what else ''}")
    base = base.resolve()
    relative = []
    for match in matches:
        path = Path(match).resolve()
        relative.append(str(path.relative_to(base)) if path.is_relative_to(base) else str(path))
    return relative
