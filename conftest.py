"""Repository-level pytest configuration.

The ptq plugin itself loads through its ``pytest11`` entry point once the package is
installed; register your own models and recipes here or in your project's conftest.py.
"""

# The plugin tests drive pytest in a subprocess through pytester.
pytest_plugins = ["pytester"]
