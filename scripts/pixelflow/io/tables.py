"""Tab-separated tables with a header line, written atomically; floats round-trip exactly."""

from pathlib import Path

from pixelflow.atomic import atomic_file


def format_value(value) -> str:
    """TSV text of a value; floats round-trip exactly."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_table(path, columns, rows) -> None:
    """Write a TSV table atomically.

    Parameters
    ----------
    path : str or path-like
        The file; its folder is created.
    columns : sequence of str
        The header.
    rows : iterable of sequence
        Values in ``columns`` order, written with :func:`format_value`.
    """
    lines = ["\t".join(columns)] + ["\t".join(format_value(value) for value in row) for row in rows]
    with atomic_file(path) as temporary:
        Path(temporary).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_rows(path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a TSV table, as text.

    Raises
    ------
    ValueError
        Naming the file and the line, for a row with another number of fields than the header.
    """
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        rows = []
        for number, line in enumerate(handle, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(header):
                raise ValueError(f"{path}: line {number} has {len(fields)} fields, not {len(header)}")
            rows.append(fields)
    return header, rows
