import os

import pytest

import chartlib


@pytest.fixture(scope="session", autouse=True)
def _helm_available():
    """helm is fetched (once, into $CCAG_TEST_CACHE) and is the pinned version,
    unless HELM_BIN names another one to test with."""
    out = chartlib.helm("version", "--short").stdout
    if not os.environ.get("HELM_BIN"):
        assert out.startswith(chartlib.HELM_VERSION_PREFIX), out
