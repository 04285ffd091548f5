"""Exact nearest-neighbour search: BLAS distance blocks against scipy's cKDTree, one process.

Sets ``pixelflow.mosaics.matching.KDTREE_MAX_DIMENSIONS`` (the dimension up to which
``method: auto`` picks the k-d tree). Library rows are the Lab features of the
colour sample tiles (mosaics_common.colour_library, all pieces, 4 rotations)
at grids 1, 2, 4 and 8; queries are the astronaut's cells. Times include
building the index (the tree, or the centred float32 library).

Usage: ``python benchmarks/mosaics_matching.py [--repeats 5]``
"""

import argparse

import numpy as np
from mosaics_common import colour_library, machine, markdown_table, sample, timed
from pixelflow.mosaics.matching import build_index, nearest
from pixelflow.mosaics.tiles import cut_tiles, grid_features, orient, pooled_features
from pixelflow.runner import limit_native_threads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    limit_native_threads(1)
    tiles = orient(colour_library(10**9, 16), (0, 90, 180, 270))
    library_pooled = pooled_features(tiles, "lab")
    rows = []
    for cell_size, tile_count in ((16, 5000), (16, len(tiles)), (8, 5000)):
        subset = library_pooled[np.linspace(0, len(tiles) - 1, tile_count).astype(int)]
        cells = cut_tiles(sample("astronaut"), cell_size)
        cells_pooled = pooled_features(cells, "lab")
        for grid in (1, 2, 4, 8):
            library, queries = grid_features(subset, grid), grid_features(cells_pooled, grid)
            for k in (1, 16):
                times = {}
                for method in ("blas", "kdtree"):

                    def search(m=method, q=queries, lib=library, k=k):
                        return nearest(q, build_index(lib, m), k)

                    times[method], _, _ = timed(search, args.repeats)
                winner = min(times, key=times.get)
                rows.append(
                    [f"{len(queries):,}", f"{len(library):,}", library.shape[1], k]
                    + [f"{times[m] * 1000:.1f}" for m in ("blas", "kdtree")]
                    + [winner]
                )
    print("## Exact k-nearest search, 1 process (milliseconds, median)\n")
    print(markdown_table(["queries", "library", "dimensions", "k", "BLAS blocks", "cKDTree", "faster"], rows))
    print(f"\nMedians of {args.repeats} runs. Machine: {machine()}.")


if __name__ == "__main__":
    main()
