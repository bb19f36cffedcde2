"""Which language a request gets, and its gettext catalogue.

Catalogues are GNU gettext files ``locale/<language>/LC_MESSAGES/pacs.mo``
(domain ``pacs``); ``babel.cfg`` says how to extract and compile them. Source
strings are English, so English needs no catalogue and is the fallback.
"""

import gettext
import logging
from pathlib import Path

from .headers import quality

LOGGER = logging.getLogger(__name__)

DOMAIN = "pacs"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DEFAULT_LANGUAGE = "en"


class Catalogues:
    """The languages found in a locale folder, each with its translations
    (loaded once: they never change while the plugin runs)."""

    def __init__(self, locale_dir=LOCALE_DIR):
        self.locale_dir = Path(locale_dir)
        self._translations = {language: self._load(language) for language in self._available()}
        LOGGER.debug("event=webui_languages languages=%s", ",".join(sorted(self._translations)))

    @property
    def languages(self):
        return sorted(self._translations)

    def translations(self, language):
        return self._translations.get(language, self._translations[DEFAULT_LANGUAGE])

    def negotiate(self, accept_language):
        """The best available language for an Accept-Language header value,
        e.g. "de-CH, de;q=0.9, en;q=0.5" -> "de" when only "de" exists."""
        by_lower = {language.lower(): language for language in self._translations}
        for tag in _preferred_tags(accept_language):
            primary = tag.split("_", 1)[0]
            match = (
                by_lower.get(tag)
                or by_lower.get(primary)
                or next((name for lower, name in sorted(by_lower.items()) if lower.startswith(primary + "_")), None)
            )
            if match:
                return match
        return DEFAULT_LANGUAGE

    def _available(self):
        found = {DEFAULT_LANGUAGE}
        if self.locale_dir.is_dir():
            found.update(mo.parent.parent.name for mo in self.locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
        return found

    def _load(self, language):
        return gettext.translation(DOMAIN, localedir=str(self.locale_dir), languages=[language], fallback=True)


def html_lang(language):
    """The BCP 47 tag for a catalogue name: "pt_BR" -> "pt-BR"."""
    return language.replace("_", "-")


def _preferred_tags(accept_language):
    """Language tags of an Accept-Language value, most wanted first, lower
    case with "_" ("pt-BR;q=0.8" -> "pt_br"); "*" and q=0 are dropped."""
    weighted = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.partition(";")
        tag = tag.strip().lower().replace("-", "_")
        weight = quality(params)
        if tag and tag != "*" and weight > 0:
            weighted.append((-weight, position, tag))
    return [tag for _, _, tag in sorted(weighted)]
