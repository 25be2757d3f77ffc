"""Every docstring example (``Examples:`` sections, ``>>>``) in the package runs and shows what it says.

One test per module that has examples, run with the standard library's :mod:`doctest` on the
imported module (the package as installed, not a second copy from the file path). One option flag
holds for all, ``ELLIPSIS`` (``...`` in an expected output matches any text, as in the long error
messages); others are each example's own directives. Examples run offline and fast: the whole
package's take about 2 s on the 2-core CI machine.
"""

import doctest
import importlib
import io
import pkgutil

import pytest

import taskloss


def modules_with_examples() -> list[str]:
    """Names of the package's modules whose docstrings hold at least one example (modules are
    imported here to be searched; a module that cannot be imported is listed too, and its test
    fails with the import's error, instead of the whole file failing to collect)."""
    names = []
    for info in pkgutil.walk_packages(taskloss.__path__, "taskloss.", onerror=names.append):
        try:
            module = importlib.import_module(info.name)
        except Exception:
            names.append(info.name)
            continue
        if any(test.examples for test in doctest.DocTestFinder().find(module)):
            names.append(info.name)
    return sorted(set(names))


MODULES = modules_with_examples()


def test_the_package_has_examples_to_run():
    assert {"taskloss.locks", "taskloss.training.config", "taskloss.data.sources.folders"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_as_written(name):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    for test in doctest.DocTestFinder().find(module):
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, report.getvalue()
