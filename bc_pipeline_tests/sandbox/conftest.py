"""Every sandbox test that uses a module's sandbox (fixture ``sb``) leaves no fault rule behind."""

import pytest


@pytest.fixture(autouse=True)
def _no_faults(request):
    sb = request.getfixturevalue("sb") if "sb" in request.fixturenames else None
    yield
    if sb is not None:
        sb.clear_faults()
