"""The documents stay true to the code: every test they cite exists."""

import ast
import re

import pytest
from conftest import REPO


def defined_tests(path):
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


@pytest.mark.parametrize("document", ["docs/RELIABILITY.md"])
def test_every_cited_test_exists(document):
    text = (REPO / document).read_text()
    defined = set().union(*(defined_tests(path) for path in (REPO / "tests").glob("test_*.py")))
    cited = re.findall(r"`(?:tests/[\w/]+\.py::)?(test_\w+)", text)
    assert len(cited) > 20
    assert sorted(set(cited) - defined) == []


def test_every_public_function_and_class_has_an_example():
    import inspect

    import segment

    missing = [name for name in segment.__all__
               if (inspect.isfunction(getattr(segment, name))
                   or inspect.isclass(getattr(segment, name))
                   and not issubclass(getattr(segment, name), Exception))
               and "Example:" not in (getattr(segment, name).__doc__ or "")]
    assert missing == []
