"""Photomosaics through real snakemake runs: outputs, reuse of libraries, exact reruns, bad input."""

import json

import numpy as np
import pytest
from conftest import dry_run_plan, partial_entries, run_ok, run_snakemake, tiny_config, without_report
from pixelflow.io.images import read_image, write_image
from skimage.color import deltaE_ciede2000, rgb2lab

RNG = np.random.default_rng(2026)


def write_pictures(workdir):
    """Library images of mixed kinds (grey, RGBA, 16-bit) and an RGB target."""
    pics = workdir / "pics"
    pics.mkdir(parents=True, exist_ok=True)
    write_image(pics / "a_grey.png", RNG.integers(0, 256, (40, 40), dtype=np.uint8))
    write_image(pics / "b_alpha.png", RNG.integers(0, 256, (24, 33, 4), dtype=np.uint8))
    write_image(pics / "c_deep.png", RNG.integers(0, 65536, (16, 17), dtype=np.uint16))
    gradient = np.linspace(0, 255, 64)[None, :, None] * np.array([1.0, 0.5, 0.2])
    target = np.clip(gradient + RNG.normal(0, 20, (48, 64, 3)), 0, 255).astype(np.uint8)
    write_image(workdir / "target.png", target)
    return target


def mosaic_config(**mosaic_changes):
    mosaics = {
        "colour": {
            "target": "target.png",
            "library": "pics",
            "tile": 8,
            "max_repeats": 1,
            "colour_correction": 0.5,
            "features": {"grid": 2},
        },
        "grey": {"target": "results/mosaics/samples/camera.png", "library": "noise", "tile": 8, "scale": 2},
    }
    for name, changes in mosaic_changes.items():
        mosaics[name] = {**mosaics.get(name, {}), **changes}
    return tiny_config(
        libraries={
            "pics": {"path": "pics/*.png", "cut": True, "rotations": [0, 90], "flip": True},
            "noise": {"dataset": "uni"},
        },
        mosaics=mosaics,
    )


def test_mosaics_are_built_measured_and_rerun_exactly(tmp_path):
    target = write_pictures(tmp_path)
    run_ok(tmp_path, mosaic_config())
    results = tmp_path / "results" / "mosaics"

    # The library: every 8-px piece of every picture, in 2 rotations and mirrored, in RGB.
    library = np.load(results / "libraries" / "pics-8px.npz")
    grey = read_image(tmp_path / "pics" / "a_grey.png")
    assert library["tiles"].shape == ((25 + 12 + 4) * 4, 8, 8, 3)
    assert np.array_equal(library["tiles"][0], np.repeat(grey[:8, :8, None], 3, -1))
    assert np.array_equal(library["tiles"][41], np.rot90(library["tiles"][0]))
    assert np.array_equal(library["tiles"][82], np.fliplr(library["tiles"][0]))

    mosaic = read_image(results / "colour.png")
    report = json.loads((results / "colour.json").read_text())
    assert mosaic.shape == target.shape and report["cells"] == [6, 8]
    assert report["max_uses"] == 1 and report["distinct_tiles"] == 48 and report["library_tiles"] == 164
    expected = deltaE_ciede2000(rgb2lab(mosaic / 255.0), rgb2lab(target / 255.0)).mean()
    assert report["mean_ciede2000"] == pytest.approx(expected, abs=1e-3)
    assert set(report["seconds"]) == {"load", "features", "matching", "render_and_quality"}
    assert report["assignment"] == "optimal" and report["features"] == {"grid": 2, "space": "lab"}
    assert report["solver"] == {"solver": "dense", "proven_optimal": True}  # 48 cells x 164 tiles: the whole matrix
    # The placement table: one line per cell naming the tile, its source picture and its orientation.
    table = (results / "colour.tsv").read_text().splitlines()
    assert table[0].split("\t")[:4] == ["row", "col", "tile", "file"] and len(table) == 1 + 48
    first = table[1].split("\t")
    assert first[3].startswith("pics/") and first[6] in ("0", "90")

    grey_mosaic = read_image(results / "grey.png")
    assert grey_mosaic.shape == (128, 128)  # a grey target and a grey library: 64 x 64 cells of 2 px
    grey_report = json.loads((results / "grey.json").read_text())
    assert grey_report["library_tiles"] == 20 and grey_report["features"]["grid"] == 8  # the default grid
    assert partial_entries(tmp_path) == []

    assert dry_run_plan(tmp_path, mosaic_config()) == {}
    # A mosaic setting reruns that mosaic only; a new mosaic naming the same library and tile reuses its index.
    edited = mosaic_config(
        colour={"colour_correction": 0.9}, again={"target": "target.png", "library": "pics", "tile": 8}
    )
    assert without_report(dry_run_plan(tmp_path, edited)) == {
        "results/mosaics/colour.png": "mosaic",
        "results/mosaics/again.png": "mosaic",
    }
    for change in ({"assignment": "greedy"}, {"min_spacing": 1}):
        assert without_report(dry_run_plan(tmp_path, mosaic_config(colour=change))) == {
            "results/mosaics/colour.png": "mosaic"
        }
    # Another tile size is a new library index (and the mosaic); the 8-px index stays.
    assert without_report(dry_run_plan(tmp_path, mosaic_config(colour={"tile": 16}))) == {
        "results/mosaics/libraries/pics-16px.npz": "mosaic_library",
        "results/mosaics/colour.png": "mosaic",
    }


def test_bad_inputs_fail_with_named_causes_and_write_nothing(tmp_path):
    write_pictures(tmp_path)
    (tmp_path / "pics" / "d_broken.png").write_bytes((tmp_path / "pics" / "a_grey.png").read_bytes()[:60])
    (tmp_path / "not_an_image.png").write_text("hello", encoding="utf-8")
    config = mosaic_config(
        colour={},
        grey={"target": "not_an_image.png"},
        small={"target": "target.png", "library": "noise", "tile": 4, "max_repeats": 2},
        huge={"target": "target.png", "library": "noise", "tile": 50},
        spaced={"target": "target.png", "library": "noise", "tile": 8, "min_spacing": 4},
    )
    returncode, output = run_snakemake(tmp_path, config, "--keep-going")
    assert returncode != 0
    assert "d_broken.png" in output
    assert "not_an_image.png" in output
    assert "config key mosaics.small.max_repeats" in output and "192 cells need at least 96 tiles" in output
    assert "config key mosaics.huge.tile: 50 px is larger than the 64x48 target" in output
    assert "config key mosaics.spaced.min_spacing" in output and "the library has 20" in output
    for name in ("colour", "grey", "small", "huge", "spaced"):
        assert not (tmp_path / "results" / "mosaics" / f"{name}.png").exists()
        assert not (tmp_path / "results" / "mosaics" / f"{name}.json").exists()
        assert not (tmp_path / "results" / "mosaics" / f"{name}.tsv").exists()
    assert not (tmp_path / "results" / "mosaics" / "libraries" / "pics-8px.npz").exists()
    assert partial_entries(tmp_path) == []

    # Config errors stop the run before any job, naming the key.
    returncode, output = run_snakemake(tmp_path, mosaic_config(colour={"library": "nowhere"}), "-n")
    assert returncode != 0 and "config key mosaics.colour.library: no library named 'nowhere'" in output
    bad_glob = mosaic_config()
    bad_glob["libraries"]["pics"]["path"] = "missing/*.png"
    returncode, output = run_snakemake(tmp_path, bad_glob, "-n")
    assert returncode != 0 and "config key libraries.pics.path" in output and "empty library" in output


def write_phone_photos(folder):
    """Photos as a phone folder holds them: mixed sizes and formats, one stored turned with an EXIF tag."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    upright = np.zeros((30, 20, 3), np.uint8)
    upright[:10] = (255, 0, 0)  # red on top, as a viewer shows it
    upright[10:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter counter-clockwise; the viewer turns it clockwise
    Image.fromarray(np.rot90(upright)).save(folder / "a_sideways.jpg", quality=95, exif=exif)
    Image.fromarray(RNG.integers(0, 256, (50, 70, 3), dtype=np.uint8)).convert("P").save(folder / "b_palette.png")
    Image.fromarray(RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert("CMYK").save(folder / "c_cmyk.jpg")
    Image.fromarray(RNG.integers(0, 256, (33, 90), dtype=np.uint8)).save(folder / "d_grey.png")
    (folder / "e_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a photo")
    return upright


def test_a_folder_of_phone_photos_becomes_a_library_as_a_viewer_shows_it(tmp_path):
    upright = write_phone_photos(tmp_path / "phone")
    target = RNG.integers(0, 256, (36, 40, 3), dtype=np.uint8)
    write_image(tmp_path / "target.png", target)
    config = tiny_config(
        libraries={"phone": {"path": "phone/*", "on_bad_image": "skip", "rotations": [0, 180], "flip": True}},
        mosaics={"wall": {"target": "target.png", "library": "phone", "tile": [12, 8], "scale": 24, "max_repeats": 2}},
    )
    run_ok(tmp_path, config)
    results = tmp_path / "results" / "mosaics"
    library = np.load(results / "libraries" / "phone-12x8px.npz")
    assert library["tiles"].shape == (4 * 4, 12, 8, 3)  # 4 readable photos, 2 rotations, mirrored
    # The sideways photo is upright in its tile: red on top, blue below (a centre crop of 2:3 keeps both).
    first = library["tiles"][0].astype(int)
    assert first[1, 4, 0] > 200 and first[1, 4, 2] < 60 and first[-2, 4, 2] > 200 and first[-2, 4, 0] < 60
    report = json.loads((results / "wall.json").read_text())
    assert [path for path, _ in report["skipped_images"]] == ["phone/e_broken.jpg"]
    assert report["cells"] == [3, 5] and report["mosaic_shape"] == [72, 80, 3] and report["max_uses"] <= 2
    assert read_image(results / "wall.png").shape == (72, 80, 3)
    assert "e_broken.jpg" in (tmp_path / "results" / "logs" / "mosaics" / "libraries" / "phone-12x8px.log").read_text()
    assert upright.shape == (30, 20, 3)

    # The default, on_bad_image: fail, stops the library job naming the file, and writes nothing.
    config["libraries"]["phone"]["on_bad_image"] = "fail"
    config["mosaics"]["wall"]["tile"] = 8
    returncode, output = run_snakemake(tmp_path, config)
    assert returncode != 0 and "e_broken.jpg" in output
    assert not (results / "libraries" / "phone-8px.npz").exists() and partial_entries(tmp_path) == []
    # A quarter turn of non-square tiles is refused before any job.
    config["libraries"]["phone"]["rotations"] = [0, 90]
    config["mosaics"]["wall"]["tile"] = [12, 8]
    returncode, output = run_snakemake(tmp_path, config, "-n")
    assert returncode != 0 and "config key libraries.phone.rotations: a 90 degree turn" in output
