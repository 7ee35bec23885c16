"""Images (PNG, JPEG, TIFF, BMP, WebP, GIF): OCR, every page of a multi-page TIFF.

The pixel count is checked from the header before anything is decoded, so a small file that
claims to be 100,000 × 100,000 pixels (a decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

from core.errors import CorruptFile, LimitExceeded, NoText
from core.extract import ocr
from core.extract.sniff import TIFF
from core.extract.types import OCR, Context, Parsed, Source

if TYPE_CHECKING:
    from PIL.Image import Image

PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF")
# Larger images are scaled down before OCR: beyond this Tesseract gets slower, not better.
OCR_MAX_PIXELS = 24_000_000
# Smaller images (a shorter side below SMALL_SIDE pixels: a phone's thumbnail, a low-resolution
# scan, an ID card) are scaled up so that side is UPSCALED_SIDE, at most MAX_UPSCALE times: Tesseract
# reads text whose letters are a few pixels high poorly or not at all. On the training-side PDFs of
# doctype-dev rendered at 50 and 70 dpi (425 and 595 pixels wide), word recall rose from 0.11 to 0.85
# and from 0.87 to 0.93 (0.11 to 0.24 and 0.69 to 0.80 after photograph-like degradation); at 100 dpi
# and more, where nothing is scaled, it stays 0.94.
SMALL_SIDE = 800
UPSCALED_SIDE = 1000
MAX_UPSCALE = 4.0


def extract_image(source: Source, context: Context, *, content_type: str) -> Parsed:
    """OCR the image (every page of a TIFF, the first frame of anything animated)."""
    from PIL import Image, UnidentifiedImageError

    limits = context.limits
    with source.open() as stream:
        try:
            image = Image.open(stream, formats=PIL_FORMATS)
        except Image.DecompressionBombError as exc:
            raise LimitExceeded(f"The image is too large to decode safely ({exc}).") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptFile(f"The image cannot be read: {exc}") from exc
        with image:
            _check_pixels(image.size, limits.max_image_pixels)
            # Only TIFF pages are pages; further GIF/WebP/PNG frames are animation, not content.
            frames = getattr(image, "n_frames", 1) if content_type == TIFF else 1
            if frames > limits.max_pages:
                raise LimitExceeded(f"The TIFF has {frames} pages; the limit is {limits.max_pages}.")
            read = min(frames, limits.max_ocr_pages)
            parsed = Parsed()
            if read < frames:
                parsed.warnings.append(
                    f"only the first {read} of {frames} pages were OCR'd (limit HERON_MAX_OCR_PAGES)"
                )
            if not ocr.available():
                raise NoText(
                    "The image has no text layer and OCR is unavailable: tesseract is not installed."
                )

            def recognise(encoded: bytes) -> str:
                try:
                    return ocr.ocr_image(
                        encoded,
                        language=limits.ocr_language,
                        processes=limits.ocr_processes,
                        deadline=context.deadline,
                    )
                except ocr.OcrFailed as exc:
                    parsed.warnings.append(f"OCR failed on a page: {exc}")
                    return ""

            texts = ocr.run_parallel(
                _prepared_frames(image, read, context), recognise, processes=limits.ocr_processes
            )
    parsed.pages = [(text, OCR) for text in texts]
    return parsed


def _prepared_frames(image: Image, count: int, context: Context) -> Iterator[bytes]:
    for index in range(count):
        context.deadline.check(f"decoding page {index + 1} of the image")
        try:
            image.seek(index)
            _check_pixels(image.size, context.limits.max_image_pixels)
            yield prepare_for_ocr(image)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptFile(f"The image cannot be decoded (page {index + 1}): {exc}") from exc


def prepare_for_ocr(frame: Image) -> bytes:
    """Upright, greyscale, transparent areas white, small images scaled up (SMALL_SIDE), at most
    OCR_MAX_PIXELS; encoded as PGM."""
    from PIL import Image, ImageOps

    if frame.format == "JPEG" and frame.size[0] * frame.size[1] > OCR_MAX_PIXELS:
        # JPEG can decode at 1/2, 1/4 or 1/8 scale directly, without the full-size bitmap.
        scale = (OCR_MAX_PIXELS / (frame.size[0] * frame.size[1])) ** 0.5
        frame.draft("L", (int(frame.size[0] * scale), int(frame.size[1] * scale)))
    upright = ImageOps.exif_transpose(frame) or frame
    if upright.mode.startswith("I;16") or upright.mode in ("I", "F"):
        # 16-bit, 32-bit and float greys would be clipped, not scaled, by convert("L").
        wide = upright.convert("F") if upright.mode == "F" else upright.convert("I")
        low, high = wide.getextrema()
        scale = 255 / ((high - low) or 1)
        upright = wide.point(lambda value: value * scale - low * scale)
    if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
        rgba = upright.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        upright = Image.alpha_composite(background, rgba)
    grey = upright.convert("L")
    width, height = grey.size
    if 0 < min(width, height) < SMALL_SIDE:
        scale = min(MAX_UPSCALE, UPSCALED_SIDE / min(width, height))
        grey = grey.resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
    pixels = grey.size[0] * grey.size[1]
    if pixels > OCR_MAX_PIXELS:
        scale = (OCR_MAX_PIXELS / pixels) ** 0.5
        grey = grey.resize((max(1, int(grey.size[0] * scale)), max(1, int(grey.size[1] * scale))))
    buffer = io.BytesIO()
    grey.save(buffer, format="PPM")
    return buffer.getvalue()


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise LimitExceeded(
            f"The image is {width} × {height} pixels ({width * height / 1e6:.0f} megapixels); the limit is "
            f"{max_pixels / 1e6:.0f} megapixels (a likely decompression bomb)."
        )
