#!/usr/bin/env bash
# Debian packages Heron uses: Tesseract (OCR) and poppler (PDF page rendering).
# Installs what is missing when we are root with apt-get; otherwise says what to install.
set -euo pipefail
packages=(tesseract-ocr tesseract-ocr-eng poppler-utils)
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
  echo "Heron needs these system packages for OCR: ${missing[*]}" >&2
  echo "  sudo apt-get install ${missing[*]}" >&2
  echo "(Everything except scanned documents and images works without them.)" >&2
fi
