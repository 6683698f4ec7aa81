"""The synthetic lesion data set: ISIC-style names with ids of its own, binary masks,
deterministic, varied sizes."""

from segment import (
    Pair,
    load_input_image,
    load_segmented_image,
    make_synthetic_dataset,
    train_val_test_split,
)
from segment.provenance import seen_note
from segment.split import save_split

import numpy as np


def test_writes_isic_style_pairs_with_binary_non_empty_masks(synthetic_pairs):
    assert len(synthetic_pairs) == 24
    assert synthetic_pairs[0].image_path.name == "SYNTH_0000000.jpg"
    assert synthetic_pairs[0].mask_path.name == "SYNTH_0000000_segmentation.png"
    fractions = []
    for pair in synthetic_pairs:
        mask = load_segmented_image(pair.mask_path)
        assert load_input_image(pair.image_path).shape[:2] == mask.shape
        fractions.append(mask.mean())
    assert min(fractions) > 0.01 and max(fractions) < 0.7


def test_sizes_vary(synthetic_pairs):
    shapes = {load_segmented_image(pair.mask_path).shape for pair in synthetic_pairs}
    assert len(shapes) > 5


def test_lesion_is_darker_than_skin(synthetic_pairs):
    pair = synthetic_pairs[0]
    image = load_input_image(pair.image_path).mean(axis=-1)
    mask = load_segmented_image(pair.mask_path).astype(bool)
    assert image[mask].mean() < image[~mask].mean() - 20


def test_same_seed_same_images_and_growing_n_keeps_earlier_ones(tmp_path):
    first = make_synthetic_dataset(tmp_path / "a", 3, size=(32, 32), seed=5)
    second = make_synthetic_dataset(tmp_path / "b", 4, size=(32, 32), seed=5)
    for one, other in zip(first, second[:3], strict=True):
        assert np.array_equal(load_input_image(one.image_path), load_input_image(other.image_path))
    third = make_synthetic_dataset(tmp_path / "c", 1, size=(32, 32), seed=6)
    assert load_input_image(third[0].image_path).shape != load_input_image(
        first[0].image_path).shape or not np.array_equal(
        load_input_image(third[0].image_path), load_input_image(first[0].image_path))


def test_returns_only_the_pairs_it_wrote_and_names_the_others(tmp_path, caplog):
    caplog.set_level("INFO", logger="segment.synthetic")
    make_synthetic_dataset(tmp_path, 5, size=(16, 16))
    pairs = make_synthetic_dataset(tmp_path, 2, size=(16, 16))  # the folder holds 5 already
    assert [pair.id for pair in pairs] == ["SYNTH_0000000", "SYNTH_0000001"]
    assert all(pair.image_path.exists() and pair.mask_path.exists() for pair in pairs)
    assert "holds 3 files this set did not write (SYNTH_0000002.jpg, SYNTH_0000003.jpg" in (
        caplog.text)
    # the second call's 2 pairs held those bytes already: not written again
    assert "5 written, 0 already there" in caplog.text
    assert "0 written, 2 already there" in caplog.text
    caplog.clear()
    pairs[1].mask_path.write_bytes(b"changed")
    make_synthetic_dataset(tmp_path, 5, size=(16, 16))
    assert "did not write" not in caplog.text and "1 written, 4 already there" in caplog.text


def test_a_model_trained_on_synthetic_pairs_never_saw_the_isic_images_of_those_numbers(
        synthetic_pairs, tmp_path):
    # The ids once were ISIC_0000000 ...: evaluating the demo model on real ISIC images then
    # said it had trained on them ("not a test score"), and a comparison paired the two.
    save_split(train_val_test_split(synthetic_pairs), tmp_path / "split.json")
    real_ids = [Pair(tmp_path / f"ISIC_{index:07d}.jpg",
                     tmp_path / f"ISIC_{index:07d}_segmentation.png") for index in range(24)]
    assert seen_note(real_ids, tmp_path / "model.keras") == ""
    assert seen_note(synthetic_pairs, tmp_path / "model.keras").endswith("not a test score")
