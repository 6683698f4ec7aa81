"""The run folder's one owner: every path into it, its state, and what resume and overwrite do.

    run = RunFolder("runs/x")
    run.state                      # "new", "resumable", "finished" or "unfinished"
    run.begin(record, overwrite=False)   # check, clear what must go, write config.json
    run.model, run.split, run.log  # paths of the files inside

States:
    new         nothing this library writes is there.
    resumable   `backup/` is there: a training run was killed and can go on.
    finished    `model.keras` and `report.html` are there.
    unfinished  anything else: e.g. a model without a report, or a run killed before its first
                backup.

`begin` decides, for the settings `record` of the run about to start:
    resumable with the same settings   -> resume (everything is kept);
    resumable with other settings      -> RunFolderError, or cleared with overwrite;
    finished, or holding a model       -> RunFolderError, or cleared with overwrite;
    otherwise (no model, no backup)    -> what an earlier start left is cleared, no flag needed.
Clearing removes everything the library writes there (the names in `OUTPUTS`, the default
output folders of `driver_load_evaluate.py`, and temporary files of interrupted writes), never
files it does not know. `begin` first takes the folder for this process (`lock`, a `flock` of
`.lock`, released by `release` or when the process ends; none on Windows): another
process's `begin` is refused while it trains there, instead of resuming or clearing a live run.
"""

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked there
    fcntl = None

from .config import RunConfig
from .data import PREDICTIONS_TABLE, fingerprint_pairs
from .distribute import is_chief
from .errors import RunFolderError, SegmentError, counted
from .files import write_json_atomic, write_text_atomic
from .runtime import library_versions

__all__ = ["RunFolder", "run_settings"]

logger = logging.getLogger(__name__)

# Every file and folder a run writes, by the attribute name that gives its path.
OUTPUTS = {
    "model": "model.keras",  # the best epoch on validation dice
    "best": "best.json",  # which epoch that was and its score
    "split": "split.json",  # the manifest of the train / val / test ids
    "config": "config.json",  # RunConfig.to_dict() plus pairs and versions
    "log": "log.csv",  # one row per epoch
    "tensorboard": "tensorboard",  # TensorBoard logs
    "backup": "backup",  # only while training: what a restarted run resumes from
    "cache": "cache",  # decoded images with --cache disk, one file per fingerprint
    "evaluation_table": "evaluation.csv",  # one row of metrics per test image
    "summary": "summary.json",  # means, medians, counts, settings
    "comparison": "comparison.json",  # driver_load_evaluate.py --against: image by image
    "report": "report.html",  # the page that shows all of it
    "review": "review.html",  # every image's row and pictures, to look at (review.py)
    "review_pictures": "review",  # the review page's pictures and rows.json
    "predicted_masks": "predicted_masks",  # each test image's mask as scored, ISIC's naming
    "training_curves": "training_curves.png",
    "dice_histogram": "dice_histogram.png",
    "best_predictions": "best_predictions.png",
    "worst_predictions": "worst_predictions.png",
    "image_sizes": "image_sizes.png",  # with --inspect
    "skipped_files": "skipped_files.txt",  # only if some pairs could not be read
    "evaluation_dir": "evaluation",  # driver_load_evaluate.py's default report folder
    "predictions_dir": "predictions",  # its default --predict-only folder
}
# Settings that must match for a killed run to be resumed (config.json sections; the SHA-256
# of the file a fine-tuned network starts from, provenance.starting_record).
RESUME_KEYS = ("data", "model", "train", "pairs", "init_model_sha256")
_NUM_DIFFERING = 5  # differing settings a refusal names before "and N more"
# Temporary names of interrupted atomic writes (files.atomic_path, files.replace_path, the
# staging folders of the report and the review page).
_TEMPORARY = (".*.tmp*", ".*.old", ".report-*", ".review-*")
LOCK_FILE = ".lock"  # kept: removing it while a process holds it would let a second one in
_HELD = {}  # resolved run folder -> the open lock file this process holds it with


class RunFolder:
    """One run's folder: the paths of its files, its state, and resume or overwrite.

    Args:
        path: The folder (created on `begin`).

    Example:
        >>> run = RunFolder("runs/never-made")
        >>> run.state, run.model.name
        ('new', 'model.keras')
    """

    def __init__(self, path):
        self.path = Path(path)
        self.resuming = None  # set by `begin`: True when a killed run is continued

    def __getattr__(self, name):
        if name in OUTPUTS:
            return self.path / OUTPUTS[name]
        raise AttributeError(f"'RunFolder' has no attribute '{name}'")

    def __repr__(self):
        return f"RunFolder('{self.path}', state={self.state!r})"

    def __fspath__(self):
        return str(self.path)

    def cache_dir(self, part, cache="disk"):
        """Folder of the disk cache of one part ("train" or "val"); None unless the
        `DataConfig.cache` given is "disk"."""
        return self.cache / part if cache == "disk" else None

    @property
    def state(self):
        """"new", "resumable", "finished" or "unfinished" (see the module docstring)."""
        if self.backup.exists():
            return "resumable"
        if self.model.exists() and self.report.exists():
            return "finished"
        return "unfinished" if self.existing_outputs() else "new"

    def existing_outputs(self):
        """Names of the library's files and folders present, temporary leftovers included."""
        if not self.path.is_dir():
            return []
        names = [name for name in OUTPUTS.values() if (self.path / name).exists()]
        return names + sorted(path.name for pattern in _TEMPORARY
                              for path in self.path.glob(pattern))

    def recorded_settings(self, *, strict=False):
        """The `config.json` written by the run that used this folder, or {} if none.

        An unreadable one (not UTF-8 JSON, or not a JSON object) gives {} too, unless `strict`:
        then a `SegmentError` names the file and what is wrong with it.
        """
        try:
            settings = json.loads(self.config.read_text(encoding="utf-8"))
            if not isinstance(settings, dict):
                raise ValueError(f"it holds a JSON {type(settings).__name__}, not an object")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            if strict:
                raise SegmentError(f"'{self.config}' cannot be read ({error}); it records how the "
                                   f"model beside it was trained and is to be evaluated: repair "
                                   f"it, or move it away to use the defaults") from None
            return {}
        return settings

    def holds_run(self, record):
        """True when `config.json` records the settings of `record` (data, model, train, pairs).

        Settings are compared as this version reads them: a `config.json` written by an
        earlier version in another spelling of the same setting (`"augment": false` for
        "none") matches.
        """
        return _same_run(self.recorded_settings(), record)

    def begin(self, record, *, overwrite=False):
        """Make the folder ready for a training run with settings `record`; say if it resumes.

        Args:
            record: dict of the run's settings (RunConfig.to_dict() plus "pairs" and
                "versions"); written to `config.json` unless resuming.
            overwrite: Clear a finished run, a model, or a killed run with other settings.

        Returns:
            True when a killed run with the same settings is resumed.

        Raises:
            RunFolderError: another process holds the folder (`lock`), or it holds results
                of another run and `overwrite` is False.
        """
        self.lock()
        state = self.state
        if state == "resumable" and self.holds_run(record):
            self.resuming = True
            logger.info("'%s' holds an interrupted run with the same settings: resuming it",
                        self.path)
            return True
        if state == "resumable" and not overwrite:
            differing = _differing(self.recorded_settings(), record)
            raise RunFolderError(f"'{self.path}' holds an interrupted run with other settings "
                                 f"({differing or 'config.json unreadable'}); pass --overwrite "
                                 f"(overwrite=True) to discard it or choose another run folder")
        if state == "finished" and not overwrite:
            differing = _differing(self.recorded_settings(), record)
            which = f"with other settings ({differing})" if differing else "with these settings"
            raise RunFolderError(f"'{self.path}' already holds a finished run {which}; pass "
                                 f"--overwrite or choose another --run-dir")
        if self.model.exists() and not overwrite:
            raise RunFolderError(f"'{self.path}' already holds a model ({OUTPUTS['model']}) and "
                                 f"no report: if its training finished, write the report with "
                                 f"driver_load_evaluate.py --model {self.model} --out "
                                 f"{self.path}; else pass --overwrite (overwrite=True) or choose "
                                 f"another run folder")
        self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.config, record)
        self.resuming = False
        return False

    def open(self, settings, *, strategy, overwrite=False):
        """Begin a training run here (the chief) or follow the chief's (the other workers).

        The one place a run's record is made: `settings` plus the distribution strategy and
        the library versions, written to `config.json` by `begin`.

        Args:
            settings: dict of the run's settings, e.g. `RunConfig.to_dict()` plus "pairs".
            strategy: The tf.distribute strategy (or `distribute.OneDevice`) of the run.
            overwrite: As for `begin`.

        Returns:
            `resuming`: True when a killed run with the same settings goes on.

        Example:
            >>> run = RunFolder(tmp / "opened")
            >>> run.open({"train": {"epochs": 1}}, strategy=segment.distribute.OneDevice())
            False
            >>> sorted(run.recorded_settings())
            ['distribution', 'train', 'versions']
        """
        if not is_chief(strategy):
            return self.join()
        return self.begin({**settings,
                           "distribution": {"strategy": type(strategy).__name__,
                                            "replicas": strategy.num_replicas_in_sync},
                           "versions": library_versions()}, overwrite=overwrite)

    def lock(self):
        """Hold the folder for this process (again, if it does already) until `release` or
        the process ends, however it ends.

        Raises:
            RunFolderError: another process holds it; the message names that process.
        """
        key = self.path.resolve()
        if key in _HELD or fcntl is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 (held)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "a process that has not yet said which"
            handle.close()
            raise RunFolderError(f"'{self.path}' is in use by another run ({holder}): wait for "
                                 f"it to end, or choose another run folder") from None
        handle.truncate(0)
        handle.write(f"process {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        _HELD[key] = handle

    def release(self):
        """Let other processes use the folder again (see `lock`); nothing where this process
        does not hold it."""
        handle = _HELD.pop(self.path.resolve(), None)
        if handle is not None:
            handle.close()  # closing the file releases the lock

    def join(self):
        """Follow the chief's run here, as a worker that is not the chief: write nothing.

        Returns:
            `resuming`: True when the chief's backup is present, so every worker resumes alike.
        """
        self.resuming = self.backup.exists()
        return self.resuming

    def check_report(self, overwrite):
        """Raise RunFolderError where an evaluation may not write its report here: a report is
        here and `overwrite` is False, or the folder holds a prediction (its review page
        would be replaced by the report's)."""
        if (self.path / PREDICTIONS_TABLE).exists():
            raise RunFolderError(f"'{self.path}' holds a prediction ({PREDICTIONS_TABLE} and its "
                                 f"masks): choose another --out for the report")
        if self.report.exists() and not overwrite:
            raise RunFolderError(f"'{self.path}' already holds a report; pass --overwrite or "
                                 f"choose another --out")

    def write_skipped(self, skipped):
        """List each of `skipped` ((path, reason) of unreadable files) once in
        `skipped_files.txt`, however often it was met; with none, remove the list an earlier
        evaluation into the folder left."""
        unique = dict(skipped)  # path -> reason, in the order first met
        if not unique:
            self.skipped_files.unlink(missing_ok=True)
            return
        write_text_atomic(self.skipped_files,
                          "".join(f"{path}\t{reason}\n" for path, reason in unique.items()))
        logger.warning("skipped %s; listed in '%s'", counted(len(unique), "unreadable file"),
                       self.skipped_files)

    def clear(self):
        """Remove everything a run wrote here (see the module docstring); keep other files."""
        removed = self.existing_outputs()
        for name in removed:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        if removed:
            logger.info("cleared '%s' of the earlier run: %s", self.path, ", ".join(removed))


def run_settings(config, pairs, split=None):
    """The settings a run folder records for a training run (`RunFolder.holds_run` compares
    them): `config.to_dict()` plus "pairs", their count and `fingerprint_pairs`, and, for a
    `split` given rather than drawn from the settings, each of its parts' fingerprints."""
    parts = {} if split is None else {"parts": [fingerprint_pairs(part) for part in split]}
    return {**config.to_dict(), "pairs": {"count": len(pairs),
                                          "fingerprint": fingerprint_pairs(pairs), **parts}}


def _same_run(recorded, record):
    recorded, record = _as_read(recorded), _as_read(record)
    return all(recorded.get(key) == record.get(key) for key in RESUME_KEYS)


def _as_read(settings):
    """`settings` as plain JSON, its config sections read back through `RunConfig`, so older
    spellings become today's and absent sections and fields their defaults; unchanged where
    they do not read.
    The encoder's batch-norm mode is dropped where the encoder is the paper's own (which has no
    pretrained batch norms, so the setting cannot change the run)."""
    settings = _plain(settings)
    sections = ("data", "model", "train")
    try:  # a section absent (train_model alone once wrote "train" only) reads as its defaults
        read = RunConfig.from_dict({name: settings.get(name) for name in sections}).to_dict()
    except (TypeError, ValueError, AttributeError):
        return settings
    if read["model"]["encoder"] == "improved_unet":
        del read["model"]["encoder_batchnorm"]
    return {**settings, **_plain({name: read[name] for name in sections})}


def _differing(recorded, record):
    """'train.epochs: 20 -> 30, ...' for the settings that differ: the first
    `_NUM_DIFFERING`, then how many more (not `data.first_names`, which shortens paths)."""
    recorded, record = _as_read(recorded), _as_read(record)
    changes = []
    for key in RESUME_KEYS:
        old, new = recorded.get(key), record.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += [f"{key}.{name}: {old.get(name)} -> {new.get(name)}"
                        for name in sorted(old.keys() | new.keys())
                        if old.get(name) != new.get(name)]
        elif old != new:
            changes.append(f"{key} differs")
    more = (f" and {len(changes) - _NUM_DIFFERING} more" if len(changes) > _NUM_DIFFERING
            else "")
    return ", ".join(changes[:_NUM_DIFFERING]) + more


def _plain(value):
    """`value` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))
