"""One table of the jobs' Snakemake benchmark records (``benchmark:`` files) for the report."""

import csv
import html
from pathlib import Path

from pixelflow.atomic import write_text

COLUMNS = ("job", "s", "cpu_time", "max_rss", "io_in", "io_out")


def read_benchmarks(folder) -> list[dict]:
    """The last record of every benchmark TSV under ``folder``, job named by its relative path.

    Parameters
    ----------
    folder : str or path-like
        Searched recursively for ``*.tsv`` files, in sorted path order; files
        without a record are skipped.

    Returns
    -------
    list of dict
        One per file, with the keys of :data:`COLUMNS`: ``job`` is the file's
        path relative to ``folder`` without ``.tsv``, with ``/`` separators; the
        other values are the text of the record ("" for a missing column).
    """
    folder = Path(folder)
    records = []
    for path in sorted(folder.rglob("*.tsv")):
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows:
            record = {"job": path.relative_to(folder).with_suffix("").as_posix()}
            record.update({key: rows[-1].get(key, "") for key in COLUMNS[1:]})
            records.append(record)
    return records


def html_table(records: list[dict]) -> str:
    """A plain HTML page holding the records as a table.

    Parameters
    ----------
    records : list of dict
        Rows keyed by the names in :data:`COLUMNS`; a missing key is an empty cell.

    Returns
    -------
    str
        The whole page, every value HTML-escaped.
    """
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(record.get(column, '')))}</td>" for column in COLUMNS) + "</tr>"
        for record in records
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Job benchmarks</title></head><body>"
        "<p>Wall seconds (s), CPU seconds, peak resident memory (MB) and MB read/written per job.</p>"
        f"<table border='1'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n"
    )


def write_benchmark_table(output, folder) -> int:
    """Write the HTML table of the benchmark records under ``folder``; return the number of jobs.

    Parameters
    ----------
    output : str or path-like
        The HTML file, written atomically.
    folder : str or path-like
        Where the benchmark TSVs are (:func:`read_benchmarks`).

    Returns
    -------
    int
        The number of jobs (table rows).
    """
    records = read_benchmarks(folder)
    write_text(output, html_table(records))
    return len(records)
