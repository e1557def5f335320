"""Build documents.jsonl from the Wikipedia test dump shipped inside gensim's wheel.

Source file (in the gensim wheel):
  gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2
(gensim 4.4.0 wheel on PyPI; a 2016 English Wikipedia export, MediaWiki 1.27, full article wikitext).

Only needed to regenerate documents.jsonl (which is committed). Requires
`mwparserfromhell` (pip) and the bz2 file, e.g.:

    pip download gensim==4.4.0 --no-deps -d /tmp/gs
    cd /tmp/gs && unzip -o gensim-*.whl 'gensim/test/test_data/enwiki-latest-*'
    python build_documents.py /tmp/gs/gensim/test/test_data/enwiki-latest-pages-articles1.xml-*-shortened.bz2

Wikipedia text is licensed CC BY-SA 3.0 (and GFDL); see README.md.
"""

from __future__ import annotations

import bz2
import contextlib
import html
import json
import re
import sys
from pathlib import Path

import mwparserfromhell as mwp

HERE = Path(__file__).resolve().parent

# Articles used (titles as in the dump) -- chosen as groups of *similar* entities
# (US states / Canadian province, countries, Apollo missions, people) so that a chunk
# that does not name its entity is genuinely ambiguous across documents.
TITLES = [
    "Alabama",
    "Alaska",
    "Alberta",
    "Afghanistan",
    "Albania",
    "Algeria",
    "Angola",
    "Azerbaijan",
    "Andorra",
    "Aruba",
    "Apollo 8",
    "Apollo 11",
    "Albert Einstein",
    "Abraham Lincoln",
    "Aristotle",
    "Arthur Schopenhauer",
    "Andre Agassi",
    "Ayn Rand",
    "Aldous Huxley",
    "Andrei Tarkovsky",
    "Albert Sidney Johnston",
    "Aardvark",
    "Aardwolf",
    "Amphibian",
]

# Documents are cut at a paragraph boundary once they exceed this many characters
# (keeps the whole evaluation affordable on a 2-core CPU while every document
# stays several times longer than the models' context windows).
MAX_CHARS = 16000

STOP_SECTIONS = {
    "see also",
    "references",
    "notes",
    "footnotes",
    "external links",
    "further reading",
    "bibliography",
    "sources",
    "citations",
    "notes and references",
    "works cited",
    "references and notes",
    "gallery",
    "selected works",
    "works",
    "filmography",
    "bibliography and further reading",
    "primary sources",
    "secondary sources",
}


def read_pages(path: str) -> dict[str, str]:
    with bz2.open(path, "rt", encoding="utf-8") as f:
        raw = f.read()
    pages = {}
    for p in re.findall(r"<page>(.*?)</page>", raw, re.S):
        title = html.unescape(re.search(r"<title>(.*?)</title>", p).group(1))
        m = re.search(r"<text[^>]*>(.*?)</text>", p, re.S)
        rev = re.search(r"<revision>\s*<id>(\d+)</id>", p)
        ts = re.search(r"<timestamp>(.*?)</timestamp>", p)
        if m:
            pages[title] = (html.unescape(m.group(1)), rev.group(1) if rev else None, ts.group(1) if ts else None)
    return pages


_INLINE_SYMBOLS = {
    "ndash": "–",
    "mdash": "—",
    "snd": " – ",
    "spaced ndash": " – ",
    "nbsp": " ",
    "'": "'",
    "okina": "ʻ",
    "-": "",
    "•": " • ",
    "dot": " · ",
    "·": " · ",
}
_FIRST_ARG = {
    "nowrap",
    "nobr",
    "small",
    "smaller",
    "big",
    "abbr",
    "nowiki",
    "sc",
    "smallcaps",
    "em",
    "strong",
    "as written",
    "not a typo",
    "sic",
    "transl",
    "uss",
    "hms",
    "ship",
    "w",
    "nihongo",
    "linktext",
}


def render_template(tpl) -> str:
    """Render the few inline templates whose text belongs to the sentence (units, dates, language tags);
    every other template (infoboxes, citations, pronunciation, navigation) is dropped."""
    name = str(tpl.name).strip().lower()
    pos = [str(p.value).strip() for p in tpl.params if not p.showkey]
    if name in _INLINE_SYMBOLS:
        return _INLINE_SYMBOLS[name]
    if name in ("convert", "cvt") and pos:
        if len(pos) >= 4 and pos[1] in ("to", "-", "–", "and", "or", "x", "by", "+/-"):
            return f"{pos[0]} {pos[1]} {pos[2]} {pos[3]}"
        return f"{pos[0]} {pos[1]}" if len(pos) >= 2 else pos[0]
    if name == "lang" and len(pos) >= 2:
        return pos[1]
    if name in _FIRST_ARG and pos:
        return pos[0]
    if name in ("c.", "circa", "ca"):
        return "c. " + pos[0] if pos else "c."
    if name in ("frac", "fraction") and pos:
        return "/".join(pos)
    if name in ("us$", "usd") and pos:
        return "US$" + pos[0]
    if name in ("bc", "bce") and pos:
        return pos[0] + " BC"
    if name == "as of" and pos:
        return "As of " + " ".join(pos[:3])
    if (
        name
        in (
            "start date",
            "birth date",
            "death date",
            "date",
            "start date and age",
            "birth date and age",
            "death date and age",
        )
        and pos
    ):
        months = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ]
        try:
            y, m, d = [*pos, "", ""][:3]
            return f"{months[int(m) - 1]} {int(d)}, {y}" if d else (f"{months[int(m) - 1]} {y}" if m else y)
        except (ValueError, IndexError):
            return ""
    return ""


def clean(wikitext: str) -> str:
    # drop comments, refs, galleries, math and tables before parsing
    t = re.sub(r"<!--.*?-->", "", wikitext, flags=re.S)
    t = re.sub(r"<ref[^>/]*/>", "", t)
    t = re.sub(r"<ref[^>]*>.*?</ref>", "", t, flags=re.S)
    t = re.sub(
        r"<(gallery|math|timeline|imagemap|score|syntaxhighlight|source)[^>]*>.*?</\1>", "", t, flags=re.S | re.I
    )
    code = mwp.parse(t)
    for tpl in code.filter_templates(recursive=False):
        rendered = render_template(tpl)
        with contextlib.suppress(ValueError):
            if rendered:
                code.replace(tpl, rendered)
            else:
                code.remove(tpl)
    for tag in code.filter_tags(recursive=False):
        if str(tag.tag).lower() in {"table", "ref", "gallery", "div", "blockquote_"}:
            with contextlib.suppress(ValueError):
                code.remove(tag)
    for link in code.filter_wikilinks():
        title = str(link.title).strip().lower()
        if title.startswith(("file:", "image:", "category:", "media:")) or re.match(r"^[a-z\-]{2,12}:", title):
            with contextlib.suppress(ValueError):
                code.remove(link)
    # wiki tables {| ... |}
    s = str(code)
    while True:
        s2 = re.sub(r"\{\|(?:(?!\{\|).)*?\|\}", "", s, flags=re.S)
        if s2 == s:
            break
        s = s2
    code = mwp.parse(s)
    text = code.strip_code(normalize=True, collapse=True, keep_template_params=False)
    # headings: strip_code drops the '=' markup and keeps the title on its own line
    lines = []
    for line in text.split("\n"):
        line = line.replace("\u200e", "").replace("\u200f", "").strip()
        line = re.sub(r"\(\s*[;,]?\s*\)", "", line)  # empty parens left by removed templates
        line = re.sub(r"\(\s*[;,]\s*", "(", line)
        line = re.sub(r"\s+", " ", line).strip()
        line = re.sub(r"\s+([,.;:])", r"\1", line)
        line = line.replace("''", "")
        line = re.sub(r"^[*#:;]+\s*", "", line)  # list markup
        if line.lower().startswith(("thumb|", "left|", "right|")):
            continue
        lines.append(line)
    return "\n".join(lines)


def split_sections(wikitext: str):
    """Yield (heading or None, body) at level-2 headings."""
    parts = re.split(r"^(==[^=].*?==)\s*$", wikitext, flags=re.M)
    yield None, parts[0]
    for i in range(1, len(parts), 2):
        yield parts[i].strip("= \t"), parts[i + 1]


def build(path: str):
    pages = read_pages(path)
    docs = []
    for title in TITLES:
        wt, rev_id, rev_ts = pages[title]
        pieces = []
        for heading, body in split_sections(wt):
            if heading is not None and heading.strip().lower() in STOP_SECTIONS:
                continue
            body_txt = clean(body)
            # subsection headings (=== x ===) become plain lines via strip_code
            body_txt = re.sub(r"\n{3,}", "\n\n", body_txt).strip()
            if not body_txt:
                continue
            pieces.append((heading + "\n\n" if heading else "") + body_txt)
        text = "\n\n".join(pieces)
        truncated = len(text) > MAX_CHARS
        if truncated:
            # cut at the last paragraph boundary before MAX_CHARS
            text = text[: text.rindex("\n\n", 0, MAX_CHARS)].rstrip()
        cut = f", cut at a paragraph boundary after ~{MAX_CHARS} characters" if truncated else ""
        docs.append(
            {
                "id": re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_"),
                "title": title,
                "text": text,
                "source": f"English Wikipedia article '{title}', revision {rev_id} of {rev_ts} "
                f"(https://en.wikipedia.org/w/index.php?oldid={rev_id}), as shipped in the gensim 4.4.0 wheel's "
                "test data enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2; "
                f"wikitext converted to plain text{cut}; licence CC BY-SA 3.0 (Wikipedia contributors)",
            }
        )
    return docs


if __name__ == "__main__":
    docs = build(sys.argv[1])
    out = HERE / "documents.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    for d in docs:
        print(f"{d['id']:25s} {len(d['text']):7d} chars")
    print("total chars", sum(len(d["text"]) for d in docs))
