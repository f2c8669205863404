"""Packaging for coreactors: the library, the `coreactors` console script and the twistd plugin."""

from setuptools import find_packages, setup

setup(
    name="coreactors",
    version="0.1.0",
    description="A dialogue server that speaks the Rasa Core 0.12 HTTP API, built as an actor system.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # twisted/plugins has no __init__.py on purpose (a twistd dropin folder); list it by name.
    packages=find_packages(include=["coreactors", "coreactors.*"]) + ["twisted.plugins"],
    # An explicit root makes `pip install -e .` put this folder on sys.path (a plain .pth)
    # instead of an import hook: twistd finds plugins by scanning sys.path for
    # twisted/plugins folders, which an import hook would hide.
    package_dir={"": "."},
    package_data={"coreactors": ["data/default_bot/*", "data/*.yml", "http/openapi.yml"]},
    include_package_data=True,
    install_requires=[
        "numpy>=1.21",
        "pyyaml>=5.4",
        "pykka>=4.0",
        "twisted>=23.8",
        "klein>=23.12",
        "treq>=23.8",
        "pyjwt>=2.8",
    ],
    extras_require={
        # rasa-sdk: the real action server library, run by the end-to-end tests.
        # schemathesis: fuzzes the running server against coreactors/http/openapi.yml.
        "test": ["pytest>=7", "rasa-sdk>=3.0", "schemathesis>=4.32"],
    },
    entry_points={"console_scripts": ["coreactors=coreactors.cli:main"]},
    zip_safe=False,
)
