"""Install the project and its extras into a virtual environment, pinned by
requirements/constraints.txt: what `make` does in `.venv`.

    python3.11 -m venv --without-pip .venv
    python3.11 requirements/install.py .venv/bin/python '.[cpu,test]'

uv installs the same pinned files as pip, several times faster (docs/RESULTS.md, "The two
commands on a fresh clone"). So this script has the Python that runs it put uv
(its version pinned in the constraints) into the environment with pip, then hands uv the package
indexes, wheel folders, constraints and certificates pip is configured with (`pip config list`),
since uv reads its own settings, not pip's; uv also installs the environment's own pip. Where uv
cannot be had, the environment gets pip from `ensurepip` and pip installs the project as
before. Neither compiles bytecode at install time (the Makefile says why).
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

CONSTRAINTS = str(Path(__file__).resolve().parent / "constraints.txt")
# pip's settings that decide which files are installed, and uv's option for each
LIST_OPTIONS = {"extra-index-url": "--extra-index-url", "find-links": "--find-links",
                "constraint": "--constraint"}
# the configuration sections pip install reads, the later overriding the earlier
PIP_INSTALL_SECTIONS = ("global", "install", ":env:")


def pip_settings(listed):
    """{name: value} of the settings `pip install` uses, from what `pip config list` printed
    (sorted by key, e.g. "global.find-links='/opt/wheels'"), ranked as pip install ranks them:
    `install.` over `global.`, PIP_* variables (`:env:.`) over both, empty values ignored; the
    other commands' sections (download., freeze., ...) are left out."""
    ranked = []
    for line in filter(None, listed.splitlines()):
        key, _, printed = line.partition("=")
        section, _, name = key.partition(".")
        value = ast.literal_eval(printed)
        if section in PIP_INSTALL_SECTIONS and value:
            ranked.append((PIP_INSTALL_SECTIONS.index(section), name, value))
    return {name: value for _, name, value in sorted(ranked, key=lambda entry: entry[0])}


def uv_arguments(settings):
    """(options, environment) that give uv the indexes, wheels and constraints of pip's
    `settings`; `--index-strategy unsafe-best-match` takes each package's best version from
    any index, as pip does."""
    options = ["--index-strategy", "unsafe-best-match"]
    if "index-url" in settings:
        options += ["--index-url", settings["index-url"]]
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        options.append("--no-index")
    for name, option in LIST_OPTIONS.items():
        for value in settings.get(name, "").split():
            options += [option, value]
    environment = {"SSL_CERT_FILE": settings["cert"]} if "cert" in settings else {}
    return options, environment


def main(python, target):
    """Install `target` (e.g. '.[cpu,test]') into the environment of the interpreter `python`."""
    requirement = ["-c", CONSTRAINTS, "-e", target]
    if subprocess.run([*pip(sys.executable, "--python", python), "uv", *requirement[:2]],
                      stderr=subprocess.DEVNULL).returncode != 0:
        print("requirements/install.py: uv could not be installed; pip installs instead")
        subprocess.run([python, "-m", "ensurepip", "--default-pip"], check=True,
                       stdout=subprocess.DEVNULL)
        return subprocess.run([*pip(python), "--no-compile", *requirement]).returncode
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            capture_output=True, text=True, check=True).stdout
    options, environment = uv_arguments(pip_settings(listed))
    return subprocess.run([python, "-m", "uv", "pip", "install", "--quiet", "--python", python,
                           *options, "pip", *requirement],
                          env={**os.environ, **environment}).returncode


def pip(python, *options):
    """The command of `python`'s pip installing quietly (`options`: pip's own, e.g. --python)."""
    return [python, "-m", "pip", *options, "install", "--quiet", "--disable-pip-version-check"]


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
