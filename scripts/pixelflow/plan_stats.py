"""Planning of the stats rules while the Snakefile is parsed (placeholder until the stage lands)."""


def outputs(config: dict) -> list[str]:
    """Every final output of the stats stage the config asks for."""
    return []
