"""Build test documents in code (no third-party files are committed)."""

from __future__ import annotations

import io
import textwrap


def pdf_bytes(*pages: str) -> bytes:
    """A PDF with a real text layer, one page per argument."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for page in pages:
        y = 800
        for paragraph in page.split("\n"):
            for line in textwrap.wrap(paragraph, 90) or [""]:
                pdf.drawString(40, y, line)
                y -= 14
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None, header: str = "") -> bytes:
    import docx

    document = docx.Document()
    if header:
        document.sections[0].header.paragraphs[0].text = header
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


CLINICAL = (
    "Discharge summary. The patient was admitted to the cardiology ward with acute chest pain. "
    "ECG showed ST elevation and troponin was raised. She underwent primary PCI with a stent to the "
    "LAD. Medication on discharge: aspirin 75 mg, ticagrelor 90 mg twice daily, atorvastatin 80 mg. "
    "Follow-up in the cardiology clinic in six weeks; the GP should review blood pressure."
)
FINANCE = (
    "Quarterly results. Revenue rose 12% year on year to $4.2 billion and operating margin expanded "
    "to 18%. Net interest income grew as the loan book expanded, while the bank's capital ratio "
    "stayed at 13.5%. The board declared a dividend of 40 cents per share and raised full-year "
    "guidance for earnings per share. Analysts expect the stock to re-rate."
)
LEGAL = (
    "IN THE HIGH COURT OF JUSTICE. Judgment. The claimant alleges breach of contract and seeks "
    "damages. The defendant denies liability and contends the limitation clause excludes the claim. "
    "Having considered the witness statements and counsel's submissions, the court finds the clause "
    "unenforceable under the statute and enters judgment for the claimant with costs."
)
EDUCATION = (
    "Course syllabus, BIO 101, Fall semester. Students attend two lectures and one lab each week. "
    "Grading: midterm exam 30%, final exam 40%, lab reports 20%, participation 10%. Office hours are "
    "Tuesdays. Assignments submitted late lose 10% per day. The course teaches students the basics "
    "of cell biology and prepares them for the second-year curriculum."
)
TECHNOLOGY = (
    "Release notes v2.4.0. The REST API now supports pagination on the /v2/orders endpoint. Fixed a "
    "memory leak in the worker process when the database connection pool was exhausted. Upgraded the "
    "Kubernetes deployment to use readiness probes. Breaking change: the Python SDK drops support for "
    "version 3.8. Run the migration script before deploying the new container image."
)
ENTERTAINMENT = (
    "Film review. The director's new thriller is a slow-burning delight, anchored by a magnetic lead "
    "performance. The screenplay twists nicely in the third act, the score is haunting, and the "
    "cinematography turns the city into a character. It premiered at the festival to a standing "
    "ovation and opens in cinemas on Friday before streaming later this year."
)
OTHER = (
    "Match report. The home side won 3-1 in a thrilling derby. The striker opened the scoring after "
    "ten minutes, the visitors equalised with a header before half-time, and two late goals sealed "
    "the points. The manager praised the fans and the team climbs to third in the league table "
    "ahead of next Saturday's away game."
)
OBVIOUS = {
    "healthcare": CLINICAL,
    "finance": FINANCE,
    "legal": LEGAL,
    "education": EDUCATION,
    "technology": TECHNOLOGY,
    "entertainment": ENTERTAINMENT,
    "other": OTHER,
}
