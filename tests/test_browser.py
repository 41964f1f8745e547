"""report.html in a real browser: headless Chromium loads it offline with no console errors and
renders every image. Needs Debian's chromium and chromium-driver (.ci/run installs them)."""

from __future__ import annotations

import pytest
from PIL import Image
from synthetic_runs import params_for, write_runs

from lenet_compare.report.browser import check_page, missing_tools
from lenet_compare.report.common import FIGURES
from lenet_compare.report.compare import build

MISSING = missing_tools()
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"not installed: {', '.join(MISSING)} (apt-get install chromium chromium-driver)"
)


def test_report_opens_offline_without_errors_and_every_image_renders(tmp_path, small_cache):
    """On real Fashion-MNIST test images (the disagreement grid shows them)."""
    params = params_for(seeds=(0, 1, 2), epochs=4)
    runs, preds = write_runs(tmp_path, small_cache, params)
    r = tmp_path / "reports"
    build(
        params,
        runs,
        preds,
        small_cache,
        r / "report.md",
        r / "report.html",
        r / "metrics.json",
        r / "figures",
        r / "plots",
    )

    shot = tmp_path / "screenshot.png"
    page = check_page(r / "report.html", screenshot=shot)

    assert page.title.startswith("TensorFlow vs PyTorch")
    assert page.errors == [], page.errors
    assert len(page.images) == len(FIGURES)
    assert page.broken_images == [], page.broken_images
    assert all(img["naturalWidth"] > 0 and img["naturalHeight"] > 0 for img in page.images)
    with Image.open(shot) as img:
        assert img.format == "PNG" and img.size == (1280, 1800)
        # Not a blank page: a screenshot of text and tables has many distinct gray levels.
        assert len(img.convert("L").getcolors(maxcolors=256) or range(256)) > 20


def test_the_check_sees_broken_pages(tmp_path):
    """The browser check is not vacuous: a console error and a missing image are both reported."""
    page_file = tmp_path / "broken.html"
    page_file.write_text(
        "<!DOCTYPE html><html><head><title>broken</title></head><body>"
        '<img src="missing.png" alt="missing"><script>console.error("boom")</script></body></html>'
    )
    page = check_page(page_file)
    assert any("boom" in e["message"] for e in page.errors)
    assert [img["alt"] for img in page.broken_images] == ["missing"]
    assert not page.ok
