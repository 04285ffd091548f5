"""Planning of the maps rules while the Snakefile is parsed (placeholder until the stage lands)."""


def outputs(config: dict) -> list[str]:
    """Every final output of the maps stage the config asks for."""
    return []
