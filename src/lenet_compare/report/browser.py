"""Open report.html in headless Chromium: console errors, whether every image rendered, a screenshot.

Uses Debian's ``chromium`` and ``chromium-driver`` through selenium. The browser runs with no
network (``--disable-background-networking`` and friends), so a report that needs anything
outside its own file shows up as a broken image or a console error.

    python -m lenet_compare.report.browser reports/report.html --screenshot reports/figures/report_screenshot.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
# Every <img>: whether it finished loading and its decoded size (0 when it is broken).
IMAGES_JS = """
return Array.from(document.images).map(img => ({
  alt: img.alt, src: img.currentSrc.slice(0, 40), complete: img.complete,
  naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight}));
"""


def missing_tools() -> list[str]:
    """What is not installed, as Debian package names (empty when the check can run)."""
    missing = []
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        missing.append("chromium")
    if not (Path(CHROMEDRIVER).exists() or shutil.which("chromedriver")):
        missing.append("chromium-driver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    return missing


@dataclass
class PageCheck:
    title: str
    console: list[dict] = field(default_factory=list)  # every console entry (level, message)
    images: list[dict] = field(default_factory=list)

    @property
    def errors(self) -> list[dict]:
        return [e for e in self.console if e.get("level") == "SEVERE"]

    @property
    def broken_images(self) -> list[dict]:
        return [i for i in self.images if not i["complete"] or i["naturalWidth"] == 0]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.broken_images and bool(self.images)


def check_page(
    html: str | Path, screenshot: str | Path | None = None, width: int = 1280, height: int = 1800
) -> PageCheck:
    """Load ``html`` from disk; optionally save a ``width`` x ``height`` screenshot of its top."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    html = Path(html).resolve()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER)
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.set_page_load_timeout(60)
            # --window-size includes the (invisible) browser frame; this sets the page's own size.
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            driver.get(html.as_uri())
            WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
            # Images decode asynchronously even after "complete": wait until each has settled.
            WebDriverWait(driver, 30).until(
                lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
            )
            result = PageCheck(title=driver.title, images=driver.execute_script(IMAGES_JS))
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                png = driver.get_screenshot_as_png()
                from lenet_compare.core.atomic import atomic_write

                with atomic_write(screenshot) as f:
                    f.write(png)
            result.console = driver.get_log("browser")
        finally:
            driver.quit()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("html", type=Path)
    p.add_argument("--screenshot", type=Path, help="save a PNG of the top of the page here")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=1800)
    args = p.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"error: not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2
    result = check_page(args.html, args.screenshot, args.width, args.height)
    for entry in result.console:
        print(f"console {entry.get('level')}: {entry.get('message')}")
    for img in result.broken_images:
        print(f"broken image: {img}")
    print(f"{args.html}: title {result.title!r}, {len(result.images)} images, {len(result.errors)} console errors")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
