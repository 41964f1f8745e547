"""The report as documents: Markdown and one self-contained HTML page from one template, figures linked
and embedded, every string from a file shown as text, the ablation's summary in a section of its own,
and DVC's confusion CSVs."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import table_after, write_params
from PIL import Image
from report_helpers import FRAMEWORKS, SEEDS, build_here, outputs, pct, report_step
from synthetic_runs import params_for, write_ablation_runs, write_runs

from lenet_compare.ablation import report
from lenet_compare.core import article
from lenet_compare.data.dataset import load_prepared, save_prepared
from lenet_compare.evaluate.classification import confusion_matrix
from lenet_compare.report.common import FIGURES
from lenet_compare.report.compare import build
from lenet_compare.report.render import TEMPLATES, environment, image_link, markdown_to_html, md_escape

pytest_plugins = ["report_builds"]


def test_no_number_of_the_article_is_typed_in_a_template():
    """The article's facts live in lenet_compare.core.article; the templates get them passed in."""
    facts = [p["shown"].removesuffix(" %") for p in article.PUBLISHED.values()]
    facts += [f"{n:,}" for n in article.N_PARAMETERS.values()] + [article.as_written(e) for e in article.EPS.values()]
    facts.append(article.TRUNCATED_ACCURACY)
    for template in TEMPLATES.glob("*.j2"):
        text = template.read_text()
        assert [fact for fact in facts if fact in text] == [], template.name


def test_the_filters_name_their_units():
    """Fractions in, percent or signed percentage points out; values already in points keep their sign."""
    env = environment()
    render = lambda text, **kw: env.from_string(text).render(**kw)  # noqa: E731
    assert render("{{ x|percent_from_fraction }}", x=0.90356) == "90.36"
    assert render("{{ x|points_from_fraction }}", x=-0.0014) == "-0.14"
    assert render("{{ x|points_from_fraction }}", x=0.004) == "+0.40"
    assert render("{{ x|signed }}", x=1.34) == "+1.34"
    assert render("{{ x|percent_from_fraction }} {{ x|points_from_fraction }}", x=None) == "n/a n/a"


def test_verdict_is_in_both_reports(built):
    verdict = [line[2:] for line in built.md.splitlines() if line.startswith("- ") and "alpha = 0.05" in line]
    assert verdict, "no verdict line"
    # The HTML shows the same sentences (as text, with markdown-it's escaping).
    assert re.sub(r"<[^>]+>", "", built.html).count("paired t-test p =") >= 1


def test_confusion_csv_is_the_first_seed(built):
    arrays, meta = load_prepared(built.cache)
    names = meta["class_names"]
    for f in FRAMEWORKS:
        with open(built.reports / "plots" / f"confusion_{f}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == len(arrays["y_test"])
        actual = np.array([names.index(r["actual"]) for r in rows])
        predicted = np.array([names.index(r["predicted"]) for r in rows])
        np.testing.assert_array_equal(actual, arrays["y_test"])
        assert confusion_matrix(actual, predicted) == built.metrics(f, SEEDS[0])["confusion_matrix"]


# ----------------------------------------------------------------------------------------------
# Figures and the self-contained HTML


def test_every_figure_referenced_exists_and_is_a_png(built):
    links = re.findall(r"!\[[^\]]*\]\(<([^>]+)>\)", built.md)
    assert links == [f"figures/{name}.png" for name in FIGURES]
    for link in links:
        path = built.reports / link  # relative to report.md
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.format == "PNG"
            assert img.width >= 600 and img.height >= 150, (link, img.size)


def test_image_links_survive_spaces_and_parentheses():
    link = image_link("learning_curves", "my figs (v2)/a b).png")
    assert link == "![learning curves](<my figs (v2)/a b).png>)"
    html = markdown_to_html(link, "t")
    assert '<img src="my%20figs%20(v2)/a%20b).png" alt="learning curves"' in html
    with pytest.raises(ValueError):
        image_link("x", "a\nb.png")


def test_figures_in_a_folder_with_spaces_and_parentheses(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    out = outputs(tmp_path) | {"figures_dir": tmp_path / "reports" / "my figs (v2)"}
    build(params, runs, preds, fake_cache, **out)
    md = out["out_md"].read_text()
    html = markdown_to_html(md, "t")
    for name in FIGURES:
        assert f"(<my figs (v2)/{name}.png>)" in md
        assert f'<img src="my%20figs%20(v2)/{name}.png"' in html


def test_html_embeds_every_figure_and_nothing_external(built):
    srcs = re.findall(r'<img src="([^"]+)"', built.html)
    assert len(srcs) == len(FIGURES)
    for src, name in zip(srcs, FIGURES, strict=True):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == (built.reports / "figures" / f"{name}.png").read_bytes()
    # No external resource anywhere: only data: URIs after src= / href=, no <script> at all.
    assert not re.search(r'(?:src|href)="(?!data:|#)', built.html)
    assert "<script" not in built.html
    assert "Content-Security-Policy" in built.html
    assert "<title>TensorFlow vs PyTorch: LeNet-5 on Fashion-MNIST, a controlled comparison</title>" in built.html


def test_html_shows_the_same_numbers(built):
    text = re.sub(r"<[^>]+>", "", built.html)
    for f in FRAMEWORKS:
        for a in built.acc(f):
            assert pct(a) in text


def test_report_is_reproducible(fake_cache, tmp_path, built):
    """Same inputs, same bytes: figures and reports diff cleanly in git."""
    out = outputs(tmp_path)
    build(built.params, built.runs, built.preds, fake_cache, **out)
    assert out["out_md"].read_text() == built.md
    assert out["out_html"].read_text() == built.html
    for name in FIGURES:
        a = (out["figures_dir"] / f"{name}.png").read_bytes()
        assert a == (built.reports / "figures" / f"{name}.png").read_bytes(), name


# ----------------------------------------------------------------------------------------------
# Strings from files are text, never markup


def test_strings_from_files_are_escaped(tmp_path, fake_cache):
    arrays, meta = load_prepared(fake_cache)
    meta["class_names"][0] = "<img src=x onerror=alert(1)>"
    cache = tmp_path / "hostile.npz"
    save_prepared(cache, arrays, meta)
    hostile = '<script>alert("x")</script> | *bold* [link](http://example.com) &amp;'
    b = build_here(
        tmp_path, cache, params_for(FRAMEWORKS, (0, 1)), device_name=hostile, extra_run={"framework_version": hostile}
    )
    assert "<script>alert" not in b.html and "<img src=x" not in b.html
    assert "&lt;script&gt;alert" in b.html
    assert 'href="http://example.com"' not in b.html and "<strong>bold</strong>" not in b.html
    assert md_escape(hostile) in b.md
    # The escaped "|" keeps the tables intact: 3 cells in every environment row.
    assert all(len(r) == 3 for r in table_after(b.md, "## Environment"))
    assert hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in b.html


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a|b", r"a\|b"),
        ("T-shirt/top", "T-shirt/top"),
        ("learning_curves", "learning_curves"),
        ("_x_", r"\_x\_"),
        ("p < 0.05", "p < 0.05"),
        ("<b>", r"\<b>"),
        ("-0.45", "-0.45"),
        ("- item", r"\- item"),
        ("# heading", r"\# heading"),
        ("1. one", r"1\. one"),
        ("1.5", "1.5"),
        ("two\nlines", "two lines"),
        ("&amp;", r"\&amp;"),
        ("$x$", r"\$x\$"),
    ],
)
def test_md_escape(text, escaped):
    assert md_escape(text) == escaped


# ----------------------------------------------------------------------------------------------
# The ablation's summary (reports/ablation.json), only when --ablation is given

ABLATION_HEADING = "## The article's gap, explained"


def write_ablation_json(root: Path, params: dict) -> Path:
    """reports/ablation.json (and ablation.md beside it) from synthetic ablation runs under ``root``/abl."""
    runs, main = write_ablation_runs(root / "abl", params)
    r = root / "reports"
    report.build(params, runs, main, r / "ablation.md", r / "ablation.json", r / "figures" / "ablation.png")
    return r / "ablation.json"


def paragraph_after(md: str, heading: str) -> str:
    return md.split(heading + "\n\n", 1)[1].split("\n\n", 1)[0]


def test_no_ablation_section_without_the_argument(built):
    assert ABLATION_HEADING not in built.md
    assert "gap, explained" not in built.html and "ablation.md" not in built.html


def test_ablation_section_has_two_sentences_and_a_link(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, SEEDS)
    params["ablation"]["seeds"] = list(SEEDS)
    write_params(tmp_path / "params.yaml", params)
    ablation_json = write_ablation_json(tmp_path, params)
    runs, preds = write_runs(tmp_path, fake_cache, params)
    out = outputs(tmp_path)
    report_step(tmp_path, runs, preds, fake_cache, out, "--ablation", ablation_json)
    md, html = out["out_md"].read_text(), out["out_html"].read_text()
    sentences = json.loads(ablation_json.read_text())["summary"]
    assert len(sentences) == 2
    # Exactly the two generated sentences, as one paragraph, then the link to ablation.md beside report.md.
    paragraph = paragraph_after(md, ABLATION_HEADING)
    assert paragraph == f"{md_escape(sentences[0])} {md_escape(sentences[1])}"
    assert len(re.findall(r"\.(?:\s|$)", paragraph)) == 2
    assert "[ablation.md](<ablation.md>)" in md
    assert (tmp_path / "reports" / "ablation.md").is_file()
    # The section sits after the verdict, before the table of differences.
    assert md.index("**Verdict**") < md.index(ABLATION_HEADING) < md.index("## What differed in the article")
    text = re.sub(r"<[^>]+>", "", html)
    for sentence in sentences:
        assert sentence.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in text
    assert '<a href="ablation.md">' in html


def test_ablation_link_is_relative_to_each_report(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    params["ablation"]["seeds"] = [0, 1]
    ablation_json = write_ablation_json(tmp_path, params)
    runs, preds = write_runs(tmp_path, fake_cache, params)
    out = outputs(tmp_path) | {"out_md": tmp_path / "md" / "report.md", "out_html": tmp_path / "html" / "r.html"}
    build(params, runs, preds, fake_cache, **out, ablation=ablation_json)
    assert "[../reports/ablation.md](<../reports/ablation.md>)" in out["out_md"].read_text()
    assert '<a href="../reports/ablation.md">' in out["out_html"].read_text()


def test_ablation_strings_are_escaped(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    hostile = '<script>alert("x")</script> *bold* [link](http://example.com).'
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"summary": [hostile, "Second | sentence."], "markdown": "ablation.md"}))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    out = outputs(tmp_path)
    build(params, runs, preds, fake_cache, **out, ablation=path)
    md, html = out["out_md"].read_text(), out["out_html"].read_text()
    assert md_escape(hostile) in md and "Second \\| sentence." in md
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert 'href="http://example.com"' not in html and "<strong>bold</strong>" not in html
