"""A page checked in a real headless browser: Debian's Chromium, as .ci/run installs it."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


def check_in_chromium(page: Path, tmp: Path, texts: list[str]) -> str:
    """The page renders in headless Chromium: a non-blank screenshot, and every one of ``texts`` in the DOM.
    Returns the DOM."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None and os.environ.get("CI"):
        pytest.fail("Chromium is missing: .ci/run installs Debian's chromium for the report tests")
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chromium-profile'}"]
    shot = tmp / "page.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,1600", page.resolve().as_uri()],
                   capture_output=True, timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 10, "the screenshot is blank"
    dom = subprocess.run(flags + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    missing = [t for t in texts if t not in dom]
    assert not missing, f"{page}: not in the rendered page: {missing}"
    return dom
