"""Record the README's animation of the overview and a still per optimization (`make animation`).

Runs the real app on a free local port, drives Debian's chromium with Playwright at
1280x720 (a projector), records a video of Play through a real run (Playwright's
record_video), and turns the overview's part of it into docs/media/overview.gif and
docs/media/overview.webm with ffmpeg (Debian package). Stills of the overview panel go
to docs/media/overview-<optimization>.png. Nothing here is canned: every frame is a run
made while recording, on this machine, with its measured timings.

    .venv/bin/python tools/record_overview.py [--out docs/media]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import playwright
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
VIEW = {"width": 1280, "height": 720}
PROMPT = "The capital of France is"
REPEAT = "one two three four five, one two three four five, one two three"


def use_debian_ffmpeg(folder: Path):
    """Playwright writes its videos with an ffmpeg it would download; point it at Debian's instead
    (a browsers folder holding only that ffmpeg; chromium is Debian's too, by executable_path)."""
    spec = Path(playwright.__file__).parent / "driver" / "package" / "browsers.json"
    revision = next(b["revision"] for b in json.loads(spec.read_text())["browsers"] if b["name"] == "ffmpeg")
    target = folder / f"ffmpeg-{revision}"
    target.mkdir(parents=True, exist_ok=True)
    link = target / "ffmpeg-linux"
    if not link.exists():
        link.symlink_to(shutil.which("ffmpeg"))
    os.environ["PLAYWRIGHT_BROWSERS_PATH"] = str(folder)


def serve():
    from werkzeug.serving import make_server

    import llmviz
    from llmviz.web import create_app
    app = create_app({"LLMVIZ_MODEL": llmviz.load_model(), "LLMVIZ_WARMUP": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def generate(page, prompt, tokens, kv_cache=True, speculative=False, quantization="fp32", batch=None):
    page.fill("[data-testid=prompt]", prompt)
    page.fill("[data-testid=max-new-tokens]", str(tokens))
    page.set_checked("#kv_cache", kv_cache)
    page.set_checked("#speculative", speculative)
    page.select_option("#quantization", quantization)
    page.set_checked("#batching", batch is not None)
    if batch:
        page.fill("[data-testid=batch-prompts]", "\n".join(batch))
    page.click("[data-testid=generate]")
    expect(page.locator("#status")).to_contain_text("Done: a batch" if batch else "Done", timeout=300_000)


def settled(page, step=None):
    sel = "[data-testid=overview].settled" + (f"[data-step='{step}']" if step is not None else "")
    expect(page.locator(sel)).to_have_count(1, timeout=120_000)


def stills(browser, url, out: Path):
    page = browser.new_page(viewport=VIEW)
    page.goto(url)
    shots = [
        ("overview", dict(prompt=PROMPT, tokens=6), 5),
        ("overview-kv-off", dict(prompt=PROMPT, tokens=6, kv_cache=False), 5),
        ("overview-int4", dict(prompt=PROMPT, tokens=3, quantization="int4"), 2),
        ("overview-speculative", dict(prompt=REPEAT, tokens=8, speculative=True), 1),
        ("overview-batch", dict(prompt=PROMPT, tokens=3, batch=["The capital of France is", "Once upon a time",
                                                               "def fibonacci(n):"]), 1),
    ]
    for name, settings, step in shots:
        generate(page, settings.pop("prompt"), settings.pop("tokens"), **settings)
        page.click(f"#steps-list li >> nth={step}")
        settled(page, step)
        page.locator("#overview-panel").screenshot(path=out / f"{name}.png")
        print(f"wrote {out / name}.png")
    page.close()


def animation(browser, url, out: Path):
    with tempfile.TemporaryDirectory() as tmp:
        context = browser.new_context(viewport=VIEW, record_video_dir=tmp, record_video_size=VIEW)
        page = context.new_page()
        recording = time.monotonic()                   # the video starts with the page
        page.goto(url)
        generate(page, PROMPT, 6)
        settled(page, 5)
        page.select_option("#overview-speed", "1")
        box = page.locator("#overview-panel").bounding_box()
        start = time.monotonic()
        page.click("[data-testid=play]")
        expect(page.locator("[data-testid=play]")).to_have_text("Pause")
        expect(page.locator("[data-testid=play]")).to_have_text("Play", timeout=120_000)
        settled(page, 5)
        length = time.monotonic() - start + 0.3
        video = page.video
        context.close()
        raw = Path(video.path())
        # the page loaded and generated before Play: keep only Play, cropped to the overview
        t0 = max(0.0, start - recording - 0.2)
        w, h = int(box["width"]) // 2 * 2, int(min(box["height"], VIEW["height"] - box["y"])) // 2 * 2
        crop = f"crop={w}:{h}:{int(box['x'])}:{int(box['y'])}"
        webm = out / "overview.webm"
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-ss", f"{t0:.2f}", "-t", f"{length:.2f}", "-i", str(raw),
                        "-vf", crop,
                        "-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "38", "-an", str(webm)], check=True)
        gif = out / "overview.gif"
        palette = (f"{crop},fps=10,scale=960:-1:flags=lanczos,split[a][b];"
                   "[a]palettegen=max_colors=96[p];[b][p]paletteuse=dither=bayer")
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-ss", f"{t0:.2f}", "-t", f"{length:.2f}", "-i", str(raw),
                        "-filter_complex",
                        palette, str(gif)], check=True)
        print(f"wrote {webm} and {gif} ({length:.1f} s of Play at 1x)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "media"))
    ap.add_argument("--no-video", action="store_true", help="only the stills")
    ap.add_argument("--no-stills", action="store_true", help="only the animation")
    args = ap.parse_args()
    if not args.no_video and not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is needed for the animation: apt-get install -y ffmpeg (or pass --no-video)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server, url = serve()
    tmp = tempfile.TemporaryDirectory()
    if not args.no_video:
        use_debian_ffmpeg(Path(tmp.name))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            if not args.no_video:
                animation(browser, url, out)
            if not args.no_stills:
                stills(browser, url, out)
            browser.close()
    finally:
        server.shutdown()
        tmp.cleanup()


if __name__ == "__main__":
    main()
