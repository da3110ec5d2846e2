"""Book-level checks: the chapters are committed with outputs and readable
online (figure code folded away, a first cell saying how to get vaelib), the
Pages workflow is valid, the book builds with warnings as errors, and in a real
browser (headless Chromium, network cut off) the math is typeset, every image
loads and printed output fits the text column."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [
        ch["file"] for part in toc["parts"] for ch in part["chapters"]
    ]
    return files


def chapters():
    return [f for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]


def test_every_toc_entry_exists():
    for f in toc_files():
        assert (ROOT / f"{f}.ipynb").exists() or (ROOT / f"{f}.md").exists(), f


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_is_committed_with_outputs_from_one_fresh_run(chapter):
    nb = json.loads((ROOT / f"{chapter}.ipynb").read_text())
    code = [
        c
        for c in nb["cells"]
        if c["cell_type"] == "code" and "".join(c["source"]).strip()
    ]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        "re-execute the chapter top to bottom (README)"
    )
    for c in code:
        for out in c["outputs"]:
            assert out["output_type"] != "error", f"stored error in {chapter}"


def cells(chapter):
    return json.loads((ROOT / f"{chapter}.ipynb").read_text())["cells"]


@pytest.mark.parametrize("chapter", chapters())
def test_first_cell_says_how_to_get_vaelib(chapter):
    first = "".join(cells(chapter)[0]["source"])
    assert (
        first.startswith("# ")
        and "pip install -r requirements.txt -e ." in first
        and "make lab" in first
    )


@pytest.mark.parametrize("chapter", chapters())
def test_figure_cells_fold_their_code_and_check_nothing(chapter):
    """A cell that draws a figure is folded (``hide-input``), so it must not
    hold what a reader should see: a check, a model, a training call."""
    for c in cells(chapter):
        src = "".join(c["source"])
        if c["cell_type"] == "code" and "plt.show()" in src:
            assert "hide-input" in c["metadata"].get("tags", []), src[:200]
            assert not re.search(r"\bassert\b|check_close|\bfit\(", src), src[
                :200
            ]


def test_pages_workflow_is_valid_and_builds_with_the_readme_command():
    workflow = ROOT / ".github" / "workflows" / "pages.yml"
    check = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [
            str(check),
            "--builtin-schema",
            "vendor.github-workflows",
            str(workflow),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    steps = jobs["build"]["steps"]
    assert (
        any(step.get("run") == "make book" for step in steps)
        and "    make book\n" in (ROOT / "README.md").read_text()
    )
    upload = [
        step
        for step in steps
        if step.get("uses", "").startswith("actions/upload-pages-artifact")
    ]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    assert any(
        step.get("uses", "").startswith("actions/deploy-pages")
        for step in jobs["deploy"]["steps"]
    )


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [
            str(jb),
            "build",
            str(ROOT),
            "--path-output",
            str(out),
            "-W",
            "-n",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    log = result.stdout + result.stderr
    return out / "_build" / "html", result.returncode, log


def test_book_builds_without_warnings(built_book):
    html, returncode, log = built_book
    warnings = [
        line
        for line in log.splitlines()
        if "WARNING" in line or "ERROR" in line
    ]
    assert returncode == 0 and not warnings, "\n".join(warnings) or log[-3000:]
    assert (html / "book" / "intro.html").exists()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists(), (
        "MathJax must ship with the HTML"
    )


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        pytest.skip(
            "Chromium is not installed (Debian package 'chromium'; .ci/run "
            "installs it)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
            ],
        )
        yield browser
        browser.close()


def offline_page(browser):
    """A 1280-px page of an offline reader: anything that is not a local file
    is refused."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith("file:")
            else route.abort()
        ),
    )
    return page


@pytest.mark.parametrize("page_name", toc_files())
def test_page_renders_offline_with_typeset_math_and_images(
    built_book, browser, page_name
):
    html = built_book[0]
    assert (html / f"{page_name}.html").exists(), (
        "the book build did not produce this page"
    )
    page = offline_page(browser)
    page.goto((html / f"{page_name}.html").as_uri(), wait_until="load")
    raw_math = page.locator(
        "div.math, span.math"
    ).count()  # Sphinx loads MathJax only where needed
    if raw_math:
        has_mathjax = page.evaluate(
            "() => Array.from(document.scripts).some(s => "
            "/mathjax/i.test(s.src))"
        )
        assert has_mathjax, (
            f"{raw_math} math elements but no MathJax on the page (math in a "
            f"title?)"
        )
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && "
            "MathJax.startup.promise",
            timeout=20000,
        )
        page.evaluate("() => MathJax.startup.promise")
    n_math = page.locator("mjx-container").count()
    text = page.inner_text("body")
    images = page.evaluate(
        "() => Array.from(document.images).map(i => [i.getAttribute('src'), "
        "i.complete && i.naturalWidth > 0])"
    )
    # printed output, code and display math that need a horizontal scroll bar
    # at the
    # book's width (hidden plotting code is exempt: it is collapsed)
    too_wide = page.evaluate(
        "() => Array.from(document.querySelectorAll('div.cell_output pre, "
        "div.cell_input pre'))"
        ".filter(p => p.offsetParent !== null && p.scrollWidth > "
        "p.clientWidth + 1)"
        ".map(p => p.innerText.split('\\n').reduce((a, b) => b.length > "
        "a.length ? b : a, ''))"
    )
    math_too_wide = page.evaluate(
        "() => Array.from(document.querySelectorAll("
        "'mjx-container[display=\"true\"]'))"
        ".filter(m => m.scrollWidth > m.clientWidth + 1).map(m => "
        "m.parentElement.id || 'unlabelled')"
    )
    shots = os.environ.get("VAEBOOK_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(Path(shots) / f"{Path(page_name).name}.png"),
            full_page=True,
        )
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    phone_width = page.evaluate("() => document.documentElement.scrollWidth")
    if shots:
        page.screenshot(
            path=str(Path(shots) / f"{Path(page_name).name}-390.png"),
            full_page=True,
        )
    page.close()
    assert not too_wide, (
        f"code or printed output wider than the text column: {too_wide}"
    )
    assert not math_too_wide, (
        f"display equations wider than the text column: {math_too_wide}"
    )
    assert phone_width <= 391, (
        f"on a 390-px phone the page is {phone_width} px wide (horizontal "
        f"scrolling)"
    )
    if raw_math:
        assert n_math >= raw_math, (
            f"{raw_math} math elements but only {n_math} typeset"
        )
    assert not re.search(r"\\\[|\\\(|\\begin\{", text), (
        "raw TeX left in the page"
    )
    broken = [src for src, ok in images if not ok]
    assert not broken, f"images that did not load: {broken}"


LIVE_POSITIONS = [(-1.08, 0.3), (0.5, 0.8), (2.0, 0.1), (-0.15, 0.95)]


def test_live_identity_figure_shows_what_vaelib_computes(built_book, browser):
    """Chapter 5's live figure, offline: the script must load (it marks the
    figure ready), its added weight must stay small, and for slider
    positions set here the page must show log P(x), the ELBO and
    KL(Q ‖ P(z|x)) as vaelib computes them by its own routes (log_px_quad,
    Gauss–Hermite with 200 nodes and the closed-form KL to the prior,
    kl_to_posterior_quad), to the three decimals shown."""
    import torch

    import vaelib

    html = built_book[0]
    page = offline_page(browser)
    page.goto((html / "book" / "05_the_exact_gap.html").as_uri())
    figure = "div.vaebook-live[data-live='identity']"
    page.wait_for_selector(f"{figure}[data-ready='1']", timeout=20000)
    payload = page.locator(f"{figure} script").text_content()
    script = (html / "_static" / "live_identity.js").stat().st_size
    assert len(payload) + script < 200_000, "the live figure stays light"
    data = json.loads(payload)
    model = vaelib.NonlinearGaussian.random_mlp(  # chapter 5's toy model
        latent_dim=1, data_dim=2, sigma=0.3, seed=4
    )
    x = torch.tensor([data["x"]], dtype=torch.float64)
    log_px = vaelib.log_px_quad(model, x).item()
    for m, s in LIVE_POSITIONS:
        page.evaluate(
            "([m, s]) => { for (const [role, v] of [['mean', m], "
            "['scale', s]]) { const el = document.querySelector("
            "`input[data-role=${role}]`); el.value = v; "
            "el.dispatchEvent(new Event('input')); } }",
            [m, s],
        )
        shown = {
            role: float(page.text_content(f"td[data-role={role}]"))
            for role in ("log_px", "elbo", "kl", "sum")
        }
        q = vaelib.diagonal_normal(
            torch.tensor([[m]], dtype=torch.float64),
            torch.tensor([[s]], dtype=torch.float64),
        )
        elbo = (
            vaelib.expected_log_likelihood(model, q, x, n_nodes=200)
            - torch.distributions.kl_divergence(q, model.prior())
        ).item()
        kl = vaelib.kl_to_posterior_quad(model, q, x).item()
        want = {"log_px": log_px, "elbo": elbo, "kl": kl, "sum": log_px}
        for role, value in want.items():
            assert abs(shown[role] - value) <= 6e-4, (m, s, role, shown)
    page.close()
