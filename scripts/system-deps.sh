#!/usr/bin/env bash
# Debian packages Heron uses: Tesseract (OCR) and poppler (PDF page rendering). With --test, also
# Chromium and an emoji font, for the browser test of the console (tests/integration/test_ui_browser.py).
# Installs what is missing when we are root with apt-get; otherwise says what to install.
set -euo pipefail
packages=(tesseract-ocr tesseract-ocr-eng poppler-utils)
test_packages=(chromium fonts-noto-color-emoji)
case "${1:-}" in
  "") test_packages=() ;;
  --test) packages+=("${test_packages[@]}") ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "Installing system packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Heron needs these system packages: ${missing[*]}" >&2
  echo "  sudo apt-get install ${missing[*]}" >&2
  echo "(Without Tesseract and poppler everything except scanned documents and images works.)" >&2
  [ ${#test_packages[@]} -eq 0 ] || echo "(Without chromium the console's browser test is skipped.)" >&2
fi
