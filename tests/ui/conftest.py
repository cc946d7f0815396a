"""UI test helpers: screenshots and the login form. The browser and page fixtures (Debian's chromium driven by
Playwright, per module) are in tests/conftest.py, shared with the browser checks in tests/integration."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def shots():
    """Where the tests' screenshots go: out/ui/<name>.png in the project (git-ignored), to look at after a run."""
    from mediaflow_dev.devstack import PROJECT  # noqa: PLC0415

    folder = PROJECT / "out" / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return lambda page, name: page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@pytest.fixture
def log_in():
    """Sign in through the UI's login form, as a person does."""

    def sign_in(page, password: str, user: str = "admin") -> None:
        page.goto("/auth/login")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)

    return sign_in


@pytest.fixture(scope="module")
def clip_delivery():
    """A news_clip delivery as the UI tests upload it: root/<asset_id>/ with a real 2 s 320x240 clip and its
    manifest (US, web). Returns the folder."""
    from mediaflow_dev import samples  # noqa: PLC0415

    def make(root, asset_id: str, title: str):
        folder = root / asset_id
        folder.mkdir()
        samples.make_video(folder / "clip.mp4", width=320, height=240, fps=25, seconds=2)
        manifest = {"asset_id": asset_id, "title": title, "value_stream": "news_clip", "source": {"file": "clip.mp4"},
                    "territories": ["US"], "channels": ["web"]}  # fmt: skip
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return folder

    return make


@pytest.fixture(scope="module")
def landed_clip(clip_delivery):
    """clip_delivery's clip in the stack's landing bucket, with its rights row (US, web, 2026-2030) merged into the
    avails, so its legal review passes by policy. Returns the folder."""
    from mediaflow.store import Buckets  # noqa: PLC0415
    from mediaflow_dev import runner  # noqa: PLC0415

    def land(stack, root, asset_id: str, title: str):
        folder = clip_delivery(root, asset_id, title)
        avails = root / f"{asset_id}-avails.csv"
        avails.write_text("asset_id,territory,channel,window_start,window_end,exclusive\n"
                          f"{asset_id},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false\n")  # fmt: skip
        s3, buckets = stack.s3_client(), Buckets.from_env()
        runner.merge_avails(s3, buckets, avails)
        runner.upload_delivery(s3, buckets, folder)
        return folder

    return land


LUMINANCE = """el => {
  const rgb = s => s.match(/[0-9.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(c => c / 255).map(c => c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)
    .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const style = getComputedStyle(el);
  return [lum(rgb(getComputedStyle(el.ownerDocument.body).backgroundColor)), lum(rgb(style.color)),
          lum(rgb(getComputedStyle(el.closest('.card') || el.ownerDocument.body).backgroundColor))];
}"""


@pytest.fixture(scope="session")
def luminance():
    """An element's colours as WCAG relative luminances, as the browser computed them: [the page's background, the
    element's text, the background of its card (the page's when it is on none)]."""
    return lambda locator: locator.evaluate(LUMINANCE)
