"""The training augmentation: what each kind may change, alignment of image and mask, seeds."""

from segment.artifacts import draw_artifacts
from segment.augment import augment_batch, lesion_views, to_float, training_batch
from segment.images import resize_image

import numpy as np
import pytest
from scipy import ndimage


def aligned_batch(num_images=6, size=32):
    """uint8 images whose red channel is 255 exactly where the mask is 1 (a random blob)."""
    rng = np.random.default_rng(0)
    masks = np.zeros((num_images, size, size, 1), np.uint8)
    for index in range(num_images):
        top, left = rng.integers(4, size // 2, 2)
        masks[index, top:top + 12, left:left + 9] = 1
    images = np.full((num_images, size, size, 3), 40, np.uint8)
    images[..., 0] = np.where(masks[..., 0] == 1, 255, 40)
    return images, masks


@pytest.mark.parametrize("kind", ["flips", "full"])
def test_same_rng_state_same_batch_and_masks_stay_binary(kind):
    images, masks = aligned_batch()
    first = augment_batch(images, masks, np.random.default_rng(7), kind)
    second = augment_batch(images, masks, np.random.default_rng(7), kind)
    other = augment_batch(images, masks, np.random.default_rng(8), kind)
    for ours, again in zip(first, second, strict=True):
        np.testing.assert_array_equal(ours, again)
    assert not np.array_equal(first[0], other[0])
    assert first[0].dtype == first[1].dtype == np.float32
    assert first[0].shape == images.shape and first[1].shape == masks.shape
    assert set(np.unique(first[1])) <= {0.0, 1.0} and 0 <= first[0].min() <= first[0].max() <= 1


def test_flips_only_turn_and_mirror_and_keep_every_pixel():
    images, masks = aligned_batch()
    out_images, out_masks = augment_batch(images, masks, np.random.default_rng(3), "flips")
    plain_images, plain_masks = to_float(images, masks)
    for index in range(len(images)):
        turns = [np.rot90(variant, k, axes=(0, 1)) for variant in
                 (plain_images[index], plain_images[index][:, ::-1]) for k in range(4)]
        match = [k for k, turned in enumerate(turns) if np.array_equal(turned, out_images[index])]
        assert match, index  # one of the 8 turns and mirrorings, pixel for pixel
        mask_turns = [np.rot90(variant, k, axes=(0, 1)) for variant in
                      (plain_masks[index], plain_masks[index][:, ::-1]) for k in range(4)]
        assert np.array_equal(mask_turns[match[0]], out_masks[index])


def test_full_augmentation_moves_image_and_mask_together():
    images, masks = aligned_batch()
    out_images, out_masks = augment_batch(images, masks, np.random.default_rng(5), "full")
    # Colour jitter moves the red level, but lesion pixels stay far brighter in red than skin.
    for image, mask in zip(out_images, out_masks[..., 0], strict=True):
        lesion, skin = image[..., 0][mask == 1], image[..., 0][mask == 0]
        threshold = (lesion.mean() + skin.mean()) / 2
        agreement = ((image[..., 0] > threshold) == (mask == 1)).mean()
        assert agreement > 0.97  # only the bilinear edge pixels may disagree


def test_colour_jitter_is_saturation_then_contrast_then_brightness():
    # With no geometric change possible (a constant image), the fused formula must equal the
    # three steps done one after another with the factors drawn from the same stream.
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    image[:] = image[:, :1, :1]  # constant: crops and flips leave it unchanged
    out, _ = augment_batch(image, np.zeros((1, 16, 16, 1), np.uint8), np.random.default_rng(4))
    draws = np.random.default_rng(4)
    draws.random((1, 3)), draws.uniform(0.8, 1.0, 1), draws.random((1, 2))  # flips, crop
    saturation, contrast = draws.uniform(0.8, 1.2, 1)[0], draws.uniform(0.8, 1.2, 1)[0]
    brightness = draws.uniform(-0.1, 0.1, 1)[0]
    x = image[0].astype(np.float64) / 255
    grey = x.mean(axis=-1, keepdims=True)
    x = grey + (x - grey) * saturation
    x = (x - x.mean()) * contrast + x.mean() + brightness
    np.testing.assert_allclose(out[0], np.clip(x, 0, 1), atol=1e-5)


def test_unknown_kind_is_refused():
    images, masks = aligned_batch(1)
    with pytest.raises(ValueError, match="Received: kind='rotate'"):
        augment_batch(images, masks, np.random.default_rng(0), "rotate")


def test_lesion_views_zoom_on_the_lesion_keep_it_aligned_and_leave_large_ones_whole():
    images, masks = aligned_batch(num_images=6, size=128)  # 12x9 lesions: under 1 % of the view
    masks[5] = 1  # a lesion covering the whole view: its box would exceed half of it
    images[5, ..., 0] = 255
    views, view_masks = lesion_views(images, masks, np.random.default_rng(0), (32, 32), 1.0)
    whole, whole_masks = lesion_views(images, masks, np.random.default_rng(0), (32, 32), 0.0)
    assert views.shape == (6, 32, 32, 3) and view_masks.shape == (6, 32, 32, 1)
    assert set(np.unique(view_masks)) <= {0, 1}
    lesion_share = view_masks[:5].mean(axis=(1, 2, 3))
    assert (lesion_share > 3 * whole_masks[:5].mean(axis=(1, 2, 3))).all()  # zoomed in
    assert (lesion_share < 0.9).all()  # with a margin of background around it
    agreement = ((views[..., 0] > 147) == (view_masks[..., 0] == 1)).mean()
    assert agreement > 0.97  # the crop cut image and mask at the same place
    np.testing.assert_array_equal(view_masks[5], whole_masks[5])  # kept whole
    np.testing.assert_array_equal(whole, np.stack([resize_image(image, (32, 32))
                                                   for image in images]))


def test_training_batch_crops_then_augments_and_repeats_with_the_seed():
    images, masks = aligned_batch(num_images=4, size=64)
    first = training_batch(images, masks, np.random.default_rng(2), kind="flips",
                           size=(32, 32), lesion_crops=0.5)
    again = training_batch(images, masks, np.random.default_rng(2), kind="flips",
                           size=(32, 32), lesion_crops=0.5)
    for ours, repeated in zip(first, again, strict=True):
        np.testing.assert_array_equal(ours, repeated)
    assert first[0].shape == (4, 32, 32, 3) and first[1].dtype == np.float32


def test_artifacts_are_drawn_beside_each_lesion_never_on_it_and_repeat_with_the_seed():
    images, masks = aligned_batch(num_images=6, size=64)
    drawn = draw_artifacts(images, masks, np.random.default_rng(5), share=1.0)
    np.testing.assert_array_equal(drawn, draw_artifacts(images, masks,
                                                        np.random.default_rng(5), share=1.0))
    np.testing.assert_array_equal(draw_artifacts(images, masks, np.random.default_rng(5),
                                                 share=0.0), images)
    for image, mask, with_artifacts in zip(images, masks[..., 0], drawn, strict=True):
        guarded = ndimage.binary_dilation(mask > 0, iterations=1)  # 2 % of 64 pixels: 1
        np.testing.assert_array_equal(with_artifacts[guarded], image[guarded])
        assert (with_artifacts[~guarded] != image[~guarded]).any(axis=-1).mean() > 0.002


def test_training_batch_with_artifacts_keeps_every_mask():
    images, masks = aligned_batch(num_images=4, size=64)
    out_images, out_masks = training_batch(images, masks, np.random.default_rng(1),
                                           artifacts=1.0)
    plain_images, plain_masks = to_float(images, masks)
    np.testing.assert_array_equal(out_masks, plain_masks)
    assert not np.array_equal(out_images, plain_images)
