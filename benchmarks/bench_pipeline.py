"""Input pipeline cost and memory: files on disk through create_generator vs tensors in memory.

    .venv/bin/python benchmarks/bench_pipeline.py            # about 5 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_pipeline.py --quick    # a smoke run

1. Overhead: the base-16 model trains at 128^2, batch 16, on ISIC-like 1022x767 JPEGs (made by
   the synthetic generator) through `create_generator` (memory cache): epoch 1 decodes, epochs
   2-4 read the cache. They alternate with epochs on the same images already decoded into
   tensors, so a noisy moment of the machine hits both; best against best is the ratio.
   Also epoch-1 decode speed with PIL's scaled JPEG decode and with full decoding.
2. Augmentation: the same model trains epochs over the same cached pairs with augment "none",
   "flips" and "full", alternating (after one warm-up epoch each, which decodes and traces);
   the best epoch of each kind gives the cost of each augmentation as a ratio to plain
   epochs; also `augment.augment_batch` alone, in ms per batch.
3. Memory: peak RSS of one training epoch (a small model, traced beforehand, so the pipeline
   dominates) over 500 and over 2,000 ISIC-size files, with the disk cache and with the memory
   cache, each in a fresh process; also the growth of the peak during the epoch. The files are
   copies of 50 synthetic pairs under new names: decoding cost and memory do not depend on the
   pixels.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402

import numpy as np  # noqa: E402
from measure import child_json, current_rss_mb, peak_rss_mb, run_eagerly, seconds  # noqa: E402
from PIL import Image  # noqa: E402

ISIC_SIZE = (767, 1022)  # (height, width) of most ISIC 2018 images
NETWORK_SIZE = (128, 128)
BATCH = 16
QUICK_NETWORK = {"base_filters": 4, "depth": 2}  # --quick: the smallest network that runs


def isic_like_set(folder, num_distinct, num_total, size=ISIC_SIZE):
    """`num_total` pairs of `size`: `num_distinct` synthetic ones, copied under new ids."""
    base = segment.make_synthetic_dataset(folder / "base", num_distinct, size=size)
    (folder / "images").mkdir(exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    for index in range(num_total):
        source = base[index % num_distinct]
        shutil.copy(source.image_path, folder / "images" / f"ISIC_{index:07d}.jpg")
        shutil.copy(source.mask_path, folder / "masks" / f"ISIC_{index:07d}_segmentation.png")
    return segment.find_pairs(folder / "images", folder / "masks")


def epoch_seconds(model, dataset):
    return seconds(lambda: model.fit(dataset, epochs=1, verbose=0, shuffle=False))


def overhead(folder, num_images, size, network):
    pairs = isic_like_set(folder, num_images, num_images, size)
    segment.training.set_seed(0)
    model = segment.training.compile_model(segment.create_model((*NETWORK_SIZE, 3), **network))
    files = segment.create_generator(pairs, image_size=NETWORK_SIZE, batch_size=BATCH)
    images, masks = zip(*[(x.numpy(), y.numpy()) for x, y in files], strict=True)
    import tensorflow as tf

    in_memory = tf.data.Dataset.from_tensor_slices(
        (np.concatenate(images), np.concatenate(masks))).batch(BATCH)
    epoch_seconds(model, in_memory)  # trace the training step once
    fresh = segment.create_generator(pairs, image_size=NETWORK_SIZE, batch_size=BATCH)
    from_files, memory = [epoch_seconds(model, fresh)], []  # epoch 1 decodes
    for _ in range(3):  # then alternate, so a noisy moment of the machine hits both alike
        memory.append(epoch_seconds(model, in_memory))
        from_files.append(epoch_seconds(model, fresh))  # epochs 2-4 read the cache
    scaled = _decode_rate(pairs, scaled=True)
    full = _decode_rate(pairs, scaled=False)
    return {"num_images": num_images,
            "epoch_seconds_from_files": from_files, "epoch_seconds_in_memory": memory,
            "epoch2_speed_relative_to_memory": min(memory) / min(from_files[1:]),
            "median_ratio_epochs_2_to_4": sorted(m / f for m, f in
                                                 zip(memory, from_files[1:], strict=True))[1],
            "decode_images_per_s_scaled": scaled, "decode_images_per_s_full": full}


def augmentation_cost(folder, num_images, rounds, network_size, model_options):
    """Epoch seconds of each augmentation kind on one model and one set of cached pairs."""
    from segment.augment import AUGMENTATIONS, augment_batch

    pairs = segment.make_synthetic_dataset(folder, num_images, seed=0)
    segment.training.set_seed(0)
    model = segment.training.compile_model(
        segment.create_model((*network_size, 3), **model_options))
    datasets = {kind: segment.create_generator(pairs, image_size=network_size, batch_size=8,
                                               augment=kind, shuffle=True)
                for kind in AUGMENTATIONS}
    for dataset in datasets.values():
        epoch_seconds(model, dataset)  # decodes into the cache, traces the step
    epochs = {kind: [] for kind in AUGMENTATIONS}
    for _ in range(rounds):  # alternate, so a noisy moment of the machine hits all kinds
        for kind, dataset in datasets.items():
            epochs[kind].append(epoch_seconds(model, dataset))
    images = np.zeros((8, *network_size, 3), np.uint8)
    masks = np.zeros((8, *network_size, 1), np.uint8)
    batch_ms = {kind: 1000 * seconds(lambda kind=kind: [
        augment_batch(images, masks, np.random.default_rng(step), kind) for step in range(20)])
        / 20 for kind in AUGMENTATIONS[1:]}
    return {"num_images": num_images, "network_size": list(network_size), "batch": 8,
            "epoch_seconds": epochs,
            "speed_relative_to_plain": {kind: min(epochs["none"]) / min(times)
                                        for kind, times in epochs.items() if kind != "none"},
            "augment_batch_ms": batch_ms}


def _decode_rate(pairs, *, scaled):
    def decode_all():
        for pair in pairs:
            if scaled:
                segment.load_input_image(pair.image_path, NETWORK_SIZE)
            else:
                with Image.open(pair.image_path) as image:
                    image.convert("RGB").resize(NETWORK_SIZE[::-1], Image.BILINEAR)

    return len(pairs) / seconds(decode_all)


def memory_child(folder, cache):
    """Train one epoch over the files in `folder` in this fresh process; print peak RSS.

    The model is traced on one batch first, so that the epoch's own growth (decoding,
    caching, shuffling) is what `growth_mb` shows.
    """
    pairs = segment.find_pairs(Path(folder) / "images", Path(folder) / "masks")
    segment.set_seed(0)
    model = segment.create_model((*NETWORK_SIZE, 3), base_filters=2, depth=3)
    segment.compile_model(model)
    model.train_on_batch(np.zeros((BATCH, *NETWORK_SIZE, 3), np.float32),
                         np.zeros((BATCH, *NETWORK_SIZE, 1), np.float32))
    dataset = segment.create_generator(
        pairs, image_size=NETWORK_SIZE, batch_size=BATCH, shuffle=True, cache=cache,
        cache_dir=Path(folder) / "cache" / "train" if cache == "disk" else None)
    before_mb = current_rss_mb()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    peak_mb = peak_rss_mb()
    print(json.dumps({"peak_rss_mb": peak_mb, "growth_mb": peak_mb - before_mb}))


def memory(num_totals, size, caches, quick=False):
    """Peak RSS of each child (`memory_child`), and the disk cache's growth from the first
    number of files to the second where two are given; --quick's child runs eagerly, as its
    parent."""
    results = {}
    for num_total in num_totals:
        with tempfile.TemporaryDirectory() as folder:
            isic_like_set(Path(folder), min(num_total, 50), num_total, size)
            for cache in caches:
                result = child_json(__file__, "--memory-child", folder, cache,
                                    *(["--quick"] if quick else []))
                shutil.rmtree(Path(folder) / "cache", ignore_errors=True)
                results[f"{cache}_{num_total}"] = result
                print(f"  {cache} cache, {num_total} files: {result}", file=sys.stderr)
    if len(num_totals) == 2:
        small, large = num_totals
        results["disk_cache_growth"] = (results[f"disk_{large}"]["peak_rss_mb"]
                                        / results[f"disk_{small}"]["peak_rss_mb"] - 1)
    results["memory_cache_bytes_per_image"] = NETWORK_SIZE[0] * NETWORK_SIZE[1] * (3 + 1)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: small images, few files, functions run eagerly")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        run_eagerly()
    if args.memory_child:
        return memory_child(*args.memory_child)
    size = (48, 64) if args.quick else ISIC_SIZE
    with tempfile.TemporaryDirectory() as folder:
        print("pipeline overhead ...", file=sys.stderr)
        results = {"overhead": overhead(Path(folder), 8 if args.quick else 96, size,
                                        QUICK_NETWORK if args.quick else {"base_filters": 16})}
    with tempfile.TemporaryDirectory() as folder:
        print("augmentation ...", file=sys.stderr)
        results["augmentation"] = (
            augmentation_cost(Path(folder), 16, 1, (32, 32), QUICK_NETWORK)
            if args.quick else
            augmentation_cost(Path(folder), 160, 3, NETWORK_SIZE, {"base_filters": 16}))
    print("memory ...", file=sys.stderr)
    results["memory"] = (memory((10,), size, ["disk"], quick=True) if args.quick else
                         memory((500, 2000), size, ["disk", "memory"]))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
