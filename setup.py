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
    # Upper bounds at the next major version. Twisted, Klein and treq number releases by
    # year and month (CalVer: 26.10 is October 2026), so their first number is a year, not a
    # compatibility promise: any release may drop what an earlier one deprecated. Their next
    # major is taken to be next year's first release (Twisted 26.x installed: <27), which
    # admits the year's releases and stops where a bump of the first number would stop a
    # semver package. coreactors/fastpaths leans on private names of Twisted, Klein, werkzeug
    # and json; tests/test_fastpaths.py says when one has changed.
    install_requires=[
        "numpy>=1.21,<3",
        "pyyaml>=5.4,<7",
        "pykka>=4.0,<5",
        "twisted>=23.8,<27",
        "klein>=23.12,<25",
        "treq>=23.8,<27",
        "pyjwt>=2.8,<3",
        # Imported directly (routes, routing errors). Klein requires Werkzeug without bounds;
        # 2.2 brought the state-machine matcher that the routing tests count calls of.
        "werkzeug>=2.2,<4",
        # The Redis tracker store (tracker_store: type: redis), as Rasa's, and the Redis lock
        # store; hiredis is the C reply parser redis-py uses when it is installed (a command's
        # client cost is what a busy server feels).
        "redis[hiredis]>=5,<9",
        # The PostgreSQL tracker store (tracker_store: type: sql, dialect: postgresql).
        "psycopg[binary]>=3.1,<4",
    ],
    extras_require={
        # rasa-sdk: the real action server library, run by the end-to-end tests.
        # schemathesis: fuzzes the running server against coreactors/http/openapi.yml.
        "test": ["pytest>=7,<10", "rasa-sdk>=3.0,<4", "schemathesis>=4.32,<5"],
    },
    entry_points={"console_scripts": ["coreactors=coreactors.cli:main"]},
    zip_safe=False,
)
