"""create_generator: shapes, dtypes, ranges, augmentation that keeps image and mask aligned."""

import os
import threading

from segment import DataConfig, Pair, create_generator
from segment.pipeline import BATCHES_AHEAD, ENGINES, PAIRS_AS_THEY_ARE, PairBatches

import numpy as np
import pytest
from conftest import write_image


def collect(dataset):
    """All batches of one epoch, concatenated: (images, masks) numpy arrays."""
    if isinstance(dataset, PairBatches):
        batches = [dataset[index] for index in range(len(dataset))]
        dataset.on_epoch_end()
    else:
        batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    images, masks = zip(*batches, strict=True)
    return np.concatenate(images), np.concatenate(masks)


@pytest.fixture(params=ENGINES)
def engine(request):
    """Each test taking it runs on tf.data and on the PyDataset (TensorFlow-free) pipeline."""
    return request.param


def test_batches_have_documented_shapes_and_ranges(synthetic_pairs, engine):
    dataset = create_generator(synthetic_pairs[:10], image_size=(32, 48), batch_size=4,
                               engine=engine)
    images, masks = collect(dataset)
    assert images.shape == (10, 32, 48, 3) and masks.shape == (10, 32, 48, 1)
    assert images.dtype == np.float32 and masks.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1 and set(np.unique(masks)) == {0.0, 1.0}


@pytest.mark.parametrize("augment", ["none", "flips"])
def test_drop_remainder_gives_whole_batches_of_one_size_and_keeps_a_lone_batch(
        synthetic_pairs, engine, augment):
    settings = {"image_size": (32, 32), "batch_size": 4, "augment": augment, "engine": engine}
    dataset = create_generator(synthetic_pairs[:10], shuffle=True, drop_remainder=True,
                               **settings)
    if engine == "tf.data":  # the batch size is in the traced training step
        assert [spec.shape[0] for spec in dataset.element_spec] == [4, 4]
    else:
        assert len(dataset) == 2
    epochs = [collect(dataset)[0] for _ in range(4)]
    assert [len(images) for images in epochs] == [8] * 4
    # flips keep each image's pixel sum: it names the image; the two left out change by epoch
    seen = [frozenset(np.round(images.sum(axis=(1, 2, 3)), 2)) for images in epochs]
    assert len(set(seen)) > 1 and len(frozenset().union(*seen)) > 8
    lone = create_generator(synthetic_pairs[:3], shuffle=True, drop_remainder=True, **settings)
    assert len(collect(lone)[0]) == 3


def test_a_last_batch_that_would_leave_a_replica_without_images_is_left_out(
        synthetic_pairs, engine, caplog):
    """tf.distribute splits 5 images across 4 replicas as 2, 2, 1, 0, and 7 as 2, 2, 2, 1."""
    def pairs_per_epoch(count, replicas):
        return len(collect(create_generator(synthetic_pairs[:count], image_size=(32, 32),
                                            batch_size=8, replicas=replicas, engine=engine))[0])

    with caplog.at_level("INFO", logger="segment.pipeline"):
        assert [pairs_per_epoch(13, 4), pairs_per_epoch(15, 4), pairs_per_epoch(13, 1),
                pairs_per_epoch(5, 4)] == [8, 15, 13, 5]  # a lone batch is kept
    assert caplog.messages == ["leaving out each epoch's last batch, 5 of the 13 pairs (the "
                               "same ones each epoch): split across 4 replicas it would leave "
                               "one without images"]


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


def test_augmentation_moves_image_and_mask_together(aligned_pairs, engine):
    plain_images, _ = collect(create_generator(aligned_pairs, image_size=(32, 32), batch_size=8,
                                               engine=engine))
    images, masks = collect(create_generator(aligned_pairs, image_size=(32, 32), batch_size=8,
                                             augment="full", seed=1,
                                             engine=engine))
    assert set(np.unique(masks)) <= {0.0, 1.0}
    agreement = ((images.mean(axis=-1) > 0.5) == (masks[..., 0] > 0.5)).mean()
    assert agreement > 0.97  # only edge pixels differ (bilinear image, nearest mask)
    assert not np.allclose(images, plain_images)  # something did change



def test_lesion_crops_zoom_on_each_lesion_and_keep_the_mask_aligned(tmp_path, engine):
    pairs = []
    for index, (top, left) in enumerate([(4, 8), (30, 50), (50, 20), (27, 27)]):
        mask = np.zeros((64, 64), np.uint8)
        mask[top:top + 6, left:left + 5] = 1  # under 1 % of the view
        image = np.repeat(mask[..., None] * 255, 3, axis=-1).astype(np.uint8)
        pairs.append(Pair(write_image(tmp_path / f"ISIC_{index:07d}.png", image),
                          write_image(tmp_path / f"ISIC_{index:07d}_segmentation.png",
                                      mask * 255)))
    settings = {"image_size": (16, 16), "batch_size": 4, "engine": engine}
    _, whole_masks = collect(create_generator(pairs, **settings))
    images, masks = collect(create_generator(pairs, lesion_crops=1.0, seed=3, **settings))
    assert images.shape == (4, 16, 16, 3) and set(np.unique(masks)) <= {0.0, 1.0}
    assert ((images.mean(axis=-1) > 0.5) == (masks[..., 0] > 0.5)).mean() > 0.95  # aligned
    assert masks.mean() > 4 * whole_masks.mean()  # each crop zoomed in on its lesion

def test_pairs_as_they_are_undo_every_training_change_of_a_config(aligned_pairs, engine):
    settings = {"image_size": (32, 32), "batch_size": 8, "engine": engine}
    training = DataConfig(augment="full", lesion_crops=1.0, artifacts=1.0, seed=4)
    plain_images, plain_masks = collect(create_generator(aligned_pairs, **settings))
    changed, _ = collect(create_generator(aligned_pairs, training, **settings))
    images, masks = collect(create_generator(aligned_pairs, training, **PAIRS_AS_THEY_ARE,
                                             **settings))
    assert not np.allclose(changed, plain_images)
    np.testing.assert_array_equal(images, plain_images)
    np.testing.assert_array_equal(masks, plain_masks)


def dihedral(array):
    """The 8 turns and mirrorings of an (h, w, c) array, the identity first."""
    return [np.rot90(flipped, turn, axes=(0, 1))
            for flipped in (array, array.transpose(1, 0, 2)) for turn in range(4)]


def test_flips_augmentation_turns_or_mirrors_each_pair_and_keeps_its_pixels(aligned_pairs,
                                                                            engine):
    plain_images, plain_masks = collect(create_generator(aligned_pairs, image_size=(32, 32),
                                                         batch_size=8,
                                                         engine=engine))
    images, masks = collect(create_generator(aligned_pairs, image_size=(32, 32), batch_size=8,
                                             augment="flips",
                                             seed=1, engine=engine))
    chosen = []
    for plain_image, plain_mask, image, mask in zip(plain_images, plain_masks, images, masks,
                                                    strict=True):
        matches = [index for index, turned in enumerate(dihedral(plain_image))
                   if np.array_equal(turned, image)]  # exact: no pixel value is changed
        assert matches, "an augmented image is not a turn or mirroring of its original"
        assert np.array_equal(dihedral(plain_mask)[matches[0]], mask)
        chosen.append(matches[0])
    assert len(set(chosen)) > 1  # 8 images do not all get the same transform


def test_same_seed_same_batches_different_seed_different(synthetic_pairs, engine):
    def first_batch(seed):
        dataset = create_generator(synthetic_pairs, image_size=(32, 32), batch_size=6,
                                   augment="full", shuffle=True,
                                   seed=seed, engine=engine)
        return collect(dataset)[0][:6]

    assert np.array_equal(first_batch(7), first_batch(7))
    assert not np.array_equal(first_batch(7), first_batch(8))


def test_unreadable_pair_is_skipped_and_named(synthetic_pairs, tmp_path, engine):
    broken = tmp_path / "ISIC_9999999.jpg"
    broken.write_text("not a jpeg")
    pairs = list(synthetic_pairs[:5]) + [Pair(broken, synthetic_pairs[0].mask_path)]
    dataset = create_generator(pairs, image_size=(32, 32), batch_size=4, engine=engine)
    images, _ = collect(dataset)
    assert len(images) == 5
    assert [path for path, _ in dataset.skipped] == [str(broken)]


def test_batches_are_counted_before_the_first_epoch_and_a_truncated_file_is_replaced(
        synthetic_pairs, tmp_path, engine):
    # Headers are read first: a foreign file is left out before training, so the number of
    # batches is known (Keras shows "k/N" from epoch 1); a truncated JPEG, whose header reads,
    # is replaced by the next readable pair, keeping that number.
    foreign = tmp_path / "ISIC_9999998.jpg"
    foreign.write_text("not a jpeg")
    truncated = tmp_path / "ISIC_9999999.jpg"
    data = synthetic_pairs[1].image_path.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    pairs = [*synthetic_pairs[:5], Pair(foreign, synthetic_pairs[0].mask_path),
             Pair(truncated, synthetic_pairs[1].mask_path)]
    dataset = create_generator(pairs, image_size=(32, 32), batch_size=4, engine=engine)
    assert (len(dataset) if engine == "keras" else int(dataset.cardinality())) == 2  # 6 of 7
    images, _ = collect(dataset)
    assert len(images) == 6
    np.testing.assert_array_equal(images[5], images[0])  # the pair after the last: the first
    assert [path for path, _ in dataset.skipped] == [str(foreign), str(truncated)]


def test_disk_cache_writes_files_and_gives_the_same_data(synthetic_pairs, tmp_path):
    in_memory, _ = collect(create_generator(synthetic_pairs[:6], image_size=(32, 32), batch_size=3))
    dataset = create_generator(synthetic_pairs[:6], image_size=(32, 32), batch_size=3,
                               cache="disk", cache_dir=tmp_path / "cache")
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
    collect(create_generator(pairs[:4], image_size=(32, 32), batch_size=4, cache="disk",
                             cache_dir=cache))  # writes the first cache
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
    expected, _ = collect(create_generator(second, image_size=size, batch_size=4, cache="none"))
    cached, _ = collect(create_generator(second, image_size=size, batch_size=4, cache="disk",
                                         cache_dir=cache))
    assert np.array_equal(cached, expected)


def test_disk_cache_lock_left_by_a_killed_run_is_removed(synthetic_pairs, tmp_path):
    pairs = synthetic_pairs[:4]
    expected, _ = collect(create_generator(pairs, image_size=(32, 32), batch_size=4, cache="disk",
                                           cache_dir=tmp_path))
    # What a kill while writing leaves: tf.data's lock file and no finished cache.
    (index,) = tmp_path.glob("*.index")
    name = index.name.removesuffix(".index")
    for finished in tmp_path.glob(f"{name}.*"):
        finished.unlink()
    (tmp_path / f"{name}_0.lockfile").write_text("")
    again, _ = collect(create_generator(pairs, image_size=(32, 32), batch_size=4, cache="disk",
                                        cache_dir=tmp_path))
    assert np.array_equal(again, expected)
    assert not list(tmp_path.glob("*.lockfile"))


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_unreadable_pair_is_reported_once_however_many_epochs(synthetic_pairs, tmp_path, cache,
                                                              caplog, engine):
    broken = tmp_path / "ISIC_9999999.jpg"
    broken.write_text("not a jpeg")
    dataset = create_generator([*synthetic_pairs[:3], (broken, synthetic_pairs[0].mask_path)],
                               image_size=(32, 32), batch_size=4, cache=cache, engine=engine)
    for _ in range(3):  # three epochs
        assert len(collect(dataset)[0]) == 3
    assert [path for path, _ in dataset.skipped] == [str(broken)]
    assert caplog.text.count("ISIC_9999999.jpg") == 1


def test_bad_arguments(synthetic_pairs):
    with pytest.raises(ValueError, match="Received: pairs"):
        create_generator([], image_size=(32, 32), batch_size=4)
    with pytest.raises(ValueError, match="batch_size=0"):
        create_generator(synthetic_pairs, image_size=(32, 32), batch_size=0)


def test_mask_of_another_size_is_resized_with_a_warning(tmp_path, caplog):
    image = write_image(tmp_path / "ISIC_0000001.png", np.zeros((40, 60, 3), np.uint8))
    mask = write_image(tmp_path / "ISIC_0000001_segmentation.png", np.zeros((20, 30), np.uint8))
    with caplog.at_level("WARNING"):
        images, masks = collect(create_generator([Pair(image, mask)], image_size=(32, 32),
                                                 batch_size=1))
    assert images.shape == (1, 32, 32, 3) and masks.shape == (1, 32, 32, 1)
    assert ("mask 'ISIC_0000001_segmentation.png' is 30x20 but its image 'ISIC_0000001.png' "
            "is 60x40 (width x height); both are resized to 32x32") in caplog.text
    assert "another shape" not in caplog.text  # the same view at half the size


@pytest.mark.parametrize("cache, cache_dir", [("disk", None), ("memory", "somewhere"),
                                               ("none", "somewhere")])
def test_only_the_disk_cache_takes_a_folder(synthetic_pairs, cache, cache_dir):
    with pytest.raises(ValueError, match=f"Received: cache={cache!r}, cache_dir={cache_dir!r}"):
        create_generator(synthetic_pairs[:2], image_size=(32, 32), batch_size=2, cache=cache,
                         cache_dir=cache_dir)


@pytest.mark.parametrize("cache", ["ram", None, 3])
def test_unknown_cache_mode_is_refused(synthetic_pairs, cache):
    with pytest.raises(ValueError, match=r"Unknown cache. Received: cache="):
        create_generator(synthetic_pairs[:2], image_size=(32, 32), batch_size=2, cache=cache)


def test_size_and_batch_are_keywords_of_the_data_config(synthetic_pairs):
    with pytest.raises(TypeError, match="takes a DataConfig or its fields as keywords"):
        create_generator(synthetic_pairs[:2], (32, 32))  # the old positional size
    config = DataConfig(image_size=(32, 48), batch_size=2)
    images, _ = collect(create_generator(synthetic_pairs[:3], config, batch_size=3))
    assert images.shape == (3, 32, 48, 3)


def test_both_engines_give_the_same_pixels_without_augmentation(synthetic_pairs):
    tf_images, tf_masks = collect(create_generator(synthetic_pairs[:7], image_size=(32, 32),
                                                   batch_size=3))
    images, masks = collect(create_generator(synthetic_pairs[:7], image_size=(32, 32),
                                             batch_size=3, engine="keras"))
    np.testing.assert_allclose(images, tf_images, atol=1e-6)
    assert np.array_equal(masks, tf_masks)


def test_keras_engine_reshuffles_each_epoch_and_refuses_a_disk_cache(synthetic_pairs, tmp_path):
    dataset = create_generator(synthetic_pairs[:12], image_size=(32, 32), batch_size=12,
                               shuffle=True, engine="keras")
    first, second = collect(dataset)[0], collect(dataset)[0]
    assert not np.array_equal(first, second)
    assert np.allclose(np.sort(first.ravel()), np.sort(second.ravel()))  # the same images
    with pytest.raises(ValueError, match="caches in memory or not at all"):
        create_generator(synthetic_pairs[:2], image_size=(32, 32), batch_size=2, cache="disk",
                         cache_dir=tmp_path, engine="keras")


def test_keras_engine_makes_the_next_batches_in_threads_and_they_are_the_direct_ones(
        synthetic_pairs):
    def batches(ahead):
        dataset = create_generator(synthetic_pairs[:12], image_size=(32, 32), batch_size=2,
                                   shuffle=True, augment="full", engine="keras")
        assert dataset.batches_ahead == BATCHES_AHEAD == min(4, os.cpu_count())
        dataset.batches_ahead = ahead
        decode, dataset.decoded_in = dataset.loader, []  # the thread of each pair's decoding
        dataset.loader = lambda index: dataset.decoded_in.append(
            threading.current_thread().name.split("_")[0]) or decode(index)
        dataset.loader.readable = decode.readable
        return dataset

    direct, ahead = batches(0), batches(3)
    for _ in range(2):  # epochs: the next one's first batches are made at the end of this one
        for want, got in zip(collect(direct), collect(ahead), strict=True):
            np.testing.assert_array_equal(got, want)
    # the memory cache decodes each pair once; all but the very first batch's ahead of time
    assert direct.decoded_in == ["MainThread"] * 12
    assert sorted(ahead.decoded_in) == ["MainThread"] * 2 + ["pair-batches"] * 10


def test_tf_data_pipeline_runs_without_the_autotuning_thread(synthetic_pairs):
    # Its thread sleeps up to 60 s between rounds and Keras deletes each epoch's iterator,
    # which waits for it: a third of the epochs of a 20-epoch ISIC run stalled by 60 s.
    dataset = create_generator(synthetic_pairs[:4], image_size=(32, 32), batch_size=2,
                               shuffle=True, engine="tf.data")
    assert dataset.options().autotune.enabled is False
    assert len(list(dataset)) == 2  # and AUTOTUNE parallelism still works without it
