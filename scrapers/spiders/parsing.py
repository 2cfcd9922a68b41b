"""Reading 1001tracklists.com pages: what kind of page it is, its setlist, its rows, its links.

Kept apart from the spider so that it can be benchmarked and tested on saved pages without a
crawl. Everything works on the lxml tree Scrapy already built (``response.selector.root``), with
precompiled XPath for the page and one walk per row, because a 100-row page must parse in a few
milliseconds.

The page is untrusted input: every value is whitespace-normalised and bounded, and anything that
does not look like the site's markup becomes a warning instead of an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree

from scrapers.identity import (
    artist_key,
    featured_from_title,
    fold_text,
    is_unknown_text,
    remixers_from_title,
    split_artist_credit,
)
from scrapers.statuses import CreditRole

SOURCE = "1001tracklists"
MAX_TEXT = 500  # longest artist, title or label kept; the site's own lines are far shorter
MAX_ROWS = 2000  # the site caps sets well below this; more means a broken or hostile page

_SPACES = re.compile(r"\s+")
# Re-serialised pages write "( Curbi Remix )": no space belongs just inside a bracket.
_BRACKET_INSIDE_SPACE = re.compile(r"(?<=[\(\[])\s+|\s+(?=[\)\]])")
# A production credit the site shows after a title, in its own element: "(Co-Prod. by X)".
_PRODUCTION_CREDIT = re.compile(
    r"\(\s*(co-?\s*)?prod(?:\.|uced)?\s+by\s+([^()]+?)\s*\)", re.IGNORECASE
)
# Classes that put a space before (spL), after (spR) or around (spLR) an element through CSS.
_SPACE_BEFORE = frozenset({"spL", "spLR"})
_SPACE_AFTER = frozenset({"spR", "spLR"})
_SPACED = _SPACE_BEFORE | _SPACE_AFTER
# A country tag after a name: "Nause (SE)". Microdata names may leave it out.
_COUNTRY_TAG = re.compile(r"\s*\([A-Z]{2}\)")
# The site cuts only long microdata names at the front; a shorter tail ("alok" of "malok") is
# as likely a decoy's different name.
MIN_CUT_NAME = 12
_SITE_ID = re.compile(r"^[0-9a-z]{3,16}$")  # the site's tracklist and track ids
_TRACKLIST_ID = re.compile(r"/tracklist/([0-9a-z]{3,16})/")
_TRACK_ID = re.compile(r"/track/([0-9a-z]{3,16})/")
_STATED_COUNT = (
    re.compile(r"\bwith (\d{1,4})\b[^,.\d]*?\btracks?\b", re.IGNORECASE),
    re.compile(r"\b(\d{1,4}) tracks?\b", re.IGNORECASE),
)
_ISO_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_CUE_TEXT = re.compile(r"^(?:(\d{1,2}):)?(\d{1,3}):(\d{2})$")
_SEARCH_PAGE = re.compile(r"\bpage:\s*(\d{1,4})")
_DJ_HREF = re.compile(r"^/(?:dj/[^/]+/index\.html|artist/[^/]+/tracklists\.html)$")


class PageKind(StrEnum):
    TRACKLIST = "tracklist"
    LISTING = "listing"
    INTERSTITIAL = "interstitial"  # "Please wait, you will be forwarded"
    IP_LIMIT = "ip_limit"  # "limited due to overuse"
    CAPTCHA = "captcha"
    NOT_FOUND = "not_found"  # "Sorry, that page does not exist"
    EMPTY = "empty"  # none of the above: no rows, no results
    NOT_HTML = "not_html"  # JSON, an image: no HTML document at all


# Pages the site serves instead of content when it throttles us; worth retrying later.
BLOCK_KINDS = frozenset({PageKind.INTERSTITIAL, PageKind.IP_LIMIT, PageKind.CAPTCHA})
CONTENT_KINDS = frozenset({PageKind.TRACKLIST, PageKind.LISTING})


def _xpath(expression: str) -> etree.XPath:
    return etree.XPath(expression)


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


# Candidate rows by substring (cheap for libxml2); ``_rows`` keeps those with the exact class.
_ROW_CANDIDATES = _xpath("//div[contains(@class, 'tlpItem')]")
_LISTING_ITEMS = _xpath(
    f"//div[{_has_class('bItm')} and {_has_class('oItm')} and @data-id]"
    f"//div[{_has_class('bTitle')}]//a[starts-with(@href, '/tracklist/')]/@href"
)
_BODY_TEXT = _xpath("//body//text()[not(ancestor::script) and not(ancestor::style)]")
_CAPTCHA_MARKUP = _xpath(
    "boolean(//input[@name='captcha' and not(@type='hidden')] | //img[@alt='Captcha']"
    f" | //*[{_has_class('cf-turnstile')}])"
)
_PLAYLIST = _xpath("//*[@itemscope][contains(@itemtype, 'MusicPlaylist')]")
_META_PROP = {
    name: _xpath(f"./meta[@itemprop='{name}']/@content")
    for name in ("name", "datePublished", "genre", "author")
}
_H1 = _xpath("//h1")
_H1_LINKS = _xpath(".//a[@href]")
_HEAD_META = {
    name: _xpath(f"/html/head/meta[@{attr}='{name}']/@content")
    for attr, name in (
        ("name", "description"),
        ("property", "og:description"),
        ("property", "og:url"),
    )
}
_CANONICAL = _xpath("/html/head/link[@rel='canonical']/@href")
_TITLE = _xpath("string(/html/head/title)")
_PAGINATION = _xpath(f"//ul[{_has_class('pagination')}]/li")
_SEARCH_QUERY = _xpath("//input[@name='main_search']/@value")


def text_of(node: Any) -> str:
    """Visible text of an element (or a string), whitespace collapsed, bounded."""
    if isinstance(node, str):
        raw = node
    else:
        raw = etree.tostring(node, method="text", encoding=str, with_tail=False)
    text = _SPACES.sub(" ", raw or "")
    if "(" in text or "[" in text:
        text = _BRACKET_INSIDE_SPACE.sub("", text)
    return text.strip()[:MAX_TEXT]


def _body_text(root: etree._Element) -> str:
    """The page's visible words (scripts left out: their code may say "captcha" anywhere)."""
    return _SPACES.sub(" ", " ".join(_BODY_TEXT(root))).lower()


def classify_page(root: etree._Element) -> PageKind:
    """Decide what a page is before reading it, so a block page never becomes data."""
    if _rows(root):
        return PageKind.TRACKLIST
    body = _body_text(root)
    if "limited due to overuse" in body:
        return PageKind.IP_LIMIT
    # The site spells it "forwared" in some captures.
    if "you will be forwarded" in body or "you will be forwared" in body:
        return PageKind.INTERSTITIAL
    if _LISTING_ITEMS(root):  # before the captcha test: result pages may embed a widget
        return PageKind.LISTING
    if _CAPTCHA_MARKUP(root) or "captcha" in body:
        return PageKind.CAPTCHA
    if "page does not exist" in body:
        return PageKind.NOT_FOUND
    return PageKind.EMPTY


@dataclass(slots=True)
class ParsedRow:
    """One ``div.tlpItem`` row: the ``TrackItem`` fields the page gives (the spider adds the
    setlist's), and two facts about the row that only the page-level pass uses."""

    row_index: int
    position: int | None
    played_with_previous: bool
    is_mashup: bool
    cue_seconds: int | None
    artist: str
    title: str
    artists: list[dict[str, str]]
    label: str | None
    site_track_id: str | None
    is_unknown: bool
    is_partial_id: bool
    mashup_parent_row: int | None = None
    metadata: dict[str, Any] | None = None  # {"credits": [...]} for a production credit
    decoy: bool = False  # the visible artist was a decoy: the microdata's name was kept
    mashup_part: bool = False  # a hidden part of the mashup row above it

    def item_fields(self) -> dict[str, Any]:
        """The row's ``TrackItem`` fields (``metadata`` only when there is some)."""
        values = {name: getattr(self, name) for name in _ITEM_FIELDS}
        if self.metadata is not None:
            values["metadata"] = self.metadata
        return values


# Every attribute but the two page-level facts, and metadata (left out when empty).
_ITEM_FIELDS = tuple(
    f.name for f in fields(ParsedRow) if f.name not in ("metadata", "decoy", "mashup_part")
)


@dataclass
class ParsedTracklist:
    setlist: dict[str, Any]
    rows: list[ParsedRow]
    warnings: list[str] = field(default_factory=list)
    decoy_rows: int = 0  # rows whose visible artist disagreed with their microdata
    dropped_rows: int = 0  # rows past MAX_ROWS, left out


@dataclass
class ParsedListing:
    tracklist_urls: list[str]
    next_page_url: str | None = None  # a plain link to the next page
    next_search_page: int | None = None  # the search form's next page number
    search_query: str | None = None


def tracklist_id_from_url(url: str) -> str | None:
    match = _TRACKLIST_ID.search(url or "")
    return match.group(1) if match else None


def stated_track_count(description: str | None) -> int | None:
    """The site's "with N tracks" from the page description (``numTracks`` is unreliable)."""
    for pattern in _STATED_COUNT:
        match = pattern.search(description or "")
        if match:
            return int(match.group(1))
    return None


def parse_listing(root: etree._Element, page_url: str) -> ParsedListing:
    """Tracklist links of a listing, search or DJ page, and where its next page is.

    A tracklist is known by its id: its link is kept without query string or fragment (a site
    that adds a fresh ``?r=`` to every answer must not make one tracklist many requests), and
    once per id.
    """
    seen: set[str] = set()
    urls = []
    for href in _LISTING_ITEMS(root):
        url = urlsplit(urljoin(page_url, href.strip()))._replace(query="", fragment="").geturl()
        key = tracklist_id_from_url(url) or url
        if key not in seen:
            seen.add(key)
            urls.append(url)
    listing = ParsedListing(tracklist_urls=urls)
    for item in _PAGINATION(root):
        if text_of(item).lower() != "next" or "disabled" in _classes(item):
            continue
        href = next(iter(item.xpath("./a/@href")), "").strip()
        if href and href != "#" and not href.startswith("javascript:"):
            listing.next_page_url = urljoin(page_url, href)
        else:
            page = _SEARCH_PAGE.search(item.get("onclick") or "")
            query = next(iter(_SEARCH_QUERY(root)), "").strip()
            if page and query:
                listing.next_search_page = int(page.group(1))
                listing.search_query = query[:MAX_TEXT]
    return listing


def parse_tracklist(root: etree._Element, page_url: str) -> ParsedTracklist:
    """One setlist and every ``div.tlpItem`` row of a tracklist page, in page order."""
    warnings: list[str] = []
    rows = _collect_rows(root)
    dropped = max(0, len(rows) - MAX_ROWS)
    if dropped:
        warnings.append(f"{len(rows)} rows is more than {MAX_ROWS}; kept the first {MAX_ROWS}")
        rows = rows[:MAX_ROWS]
    setlist = _parse_setlist(root, page_url, rows, warnings)
    parsed = ParsedTracklist(setlist=setlist, rows=[], warnings=warnings, dropped_rows=dropped)
    last_mashup_parent: int | None = None
    for index, parts in enumerate(rows):
        row = _parse_row(parts, index, warnings)
        if row is None:
            continue
        if row.decoy:
            parsed.decoy_rows += 1
        if row.is_mashup:
            last_mashup_parent = index
        if row.mashup_part:
            row.mashup_parent_row = last_mashup_parent
            if last_mashup_parent is None:
                warnings.append(f"row {index}: mashup part without a parent row before it")
        parsed.rows.append(row)
    stated = setlist["stated_track_count"]
    if stated is not None and stated != len(rows):
        warnings.append(
            f"page states {stated} tracks but has {len(rows)} rows (truncated or changed page?)"
        )
    return parsed


@dataclass
class _RowParts:
    """The nodes of one ``div.tlpItem`` that carry data."""

    element: etree._Element
    position: etree._Element | None = None
    cue_input: etree._Element | None = None
    cue_div: etree._Element | None = None
    track_value: etree._Element | None = None
    microdata: etree._Element | None = None
    extras: list[etree._Element] = field(default_factory=list)
    labels: list[etree._Element] = field(default_factory=list)
    remix_values: list[etree._Element] = field(default_factory=list)


def _classes(element: etree._Element) -> list[str]:
    return (element.get("class") or "").split()


def _rows(root: etree._Element) -> list[etree._Element]:
    return [row for row in _ROW_CANDIDATES(root) if "tlpItem" in _classes(row)]


# Subtrees of a row that never hold track data: player buttons, user badges, artwork, links.
_SKIPPED_TAGS = frozenset({"a", "i", "img", "meta", "script", "noscript", "br", "button"})
_SKIPPED_CLASSES = frozenset({"mediaRow", "wRow", "bBtns", "mBtn"})


def _collect_rows(root: etree._Element) -> list[_RowParts]:
    """Find each row's data nodes by walking its tree once, skipping subtrees of no interest.

    One walk per row in Python beats a dozen descendant XPath queries per row: libxml2 checks
    every attribute predicate on every node of the row for each query.
    """
    rows = []
    for row in _rows(root):
        parts = _RowParts(row)
        _walk(parts, row)
        rows.append(parts)
    return rows


def _walk(parts: _RowParts, element: etree._Element) -> None:
    for child in element.iterchildren(tag=etree.Element):
        tag = child.tag
        if tag in _SKIPPED_TAGS:
            continue
        classes = _classes(child)
        if tag == "input":
            if "_cue_seconds" in (child.get("id") or "") and parts.cue_input is None:
                parts.cue_input = child
        elif tag == "span":
            _visit_span(parts, child, classes)
        elif "cue" in classes and tag == "div":
            parts.cue_div = child if parts.cue_div is None else parts.cue_div
        elif not _SKIPPED_CLASSES.intersection(classes):
            if child.get("itemprop") == "tracks" and parts.microdata is None:
                parts.microdata = child
            _walk(parts, child)


def _visit_span(parts: _RowParts, span: etree._Element, classes: list[str]) -> None:
    if "trackValue" in classes:
        if parts.track_value is None:
            parts.track_value = span
            parts.remix_values = [
                inner for inner in span.iterdescendants("span") if "remixValue" in _classes(inner)
            ]
    elif "trackLabel" in classes:
        parts.labels.append(span)
    elif "trackEditData" in classes or "trackStatus" in classes:
        parts.extras.append(span)
    elif "_tracknumber_value" in (span.get("id") or ""):
        parts.position = span if parts.position is None else parts.position
    else:
        _walk(parts, span)


def _parse_setlist(
    root: etree._Element, page_url: str, rows: list[_RowParts], warnings: list[str]
) -> dict[str, Any]:
    canonical = next(iter(_CANONICAL(root) or _HEAD_META["og:url"](root)), "").strip()
    url = canonical if tracklist_id_from_url(canonical) else page_url
    playlist = _playlist_of(root, rows)
    if playlist is None:
        warnings.append("no MusicPlaylist microdata; set header read from the visible page")

    def prop(name: str) -> list[str]:
        if playlist is None:
            return []
        return [text for text in map(text_of, _META_PROP[name](playlist)) if text]

    playlist_id = (playlist.get("data-id") or "").strip() if playlist is not None else ""
    source_id = (
        tracklist_id_from_url(url)
        or tracklist_id_from_url(page_url)
        or (playlist_id if _SITE_ID.match(playlist_id) else None)
    )
    h1 = next(iter(_H1(root)), None)
    title = next(iter(prop("name")), None) or (text_of(h1) if h1 is not None else None)
    title = title or text_of(_TITLE(root)) or None
    djs, sources = _header_links(h1)
    description = next(
        iter(_HEAD_META["description"](root) + _HEAD_META["og:description"](root)), None
    )
    stated = stated_track_count(description)
    if stated is None:
        warnings.append("no 'with N tracks' in the page description")
    date = next((d for d in prop("datePublished") if _ISO_DATE.fullmatch(d)), None)
    if date is None:
        found = _ISO_DATE.findall(title or "")
        date = found[-1] if found else None
    return {
        "source": SOURCE,
        "source_id": source_id,
        "url": url,
        "title": title,
        "djs": djs or prop("author"),
        "event": ", ".join(sources) or None,
        "date": date,
        "genres": list(dict.fromkeys(prop("genre"))),
        "stated_track_count": stated,
    }


def _playlist_of(root: etree._Element, rows: list[_RowParts]) -> etree._Element | None:
    """The set's MusicPlaylist scope: the rows sit inside it, so look there first."""
    if rows:
        for ancestor in rows[0].element.iterancestors():
            if "MusicPlaylist" in (ancestor.get("itemtype") or ""):
                return ancestor
    return next(iter(_PLAYLIST(root)), None)


def _header_links(h1: etree._Element | None) -> tuple[list[str], list[str]]:
    djs: list[str] = []
    sources: list[str] = []
    if h1 is None:
        return djs, sources
    for link in _H1_LINKS(h1):
        href = link.get("href", "")
        name = text_of(link)
        if not name:
            continue
        if _DJ_HREF.match(href) and name not in djs:
            djs.append(name)
        elif href.startswith("/source/") and name not in sources:
            sources.append(name)
    return djs, sources


def _parse_row(parts: _RowParts, index: int, warnings: list[str]) -> ParsedRow | None:
    row = parts.element
    classes = _classes(row)
    is_part = "tlpSubTog" in classes
    if parts.track_value is None:
        warnings.append(f"row {index} ({row.get('id')}): no track text, row skipped")
        return None
    artist, title, production = _split_line(parts.track_value)
    if title is None:
        warnings.append(f"row {index} ({row.get('id')}): no ' - ' in {artist!r}, row skipped")
        return None

    meta = _microdata_values(parts.microdata)
    meta_name = meta.get("name")
    decoy = False
    unknown_artist, unknown_title = is_unknown_text(artist), is_unknown_text(title)
    if meta_name is None and not (unknown_artist and unknown_title):
        warnings.append(f"row {index} ({row.get('id')}): no track microdata, visible text used")
    elif meta_name is not None:
        artist, decoy = _trusted_artist(artist, title, meta_name)
        unknown_artist = is_unknown_text(artist)

    extras = [text for text in map(text_of, parts.extras) if text]
    shown_title = " ".join([title, *extras])[:MAX_TEXT]
    is_unknown = unknown_artist and unknown_title
    position_text = text_of(parts.position) if parts.position is not None else ""
    labels = "/".join(label for label in map(text_of, parts.labels) if label)[:MAX_TEXT]
    track_id = (row.get("data-trackid") or "").strip()
    if not _SITE_ID.match(track_id):
        match = _TRACK_ID.search(meta.get("url", ""))
        track_id = match.group(1) if match else ""
    return ParsedRow(
        row_index=index,
        position=int(position_text) if position_text.isdigit() else None,
        played_with_previous=not is_part and (position_text == "w/" or "con" in classes),
        is_mashup="subPosTog" in classes,
        cue_seconds=_cue_seconds(parts),
        artist=artist,
        title=shown_title,
        artists=[] if is_unknown else _credits(artist, shown_title, unknown_artist, parts),
        label=labels or None,
        site_track_id=track_id or None,
        is_unknown=is_unknown,
        is_partial_id=not is_unknown and (unknown_artist or unknown_title),
        metadata={"credits": production} if production else None,
        decoy=decoy,
        mashup_part=is_part,
    )


def _microdata_values(microdata: etree._Element | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if microdata is None:
        return values
    for meta in microdata.iterchildren("meta"):
        name, content = meta.get("itemprop"), text_of(meta.get("content") or "")
        if name and content and name not in values:
            values[name] = content
    return values


def _split_line(track_value: etree._Element) -> tuple[str, str | None, list[dict[str, str]]]:
    """Artist and title around the site's own " - " separator element, and production credits.

    A credit ("(Co-Prod. by X)") is not title text: the site's own text export leaves it out.
    """
    credits: list[dict[str, str]] = []
    before: list[str] = [track_value.text or ""]
    after: list[str] = []
    current = before
    for child in track_value.iterchildren():
        piece = _spaced_text(child, credits)
        if current is before and piece.strip() == "-":
            current = after
        else:
            current.append(piece)
        current.append(child.tail or "")
    if current is before:  # no separator element: fall back to the text's first " - "
        line = text_of("".join(before))
        artist, sep, title = line.partition(" - ")
        return (artist, title, credits) if sep else (line, None, credits)
    return text_of("".join(before)), text_of("".join(after)), credits


def _spaced_text(element: etree._Element, credits: list[dict[str, str]]) -> str:
    """An element's text as the page shows it: CSS-spaced classes get their space.

    An element whose whole text is a production credit is left out and added to ``credits``.
    """
    if not isinstance(element.tag, str):  # a comment or processing instruction
        return ""
    pieces = [element.text or ""]
    for child in element.iterchildren():
        pieces += [_spaced_text(child, credits), child.tail or ""]
    text = "".join(pieces)
    credit = _PRODUCTION_CREDIT.fullmatch(text.strip()) if "(" in text else None
    if credit:
        role = "co-producer" if credit.group(1) else "producer"
        credits.append({"name": text_of(credit.group(2)), "role": role})
        return " "
    class_names = element.get("class") or ""
    if "sp" in class_names and text.strip():
        classes = _SPACED.intersection(class_names.split())
        text = (" " if classes & _SPACE_BEFORE else "") + text
        text += " " if classes & _SPACE_AFTER else ""
    return text


def _trusted_artist(artist: str, title: str, meta_name: str) -> tuple[str, bool]:
    """The artist to keep, and whether the visible one was a decoy.

    Decoy pages randomise the visible artist but keep ``meta[itemprop=name]`` real, so when they
    disagree outright the microdata wins. Only the artist is replaced: the visible title carries
    remix and edit text the microdata may lack. A microdata name cut at the front or without a
    country tag still names the visible artist: the visible name is then the fuller one.
    """
    if _names_same(f"{artist} - {title}", meta_name, cut=False):
        return artist, False
    meta_artist, sep, _ = meta_name.partition(" - ")
    suffix = f" - {title}"
    if meta_name.endswith(suffix) and len(meta_name) > len(suffix):
        meta_artist = meta_name[: -len(suffix)]
    elif not sep:
        return artist, False
    if not fold_text(meta_artist) or _names_same(artist, meta_artist, cut=True):
        return artist, False  # same artist, the titles differ in version text
    return text_of(meta_artist), True


def _names_same(shown: str, named: str, *, cut: bool) -> bool:
    """Whether microdata ``named`` is ``shown`` or ``shown`` less a country tag, or (with
    ``cut``) a long enough tail of either: the site cut it at the front."""
    if shown == named:
        return bool(named)
    wanted = fold_text(named)
    if not wanted:
        return False
    variants = (shown, _COUNTRY_TAG.sub("", shown)) if "(" in shown else (shown,)
    for variant in map(fold_text, variants):
        if variant == wanted or (cut and len(wanted) >= MIN_CUT_NAME and variant.endswith(wanted)):
            return True
    return False


def _credits(
    artist: str, title: str, unknown_artist: bool, parts: _RowParts
) -> list[dict[str, str]]:
    """Primary and featured artists from the line; remixers as the site marks them up.

    The row names each remixer in a ``span.blueTxt`` before its ``span.remixValue``; only a
    row without that markup falls back to reading the title's version bracket.
    """
    credits = split_artist_credit("" if unknown_artist else artist)
    credits += [(name, CreditRole.FEATURED) for name in featured_from_title(title)]
    if parts.remix_values:
        credits += [(name, CreditRole.REMIXER) for name in _marked_up_remixers(parts.remix_values)]
    else:
        credits += [(name, CreditRole.REMIXER) for name in remixers_from_title(title)]
    seen: set[tuple[str, str]] = set()
    unique = []
    for name, role in credits:
        key = (artist_key(name), role)
        if key[0] and key not in seen and not is_unknown_text(name):
            seen.add(key)
            unique.append({"name": name, "role": role})
    return unique


def _marked_up_remixers(remix_values: list[etree._Element]) -> list[str]:
    names = []
    for remix in remix_values:
        group = [
            text_of(sibling)
            for sibling in remix.itersiblings("span", preceding=True)
            if "blueTxt" in _classes(sibling) and "remixValue" not in _classes(sibling)
        ]
        names += reversed(group)  # preceding siblings come nearest first
    return [name for name in names if name]


def _cue_seconds(parts: _RowParts) -> int | None:
    """Seconds into the set, or None when the row shows no cue (the hidden input is 0 then)."""
    shown = text_of(parts.cue_div) if parts.cue_div is not None else ""
    if not shown:
        return None
    hidden = (parts.cue_input.get("value") or "").strip() if parts.cue_input is not None else ""
    if hidden.isdigit() and int(hidden) > 0:
        return int(hidden)
    match = _CUE_TEXT.match(shown)
    if not match:
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds
