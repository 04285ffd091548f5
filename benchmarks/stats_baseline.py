"""The scikit-image/dask batch example, written plainly: serial loop or dask.delayed.

Each image is Gaussian noise (pixelflow's ``gaussian_ramp`` generator, float32, so the
images are the ones the workflow makes), blurred with ``skimage.filters.gaussian``
(σ = 10), its variance recorded before and after, and saved as an 8-bit BMP.

    python benchmarks/stats_baseline.py serial|dask COUNT SIZE OUTPUT_FOLDER
"""

import sys
import time
from pathlib import Path

import numpy as np
import skimage.filters
import skimage.io
import skimage.util

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from pixelflow.datasets.generators import generate_image  # noqa: E402

SEED = 2026
DATASET = "noise"
SIGMA = 10


def make_image(index, size):
    return generate_image("gaussian_ramp", SEED, DATASET, index, (size, size), "float32")


def blur(image):
    return skimage.filters.gaussian(image, sigma=SIGMA)


def save(image, path):
    skimage.io.imsave(path, skimage.util.img_as_ubyte(np.clip(image, 0, 1)), check_contrast=False)


def run_serial(count, size, folder):
    variances = []
    for index in range(count):
        image = make_image(index, size)
        blurred = blur(image)
        variances.append((np.var(image), np.var(blurred)))
        save(blurred, folder / f"{index}.bmp")
    return variances


def run_dask(count, size, folder):
    import dask

    variances, saved = [], []
    for index in range(count):
        image = dask.delayed(make_image)(index, size)
        blurred = dask.delayed(blur)(image)
        variances.append((dask.delayed(np.var)(image), dask.delayed(np.var)(blurred)))
        saved.append(dask.delayed(save)(blurred, folder / f"{index}.bmp"))
    variances, _ = dask.compute(variances, saved)
    return variances


def main():
    mode, count, size, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    variances = {"serial": run_serial, "dask": run_dask}[mode](count, size, folder)
    print(
        f"{mode}: {count} x {size}^2 in {time.perf_counter() - started:.2f} s (after imports); "
        f"mean variance ratio {np.mean([after / before for before, after in variances]):.3g}"
    )


if __name__ == "__main__":
    main()
