"""DICOM person names, ages and search text as the PACS compares and shows them."""

import unicodedata


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
