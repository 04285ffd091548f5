"""The errors every stage raises for bad input (standard library only).

Each message names what is wrong and where: the config key, the image file or
the work item, so that a user can act on it without reading a traceback.
"""


class ConfigError(ValueError):
    """The config breaks the schema or a rule between keys; the message names the key."""


class ImageError(ValueError):
    """An image file that cannot be read, or does not have the expected form; the message names the file."""


class WorkerError(RuntimeError):
    """A work item failed in a worker, or a worker process died; the message names the item and the cause."""
