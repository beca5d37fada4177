"""Markdown -> HTML for our own content, with special link schemes resolved and headings collected.

Rendering happens at load time (see topics/loader.py); page views only read the stored HTML.
Our content is trusted and not sanitized; user-supplied text never goes through here.
"""

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import markdown
from django.utils.html import strip_tags
from markdown.extensions import Extension
from markdown.postprocessors import Postprocessor
from markdown.treeprocessors import Treeprocessor

# Links like [text](lab:spike), [text](section:tradeoffs#cost), [text](question:traffic-spikes).
SPECIAL_SCHEMES = ("lab", "section", "question")
SPECIAL_HREF = re.compile(r"^(?P<scheme>lab|section|question):(?P<target>.*)$")


class LinkError(ValueError):
    """A special link whose target does not exist; carries the href so the loader can find its line."""

    def __init__(self, href: str, message: str):
        super().__init__(message)
        self.href = href


@dataclass(frozen=True)
class ResolvedLink:
    url: str
    css_class: str = ""


# resolve(scheme, target) -> ResolvedLink, or raises LinkError.
LinkResolver = Callable[[str, str], ResolvedLink]


@dataclass
class Rendered:
    html: str
    toc: list[dict] = field(default_factory=list)  # [{"id", "title", "level"}], document order
    text: str = ""  # plain text, for search
    links: list[str] = field(default_factory=list)  # special hrefs seen, in order
    # [{"id", "heading", "text", "kind", "strong"?, "links"?}]: the passages search lands on. kind is "p", "li",
    # "row", "quote", "dl", "link" (a paragraph that is only a link: a signpost) or "figure"; strong and links
    # hold the text of the block's bold phrases and of its links, in order.
    blocks: list[dict] = field(default_factory=list)


class _SpecialLinks(Treeprocessor):
    def __init__(self, md, resolve: LinkResolver | None, errors: list[LinkError], seen: list[str]):
        super().__init__(md)
        self.resolve = resolve
        self.errors = errors
        self.seen = seen

    def run(self, root: Element) -> None:
        for anchor in root.iter("a"):
            href = anchor.get("href", "")
            match = SPECIAL_HREF.match(href)
            if not match:
                continue
            self.seen.append(href)
            if self.resolve is None:
                continue
            try:
                resolved = self.resolve(match["scheme"], match["target"])
            except LinkError as error:
                self.errors.append(error)
                continue
            anchor.set("href", resolved.url)
            if resolved.css_class:
                classes = [*anchor.get("class", "").split(), resolved.css_class]
                anchor.set("class", " ".join(dict.fromkeys(classes)))


# Block ids are "<heading id>--<n>": Markdown's slugify collapses runs of "-", so a heading id never holds
# "--" and a block id can never clash with one. Blocks before the first heading count under "top".
BLOCK_TAGS = {"p": "p", "blockquote": "quote", "dl": "dl"}
LIST_TAGS = {"ul", "ol"}
_PLACEHOLDER = re.compile("\x02[^\x03]*\x03")
_STASHED = re.compile("\x02wzxhzdk:(\\d+)\x03")
# A diagram is raw HTML (<figure id=...><svg><title>…<desc>…</svg><figcaption>…): its title, description and
# caption say in words what the picture teaches, so the figure is a block of its own, landed on by its id.
_FIGURE = re.compile(r"\A\s*<figure\b[^>]*?\sid=\"(?P<id>[^\"]+)\"[^>]*>(?P<body>.*)</figure>\s*\Z", re.DOTALL)
_FIGURE_TEXT = re.compile(r"<(title|desc|figcaption)\b[^>]*>(.*?)</\1>", re.DOTALL)
_SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)


def _plain(element: Element) -> str:
    if element.tag == "tr":  # cells side by side, not run together
        return " · ".join(filter(None, (_plain(cell) for cell in element)))
    text = "".join(element.itertext()).replace("\x02amp\x03", "&")
    return re.sub(r"\s+", " ", _PLACEHOLDER.sub(" ", text)).strip()


def _only_a_link(element: Element) -> bool:
    """A paragraph that is one link and nothing else ("Try it in the Lab: ..."): it points at a passage."""
    children = list(element)
    return (
        len(children) == 1
        and children[0].tag == "a"
        and not (element.text or "").strip()
        and not (children[0].tail or "").strip()
    )


def _figure_block(stashed: str) -> tuple[str, str] | None:
    """(id, text) of a raw-HTML figure: its title, description and caption, in that order."""
    match = _FIGURE.match(stashed)
    if not match:
        return None
    parts = [html_to_text(part) for _tag, part in _FIGURE_TEXT.findall(match["body"])]
    text = " ".join(part for part in parts if part)
    return (match["id"], text) if text else None


class _BlockIds(Treeprocessor):
    """Give every top-level paragraph, list item, quote and table row a stable id, so search can link to it."""

    def __init__(self, md, blocks: list[dict]):
        super().__init__(md)
        self.blocks = blocks

    def run(self, root: Element) -> None:
        heading, count = "top", 0

        def add(element: Element, kind: str) -> None:
            nonlocal count
            text = _plain(element)
            if not text or element.get("id"):
                return
            count += 1
            element.set("id", f"{heading}--{count}")
            block = {"id": element.get("id"), "heading": heading, "text": text, "kind": kind}
            for key, tag in (("strong", "strong"), ("links", "a")):  # bold: a definition; link text: a pointer
                phrases = [phrase for inner in element.iter(tag) if (phrase := _plain(inner))]
                if phrases:
                    block[key] = phrases
            self.blocks.append(block)

        for element in root:
            if re.fullmatch(r"h[1-6]", element.tag) and element.get("id"):
                heading, count = element.get("id"), 0
            elif element.tag == "p" and _PLACEHOLDER.fullmatch((element.text or "").strip()) and not len(element):
                # A stashed code block or raw HTML: the postprocessor swaps the whole <p> for it. A figure among
                # them keeps its own id (no count, so the ids of the paragraphs after it do not move).
                stash = _STASHED.fullmatch((element.text or "").strip())
                raw = self.md.htmlStash.rawHtmlBlocks[int(stash[1])] if stash else None
                figure = _figure_block(raw) if isinstance(raw, str) else None
                if figure:
                    self.blocks.append({"id": figure[0], "heading": heading, "text": figure[1], "kind": "figure"})
            elif element.tag in BLOCK_TAGS:
                add(element, "link" if element.tag == "p" and _only_a_link(element) else BLOCK_TAGS[element.tag])
            elif element.tag in LIST_TAGS:
                for item in element.findall("li"):
                    add(item, "li")
            elif element.tag == "table":
                for row in element.iter("tr"):  # a row is a passage of its own ("Saturation | how close ...")
                    if row.find("td") is not None:
                        add(row, "row")


class _BlockIdsExtension(Extension):
    def __init__(self, blocks: list[dict]):
        super().__init__()
        self.blocks = blocks

    def extendMarkdown(self, md) -> None:
        md.treeprocessors.register(_BlockIds(md, self.blocks), "block_ids", 3)  # after toc (5) set heading ids


class _SpecialLinksExtension(Extension):
    def __init__(self, resolve: LinkResolver | None, errors: list[LinkError], seen: list[str]):
        super().__init__()
        self.resolve, self.errors, self.seen = resolve, errors, seen

    def extendMarkdown(self, md) -> None:
        md.treeprocessors.register(_SpecialLinks(md, self.resolve, self.errors, self.seen), "special_links", 1)


# Code blocks (Pygments via codehilite) and tables do not wrap: they keep their indentation and whole words
# and scroll sideways instead. A scroller must be reachable by keyboard (WCAG 2.1.1, axe rule
# scrollable-region-focusable), so each becomes a focusable, named region. Each region's name says where it
# is (the nearest heading before it) so that two regions on a page are told apart (axe landmark-unique).
_SCROLLERS = re.compile(
    r'<h(?P<level>[1-6])\b[^>]*>(?P<heading>.*?)</h(?P=level)>|(?P<code><div class="highlight">)|(?P<table><table\b[^>]*>)|(?P<end></table>)',
    re.DOTALL,
)


class _ScrollRegions(Postprocessor):
    """Make each code block a focusable region and wrap each table in one (runs after raw HTML is restored)."""

    def run(self, text: str) -> str:
        heading = ""
        used: dict[str, int] = {}

        def name(kind: str) -> str:
            label = f"{kind}: {heading}" if heading else kind
            used[label] = used.get(label, 0) + 1
            return label if used[label] == 1 else f"{label} ({used[label]})"

        def replace(match: re.Match) -> str:
            nonlocal heading
            if match["heading"] is not None:
                heading = html_to_text(match["heading"])
                return match[0]
            if match["code"]:
                label = html.escape(name("Code example"))
                return f'<div class="highlight" role="region" aria-label="{label}" tabindex="0">'
            if match["table"]:
                label = html.escape(name("Table"))
                return f'<div class="table-scroll" role="region" aria-label="{label}" tabindex="0">{match["table"]}'
            return "</table></div>"

        return _SCROLLERS.sub(replace, text)


class _ScrollRegionsExtension(Extension):
    def extendMarkdown(self, md) -> None:
        md.postprocessors.register(_ScrollRegions(md), "scroll_regions", 5)  # after raw_html (30)


def _flatten(tokens: list[dict]) -> list[dict]:
    flat: list[dict] = []
    for token in tokens:
        flat.append({"id": token["id"], "title": html.unescape(token["name"]), "level": token["level"]})
        flat.extend(_flatten(token["children"]))
    return flat


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, whitespace collapsed (used for search and snippets)."""
    return re.sub(r"\s+", " ", html.unescape(strip_tags(fragment))).strip()


def render_markdown(source: str, *, resolve: LinkResolver | None = None) -> Rendered:
    """Render Markdown; raise the first LinkError after collecting all (the caller reports them all)."""
    errors: list[LinkError] = []
    seen: list[str] = []
    blocks: list[dict] = []
    md = markdown.Markdown(
        extensions=[
            "fenced_code",
            "codehilite",
            "tables",
            "toc",
            "sane_lists",
            _SpecialLinksExtension(resolve, errors, seen),
            _ScrollRegionsExtension(),
            _BlockIdsExtension(blocks),
        ],
        extension_configs={
            "codehilite": {"css_class": "highlight", "guess_lang": False},
            "toc": {"permalink": False},
        },
        output_format="html",
    )
    body = md.convert(source)
    if errors:
        raise LinkErrors(errors)
    # Reading text leaves out a diagram's drawing (its axis labels and the description a screen reader hears
    # instead of seeing it); its visible caption stays.
    text = html_to_text(_SVG.sub(" ", body))
    return Rendered(html=body, toc=_flatten(md.toc_tokens), text=text, links=seen, blocks=blocks)


class LinkErrors(ValueError):
    def __init__(self, errors: list[LinkError]):
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors
