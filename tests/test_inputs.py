"""The one check of in-memory images (allfuse.inputs): conversions by range, refusals naming the input."""

import numpy as np
import pytest

from allfuse.inputs import check_image, check_images

RNG = np.random.default_rng(0)
U8 = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)


def test_integers_of_known_range_are_converted_by_their_range() -> None:
    np.testing.assert_allclose(check_image(U8), U8 / 255.0, atol=1e-7)
    u16 = RNG.integers(0, 65536, (6, 7), dtype=np.uint16)
    np.testing.assert_allclose(check_image(u16), u16 / 65535.0, atol=1e-7)
    x = check_image(np.array([[True, False]]))
    assert x.dtype == np.float32 and x.tolist() == [[1.0, 0.0]]


def test_mixed_dtypes_become_one_float_list() -> None:
    f = (U8 / 255.0).astype(np.float64)
    xs = check_images([U8, f, (f * 65535).round().astype(np.uint16)])
    assert all(x.dtype == np.float32 for x in xs)
    np.testing.assert_allclose(xs[0], xs[1], atol=1e-6)
    np.testing.assert_allclose(xs[0], xs[2], atol=1e-4)


def test_shapes_h_w_1_is_gray_others_are_refused_with_a_hint() -> None:
    g = RNG.random((5, 4), dtype=np.float32)
    np.testing.assert_array_equal(check_image(g[..., None]), g)
    with pytest.raises(ValueError, match=r"images\[1\]: expected shape .* got \(5, 4, 4\) \(RGBA: drop"):
        check_images([g, np.zeros((5, 4, 4), np.float32)])
    with pytest.raises(ValueError, match=r"channels first"):
        check_image(np.zeros((3, 5, 6), np.float32))
    with pytest.raises(ValueError, match="empty"):
        check_image(np.zeros((0, 4), np.float32))


def test_float_range_nan_inf_and_unknown_dtypes_are_refused_naming_the_input() -> None:
    g = RNG.random((5, 4), dtype=np.float32)
    with pytest.raises(
        ValueError, match=r"^images\[1\]: float values must lie in \[0, 1\], got .*divide by 255"
    ):
        check_images([g, g * 255])
    with pytest.raises(
        ValueError, match=r"^images\[0\]: float values must lie in \[0, 1\], got \[-0\.5, 0\.5\]$"
    ):
        check_images([np.array([[-0.5, 0.5]]), np.zeros((1, 2))])
    bad = g.copy()
    bad[1:3, 1:3] = np.nan
    with pytest.raises(ValueError, match=r"^images\[1\]: 4 NaN or infinite value"):
        check_images([g, bad])
    inf = g.copy()
    inf[0, 0] = -np.inf
    with pytest.raises(ValueError, match=r"^images\[0\]: 1 NaN or infinite"):
        check_images([inf, g])
    with pytest.raises(ValueError, match=r"^images\[1\]: dtype int64 has no known range"):
        check_images([g, np.zeros((5, 4), np.int64)])
    with pytest.raises(ValueError, match="dtype complex"):
        check_image(np.zeros((5, 4), np.complex64))
    round_off = np.array([[-5e-4, 1 + 5e-4]], np.float64)  # within 1e-3: clipped, not refused
    assert check_image(round_off).tolist() == [[0.0, 1.0]]


def test_lists_need_two_images_of_one_size() -> None:
    g = np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match="at least 2 images, got 1"):
        check_images([g])
    with pytest.raises(ValueError, match=r"got an array of shape \(2, 5, 4\)"):
        check_images(np.stack([g, g]))
    with pytest.raises(ValueError, match=r"differ in size \(H x W\): 5x4, 4x5"):
        check_images([g, g.T])
    assert len(check_images(iter([g, g, g]))) == 3
