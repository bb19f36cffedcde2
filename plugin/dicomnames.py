"""DICOM person names, ages and search text as the PACS compares and shows them."""

import unicodedata

from pydicom.valuerep import PersonName


def pn_key(value):
    """Family and given name, upper-case, of the first (alphabetic) group.

    ``Smith^John^^Dr.`` and ``SMITH^JOHN`` both give ``SMITH^JOHN``: a
    referring physician matches an account whatever prefix, suffix or
    ideographic/phonetic groups a modality adds. Empty for an empty name.
    """
    alphabetic = (value or "").split("=", 1)[0]
    parts = [p.strip().upper() for p in alphabetic.split("^")]
    family = parts[0] if parts else ""
    given = parts[1] if len(parts) > 1 else ""
    if not family and not given:
        return ""
    return f"{family}^{given}" if given else family


def search_text(*values):
    """Text folded for search: no accents, case-folded, PN separators as spaces.

    ``Müller^Anna=ミュラー`` gives ``muller anna ミュラー``: a search for
    "muller" or "MÜLL" finds it.
    """
    joined = " ".join(v for v in values if v)
    decomposed = unicodedata.normalize("NFKD", joined)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().replace("^", " ").replace("=", " ").split())


def age_at(birth_date, on_date):
    """Age in whole years on a date (None if either is unknown or absurd)."""
    if birth_date is None or on_date is None or birth_date > on_date:
        return None
    years = on_date.year - birth_date.year - ((on_date.month, on_date.day) < (birth_date.month, birth_date.day))
    return years if years < 150 else None


def display_name(value):
    """A DICOM PN as every page, list and PDF shows it: the family name in capitals,
    then the given and middle names; a prefix before, a suffix after; ideographic
    and phonetic groups in brackets. ``Yamada^Taro=山田^太郎`` -> ``YAMADA, Taro (山田 太郎)``,
    ``Smith^John^A^Dr.^Jr.`` -> ``Dr. SMITH, John A, Jr.``; "" for an empty name."""
    name = PersonName(value or "")
    groups = [group for group in name.components if group.strip("^ ")]
    if not groups:
        return ""
    readable = _alphabetic(name) if name.components[0].strip("^ ") else _plain(groups[0])
    others = [_plain(group) for group in groups[1:]]
    return readable + (f" ({' / '.join(others)})" if others else "")


def _alphabetic(name):
    family = name.family_name.strip().upper()
    given = " ".join(p.strip() for p in (name.given_name, name.middle_name) if p.strip())
    text = f"{family}, {given}" if family and given else family or given
    prefix, suffix = name.name_prefix.strip(), name.name_suffix.strip()
    return " ".join(p for p in (prefix, text) if p) + (f", {suffix}" if suffix else "")


def _plain(group):
    return " ".join(part.strip() for part in group.split("^") if part.strip())


def name_parts(value):
    """(family, given) of a PN for a form's two fields: the given field holds the
    given and middle names. See ``pn_from_parts``."""
    name = PersonName(value or "")
    given = " ".join(p.strip() for p in (name.given_name, name.middle_name) if p.strip())
    return name.family_name.strip(), given


def pn_from_parts(family, given):
    """The PN of a form's family and given name fields ("Doe", "Jane" -> "Doe^Jane").
    A caret or "=" typed in a field would change the name's structure: they become spaces."""

    def clean(text):
        return " ".join((text or "").replace("^", " ").replace("=", " ").split())

    family, given = clean(family), clean(given)
    return f"{family}^{given}" if given else family


def pn_from_text(text):
    """A name typed in one field as a PN: "SMITH^JOHN" stays as it is; "Smith, John"
    (family name, comma, given names) becomes "Smith^John"; "Smith" is a family name."""
    text = (text or "").strip()
    if "^" in text or "=" in text or "," not in text:
        return text
    family, _, given = text.partition(",")
    return pn_from_parts(family, given)
