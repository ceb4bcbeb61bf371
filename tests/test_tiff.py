"""TIFFs beyond 8-bit RGB: 16-bit and float images keep their real range (a per-image percentile
stretch), multi-band images need a band selection, and the decoded cache tells the options apart."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from rsdistill.config import DataConfig, build_config
from rsdistill.data.decode import DecodedCache, DecodeOptions, decode_image
from rsdistill.errors import ConfigError, DataError

# 50 x 50 pixels whose 2nd and 98th percentiles are the 2nd and 5th value (np.percentile's linear
# interpolation falls between two equal sorted values at both ends): 40 dark and 40 bright outliers
# saturate, the values in between map linearly onto 0..255.
COUNTS = (40, 20, 1200, 1180, 20, 40)


def image_of(values, dtype) -> np.ndarray:
    flat = np.concatenate([np.full(n, v, dtype=np.float64) for v, n in zip(values, COUNTS)])
    return np.random.default_rng(0).permutation(flat).reshape(50, 50).astype(dtype)


def expected_of(img: np.ndarray, values, mapped) -> np.ndarray:
    out = np.zeros(img.shape, dtype=np.uint8)
    for v, m in zip(values, mapped):
        out[img == np.asarray(v, dtype=img.dtype)] = m
    return out


# low outliers, 2nd percentile, two values inside, 98th percentile, high outliers
UINT16 = (0, 1000, 1500, 2500, 3000, 65535)
FLOAT32 = (-0.5, 0.1, 0.2, 0.4, 0.5, 3.0)
# 1500 -> (500 / 2000) * 255 = 63.75 -> 64; 2500 -> 191.25 -> 191 (float: the same fractions)
MAPPED = (0, 0, 64, 191, 255, 255)


@pytest.mark.parametrize(("dtype", "values"), [(np.uint16, UINT16), (np.float32, FLOAT32)])
def test_16bit_and_float_tiffs_are_stretched_from_their_2nd_to_98th_percentile(tmp_path, dtype, values):
    grey = image_of(values, dtype)
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    out = decode_image(tmp_path / "grey.tif", 50)
    assert out.dtype == torch.uint8 and out.shape == (3, 50, 50)
    want = expected_of(grey, values, MAPPED)
    for c in range(3):  # grey stays grey on all three channels
        assert np.array_equal(out[c].numpy(), want)

    # RGB: each band is stretched on its own range
    rgb = np.stack([grey, np.rot90(grey), (np.asarray(grey, np.float64) * 2).astype(dtype)], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    out = decode_image(tmp_path / "rgb.tif", 50)
    assert np.array_equal(out[0].numpy(), want)
    assert np.array_equal(out[1].numpy(), np.rot90(want))
    assert np.array_equal(out[2].numpy(), want)  # twice the values, twice the percentiles


def test_16bit_grey_pngs_are_stretched_like_tiffs_not_clipped(tmp_path):
    from PIL import Image

    grey = image_of(UINT16, np.uint16)
    Image.fromarray(grey).save(tmp_path / "deep.png")  # a 16-bit grey PNG
    out = decode_image(tmp_path / "deep.png", 50)
    want = expected_of(grey, UINT16, MAPPED)
    for c in range(3):
        assert np.array_equal(out[c].numpy(), want)
    with pytest.raises(DataError, match=r"deep.png.*tiff_stretch"):
        decode_image(tmp_path / "deep.png", 50, DecodeOptions(tiff_stretch="none"))


def test_tiff_stretch_none_takes_8bit_tiffs_and_names_any_other_file(tmp_path):
    tifffile.imwrite(tmp_path / "deep.tif", image_of(UINT16, np.uint16))
    with pytest.raises(DataError, match=r"deep.tif.*uint16.*tiff_stretch"):
        decode_image(tmp_path / "deep.tif", 50, DecodeOptions(tiff_stretch="none"))
    eight = np.arange(50 * 50, dtype=np.uint16).reshape(50, 50) % 251
    tifffile.imwrite(tmp_path / "eight.tif", eight.astype(np.uint8))
    for stretch in ("none", "per_image"):  # 8-bit values are kept as they are either way
        out = decode_image(tmp_path / "eight.tif", 50, DecodeOptions(tiff_stretch=stretch))
        assert np.array_equal(out[0].numpy(), eight)


def four_bands(tmp_path, name="four.tif", dtype=np.uint16):
    """4 bands stored band-sequential (as GDAL writes multispectral images); band k is the test
    pattern rolled by 7k pixels, so the output shows which band it came from."""
    base = image_of(UINT16, dtype)
    bands = np.stack([np.roll(base, 7 * k) for k in range(4)])
    tifffile.imwrite(tmp_path / name, bands, photometric="minisblack", planarconfig="separate")
    return tmp_path / name, expected_of(base, UINT16, MAPPED)


def test_a_tiff_of_more_than_3_bands_is_rejected_by_name_unless_data_bands_selects_three(tmp_path):
    file, want = four_bands(tmp_path)
    with pytest.raises(DataError, match=r"four.tif' has 4 bands.*data.bands"):
        decode_image(file, 50)
    out = decode_image(file, 50, DecodeOptions(bands=(3, 0, 2)))
    for c, band in enumerate((3, 0, 2)):
        assert np.array_equal(out[c].numpy(), np.roll(want, 7 * band))
    with pytest.raises(DataError, match=r"four.tif' has 4 bands.*band 4"):
        decode_image(file, 50, DecodeOptions(bands=(4, 1, 0)))


def test_data_bands_are_all_or_distinct_band_indices_of_any_count():
    assert build_config({"data": {"bands": [3, 2, 1]}}).data.bands == [3, 2, 1]
    assert build_config({"data": {"bands": [0, 1, 2, 3, 7]}}).data.bands == [0, 1, 2, 3, 7]
    assert build_config({"data": {"bands": "all"}}).data.bands == "all"
    for bad in ([], [0, 0, 1], [-1, 0, 1], "some"):
        with pytest.raises(ConfigError, match="data.bands"):
            build_config({"data": {"bands": bad}})


def test_decoded_cache_is_keyed_by_the_decoding_options(tmp_path):
    root = tmp_path / "ds"
    (root / "a").mkdir(parents=True)
    four_bands(root / "a", "x.tif")
    cache = lambda bands: DecodedCache(tmp_path / "cache", options=DecodeOptions(bands=bands))  # noqa: E731
    first = cache((0, 1, 2)).load(root, ["a/x.tif"], 50)
    other = cache((2, 1, 0)).load(root, ["a/x.tif"], 50)
    assert torch.equal(other[0, 0], first[0, 2]) and not torch.equal(other, first)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    assert DecodeOptions.of(DataConfig(bands=[2, 1, 0], tiff_stretch="none")) == DecodeOptions("none", (2, 1, 0))


def test_a_complex_tiff_is_refused_by_name_not_read_as_its_real_part(tmp_path, recwarn):
    file = tmp_path / "slc.tif"
    tifffile.imwrite(file, (np.arange(50 * 50).reshape(50, 50) * (1 + 2j)).astype(np.complex64))
    with pytest.raises(DataError, match=r"slc.tif' holds complex values"):
        decode_image(file, 50)
    assert not [w for w in recwarn if "complex" in str(w.message).lower()]
