"""The report as a PDF (fpdf2): institution header, patient and study block,
sections, signature, addenda, page numbers, and a PRELIMINARY watermark on
drafts. Text is laid out as plain text (markup in a report prints as typed);
DejaVu Sans with Droid Sans Fallback covers Latin, Greek, Cyrillic and CJK."""

import functools
import re
import unicodedata
from pathlib import Path

from fontTools import ttLib
from fpdf import FPDF

from plugin.dicomnames import display_name, name_parts

FONT_DIR = Path("/usr/share/fonts/truetype")
FONTS = {"": FONT_DIR / "dejavu" / "DejaVuSans.ttf", "B": FONT_DIR / "dejavu" / "DejaVuSans-Bold.ttf"}
FALLBACK = FONT_DIR / "droid" / "DroidSansFallbackFull.ttf"
SECTION_TITLES = (
    ("clinical_information", "Clinical information"),
    ("technique", "Technique"),
    ("comparison", "Comparison"),
    ("findings", "Findings"),
    ("impression", "Impression"),
)


def file_name(view, clock):
    """A name to file the report under: patient, date, accession, e.g.
    ``MULLER_Anna_2026-12-04_ACC-200_report.pdf``. ASCII letters, digits, "-" and "_"
    only (accents dropped; a name with no Latin letters gives way to the patient ID),
    so every browser and file system keeps it as it is. The date is the study's; a
    study without one takes the signature's date, else today (the clinic's dates)."""
    study = view["study"]
    family, given = name_parts(study.get("patient_name") or "")
    who = "_".join(part for part in (_safe(family).upper(), _safe(given)) if part) or _safe(study.get("patient_id"))
    signed = view.get("signed_at")
    when = study.get("study_date") or (clock.local(signed) if signed else clock.now()).date().isoformat()
    parts = [who[:60], _safe(when), _safe(study.get("accession_number"))[:32], "report"]
    return "_".join(part for part in parts if part) + ".pdf"


def _safe(text):
    """``text`` in file-name-safe ASCII: accents dropped, anything else a "-"."""
    plain = unicodedata.normalize("NFKD", str(text or "")).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9_-]+", "-", plain.replace(" ", "-"))).strip("-_")


@functools.lru_cache(maxsize=1)
def _dejavu_characters():
    return frozenset(ttLib.TTFont(str(FONTS[""])).getBestCmap())


def needs_fallback(texts):
    """Whether some character is missing from DejaVu (CJK names, say).

    Loading the 4 MB fallback font costs ~0.2 s per document: only when needed.
    """
    covered = _dejavu_characters()
    return any(ord(c) not in covered for text in texts for c in text if not c.isspace())


class _Document(FPDF):
    def __init__(self, institution, logo, watermark, fallback):
        super().__init__(format="A4")
        self._institution = institution
        self._logo = logo
        self._watermark = watermark
        for style, path in FONTS.items():
            self.add_font("DejaVu", style, str(path))
        if fallback:
            self.add_font("Fallback", "", str(FALLBACK))
            self.set_fallback_fonts(["Fallback"])
        self.set_auto_page_break(True, margin=20)
        self.alias_nb_pages()

    def header(self):
        if self._watermark:
            with self.local_context(text_color=(225, 225, 225)):
                self.set_font("DejaVu", "B", 64)
                with self.rotation(45, x=self.w / 2, y=self.h / 2):
                    self.text(self.w / 2 - 95, self.h / 2, self._watermark)
        if self._logo:
            self.image(str(self._logo), x=self.l_margin, y=8, h=14)
        self.set_font("DejaVu", "B", 14)
        self.set_xy(self.l_margin + (40 if self._logo else 0), 10)
        self.cell(0, 8, self._institution, align="L")
        self.ln(14)

    def footer(self):
        self.set_y(-14)
        self.set_font("DejaVu", "", 8)
        self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")


def render(view, institution, logo, clock):
    """PDF bytes of a report view (see plugin/reports/service.py: ``view``); its times
    in the clinic's zone (``clock``: plugin/clock.Clock), naming it."""
    watermark = "PRELIMINARY" if view["status"] == "draft" else ""
    logo = logo if logo and Path(logo).is_file() else None
    institution = institution or "Radiology report"
    pdf = _Document(institution, logo, watermark, needs_fallback(_texts(view, institution)))
    pdf.add_page()
    _demographics(pdf, view)
    for key, title in SECTION_TITLES:
        if view["sections"].get(key, "").strip():
            _section(pdf, title, view["sections"][key])
    _signature(pdf, view, clock)
    for addendum in view["addenda"]:
        signed = clock.text(addendum["signed_at"])
        _section(pdf, f"Addendum — {addendum['author_name']}, {signed}", addendum["text"])
    return bytes(pdf.output())


def _texts(view, institution):
    study = view["study"]
    yield institution
    yield from (str(study[key] or "") for key in ("patient_name", "referring_physician", "description"))
    yield from view["sections"].values()
    for addendum in view["addenda"]:
        yield addendum["text"]
        yield addendum["author_name"]
    yield view["signer_name"]


def _demographics(pdf, view):
    study = view["study"]
    rows = [
        ("Patient", display_name(study["patient_name"])),
        ("Patient ID", study["patient_id"]),
        ("Birth date / sex", f"{study['patient_birth_date'] or ''}  {study['patient_sex'] or ''}".strip()),
        ("Accession", study["accession_number"]),
        ("Study", f"{study['study_date'] or ''}  {study['description']}".strip()),
        ("Modality", " ".join(study["modalities"])),
        ("Referring physician", display_name(study["referring_physician"])),
    ]
    pdf.set_font("DejaVu", "", 10)
    for label, value in rows:
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(45, 6, label)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(0, 6, value or "-", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _section(pdf, title, text):
    pdf.set_font("DejaVu", "B", 11)
    pdf.multi_cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    pdf.multi_cell(0, 5.5, text.strip(), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _signature(pdf, view, clock):
    pdf.ln(2)
    pdf.set_font("DejaVu", "B", 10)
    if view["status"] == "draft":
        pdf.multi_cell(0, 6, "Preliminary report — not signed.", new_x="LMARGIN", new_y="NEXT")
    else:
        signed = clock.text(view["signed_at"])
        pdf.multi_cell(
            0, 6, f"Electronically signed by {view['signer_name']} on {signed}", new_x="LMARGIN", new_y="NEXT"
        )
    pdf.ln(3)
