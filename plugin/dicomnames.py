"""DICOM person names (PN) as the PACS compares them."""


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
