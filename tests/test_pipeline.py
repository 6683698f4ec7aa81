"""create_generator: shapes, dtypes, ranges, augmentation that keeps image and mask aligned."""

from segment import Pair, create_generator

import numpy as np
import pytest
from conftest import write_image


def collect(dataset):
    images, masks = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(images), np.concatenate(masks)


def test_batches_have_documented_shapes_and_ranges(synthetic_pairs):
    dataset = create_generator(synthetic_pairs[:10], (32, 48), 4)
    images, masks = collect(dataset)
    assert images.shape == (10, 32, 48, 3) and masks.shape == (10, 32, 48, 1)
    assert images.dtype == np.float32 and masks.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1 and set(np.unique(masks)) == {0.0, 1.0}


@pytest.fixture
def aligned_pairs(tmp_path):
    """Pairs whose mask is exactly where the image is white, so alignment can be checked."""
    pairs = []
    rng = np.random.default_rng(0)
    for index in range(8):
        mask = np.zeros((32, 32), np.uint8)
        top, left = rng.integers(0, 16, 2)
        mask[top:top + 12, left:left + 8] = 1  # an off-centre rectangle
        image = np.repeat(mask[..., None] * 255, 3, axis=-1).astype(np.uint8)
        pairs.append(Pair(write_image(tmp_path / f"ISIC_{index:07d}.png", image),
                          write_image(tmp_path / f"ISIC_{index:07d}_segmentation.png",
                                      mask * 255)))
    return pairs


def test_augmentation_moves_image_and_mask_together(aligned_pairs):
    plain_images, _ = collect(create_generator(aligned_pairs, (32, 32), 8))
    images, masks = collect(create_generator(aligned_pairs, (32, 32), 8, augment=True, seed=1))
    assert set(np.unique(masks)) <= {0.0, 1.0}
    agreement = ((images.mean(axis=-1) > 0.5) == (masks[..., 0] > 0.5)).mean()
    assert agreement > 0.97  # only edge pixels differ (bilinear image, nearest mask)
    assert not np.allclose(images, plain_images)  # something did change


def test_same_seed_same_batches_different_seed_different(synthetic_pairs):
    def first_batch(seed):
        dataset = create_generator(synthetic_pairs, (32, 32), 6, augment=True, shuffle=True,
                                   seed=seed)
        return next(iter(dataset))[0].numpy()

    assert np.array_equal(first_batch(7), first_batch(7))
    assert not np.array_equal(first_batch(7), first_batch(8))


def test_unreadable_pair_is_skipped_and_named(synthetic_pairs, tmp_path):
    broken = tmp_path / "ISIC_9999999.jpg"
    broken.write_text("not a jpeg")
    pairs = list(synthetic_pairs[:5]) + [Pair(broken, synthetic_pairs[0].mask_path)]
    dataset = create_generator(pairs, (32, 32), 4)
    images, _ = collect(dataset)
    assert len(images) == 5
    assert [path for path, _ in dataset.skipped] == [str(broken)]


def test_disk_cache_writes_files_and_gives_the_same_data(synthetic_pairs, tmp_path):
    in_memory, _ = collect(create_generator(synthetic_pairs[:6], (32, 32), 3))
    dataset = create_generator(synthetic_pairs[:6], (32, 32), 3, cache=tmp_path / "cache")
    on_disk, _ = collect(dataset)
    assert np.array_equal(in_memory, on_disk)
    assert any(path.name.endswith(".index") for path in (tmp_path / "cache").iterdir())
    again, _ = collect(dataset)  # the second epoch reads the cache
    assert np.array_equal(on_disk, again)


@pytest.mark.parametrize("change", ["other pairs", "other order", "other size", "file replaced"])
def test_disk_cache_is_never_read_for_other_data(synthetic_pairs, tmp_path, change):
    # Problem 1 of the run-folder issue: one cache folder, a second run with other data.
    pairs = [Pair(*(tmp_path / "data" / path.name for path in pair))
             for pair in synthetic_pairs[:8]]
    for copy, original in zip(pairs, synthetic_pairs[:8], strict=True):
        copy.image_path.parent.mkdir(exist_ok=True)
        copy.image_path.write_bytes(original.image_path.read_bytes())
        copy.mask_path.write_bytes(original.mask_path.read_bytes())
    cache = tmp_path / "cache"
    collect(create_generator(pairs[:4], (32, 32), 4, cache=cache))  # writes the first cache
    second, size = pairs[:4], (32, 32)
    if change == "other pairs":
        second = pairs[4:]
    elif change == "other order":
        second = pairs[:4][::-1]
    elif change == "other size":
        size = (48, 48)
    else:  # same names, new content
        pairs[0].image_path.write_bytes(synthetic_pairs[5].image_path.read_bytes())
        pairs[0].mask_path.write_bytes(synthetic_pairs[5].mask_path.read_bytes())
    expected, _ = collect(create_generator(second, size, 4, cache=None))
    cached, _ = collect(create_generator(second, size, 4, cache=cache))
    assert np.array_equal(cached, expected)


def test_disk_cache_lock_left_by_a_killed_run_is_removed(synthetic_pairs, tmp_path):
    pairs = synthetic_pairs[:4]
    expected, _ = collect(create_generator(pairs, (32, 32), 4, cache=tmp_path))
    # What a kill while writing leaves: tf.data's lock file and no finished cache.
    (index,) = tmp_path.glob("*.index")
    name = index.name.removesuffix(".index")
    for finished in tmp_path.glob(f"{name}.*"):
        finished.unlink()
    (tmp_path / f"{name}_0.lockfile").write_text("")
    again, _ = collect(create_generator(pairs, (32, 32), 4, cache=tmp_path))
    assert np.array_equal(again, expected)
    assert not list(tmp_path.glob("*.lockfile"))


@pytest.mark.parametrize("cache", [None, "memory"])
def test_unreadable_pair_is_reported_once_however_many_epochs(synthetic_pairs, tmp_path, cache,
                                                              caplog):
    broken = tmp_path / "ISIC_9999999.jpg"
    broken.write_text("not a jpeg")
    dataset = create_generator([*synthetic_pairs[:3], (broken, synthetic_pairs[0].mask_path)],
                               (32, 32), 4, cache=cache)
    for _ in range(3):  # three epochs
        assert len(collect(dataset)[0]) == 3
    assert [path for path, _ in dataset.skipped] == [str(broken)]
    assert caplog.text.count("ISIC_9999999.jpg") == 1


def test_bad_arguments(synthetic_pairs):
    with pytest.raises(ValueError, match="Received: pairs"):
        create_generator([], (32, 32), 4)
    with pytest.raises(ValueError, match="batch_size=0"):
        create_generator(synthetic_pairs, (32, 32), 0)


def test_mask_of_another_size_is_resized_with_a_warning(tmp_path, caplog):
    image = write_image(tmp_path / "ISIC_0000001.png", np.zeros((40, 60, 3), np.uint8))
    mask = write_image(tmp_path / "ISIC_0000001_segmentation.png", np.zeros((20, 30), np.uint8))
    with caplog.at_level("WARNING"):
        images, masks = collect(create_generator([Pair(image, mask)], (32, 32), 1))
    assert images.shape == (1, 32, 32, 3) and masks.shape == (1, 32, 32, 1)
    assert ("mask 'ISIC_0000001_segmentation.png' is 30x20 but its image 'ISIC_0000001.png' "
            "is 60x40") in caplog.text


@pytest.mark.parametrize("cache", ["disk", "none", 3])
def test_cache_mode_words_are_not_taken_for_folders(synthetic_pairs, cache):
    with pytest.raises(ValueError, match=f"the folder of a disk cache. Received: cache={cache!r}"):
        create_generator(synthetic_pairs[:2], (32, 32), 2, cache=cache)
