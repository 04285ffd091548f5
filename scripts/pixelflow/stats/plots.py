"""The variance plot of a dataset (matplotlib's Agg canvas without pyplot: no display, faster import)."""

from pathlib import Path

from pixelflow.atomic import atomic_file


def plot_variance(path, rows: list[dict], sigmas, title: str) -> None:
    """var_in and var_out against image index and against mean_in, one series per σ; written atomically.

    Parameters
    ----------
    path : str or path-like
        The PNG file (1100 x 420 px).
    rows : list of dict
        Rows of a stats table (:func:`pixelflow.stats.tables.read_table`): index,
        sigma, mean_in, var_in and var_out are used.
    sigmas : sequence of float
        One var_out series each; var_in is taken from the rows of the first.
    title : str
        The figure's title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    by_index, by_mean = figure.subplots(1, 2)
    first = [row for row in rows if row["sigma"] == sigmas[0]]
    marker = {"marker": ".", "markersize": 3, "linestyle": "none"}
    by_index.plot([row["index"] for row in first], [row["var_in"] for row in first], color="black", **marker)
    by_mean.plot([row["mean_in"] for row in first], [row["var_in"] for row in first], color="black", **marker)
    for sigma in sigmas:
        series = [row for row in rows if row["sigma"] == sigma]
        by_index.plot([row["index"] for row in series], [row["var_out"] for row in series], **marker)
        by_mean.plot([row["mean_in"] for row in series], [row["var_out"] for row in series], **marker)
    by_index.set_xlabel("image index")
    by_mean.set_xlabel("mean_in")
    for axes in (by_index, by_mean):
        axes.set_ylabel("variance")
        axes.set_yscale("symlog", linthresh=1e-6)
    figure.legend(["var_in"] + [f"var_out, σ = {sigma:g}" for sigma in sigmas], loc="outside right upper")
    figure.suptitle(title)
    with atomic_file(Path(path)) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
