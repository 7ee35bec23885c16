# Heron: one image for every process — `heron api`, `heron ui`, `heron worker`, `heron migrate`.
# Build: docker build -t heron .      Run: see docker-compose.yml and the README's "Scaling out".

# --- build the heron wheel (the code only; dependencies are installed in the runtime stage) --------
FROM python:3.11-slim-bookworm AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# README.md is the package's long description (pyproject: readme = "README.md"): the build needs it.
COPY pyproject.toml README.md ./
COPY core ./core
COPY api ./api
COPY workers ./workers
COPY ui ./ui
COPY cli ./cli
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime -------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# Tesseract (OCR of scans and images) and poppler's pdftoppm (rendering PDF pages for OCR): what
# scripts/system-deps.sh installs without --test. Chromium is for the console's browser test only.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      tesseract-ocr tesseract-ocr-eng poppler-utils \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
# Deliberately NOT set: OMP_THREAD_LIMIT. Process-wide it makes torch's bf16 kernels return wrong
# embeddings; core/extract/ocr.py already gives each Tesseract process OMP_THREAD_LIMIT=1.

# Dependencies in their own layer, so a code change does not reinstall torch. The list comes from
# pyproject.toml (the single source of truth), the versions from constraints.txt (what CI tested).
# torch goes first, from PyTorch's CPU index, with the
# exact pin pyproject.toml has: `torch==X` is then satisfied by the installed `X+cpu` and pip does
# not pull the CUDA build (and its ~3 GB of nvidia-* wheels) from PyPI.
COPY pyproject.toml constraints.txt /tmp/
# hadolint ignore=DL3013
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && torch_pin="$(grep -E '^torch[[:space:]]*==' /tmp/requirements.txt)" \
 && pip install --index-url https://download.pytorch.org/whl/cpu "$torch_pin" \
 && pip install -c /tmp/constraints.txt -r /tmp/requirements.txt \
 && python -c "import importlib.metadata as m, torch; cuda = [n for n in (d.metadata['Name'] or '' for d in m.distributions()) if n.lower().startswith('nvidia-')]; assert torch.version.cuda is None and not cuda, ('CUDA build installed', torch.__version__, cuda)" \
 && rm /tmp/pyproject.toml /tmp/constraints.txt /tmp/requirements.txt

# Heron itself, not editable. Everything it reads at run time is inside the package except the
# starter corpus: ui/app.py and ui/views/*.py (cli/main.py runs `streamlit run <package>/ui/app.py`),
# core/migrations with script.py.mako (core/db builds its Alembic config from the package path; the
# repository's alembic.ini is for developers only). data/ is not a package, so it is copied here
# and HERON_STARTER_DIR points at it (its default, REPO_ROOT/data, would be site-packages/data).
COPY --from=wheel /wheels /tmp/wheels
RUN pip install /tmp/wheels/heron-*.whl && rm -rf /tmp/wheels

WORKDIR /app
COPY data /app/data

# A non-root user; /data and /originals exist and belong to it so that named volumes mounted there
# start out writable by it (bind mounts: make the host directory writable by uid 10001).
RUN groupadd --system --gid 10001 heron \
 && useradd --system --uid 10001 --gid heron --create-home --home-dir /home/heron \
      --shell /usr/sbin/nologin heron \
 && mkdir -p /data /originals \
 && chown heron:heron /data /originals

# HERON_DATA_DIR: SQLite (only without HERON_DATABASE_URL) and caches (embeddings), per machine.
# HERON_ORIGINALS_DIR: uploaded originals; every API, console and worker container must mount the
# SAME storage here (a shared volume, NFS, EFS …), because a worker reads what the API stored.
# HERON_API_HOST stays 127.0.0.1 (the code's default, safe): set 0.0.0.0 together with
# HERON_API_KEYS to serve other machines (docker-compose.yml does).
ENV HOME=/home/heron \
    HERON_DATA_DIR=/data \
    HERON_ORIGINALS_DIR=/originals \
    HERON_STARTER_DIR=/app/data
VOLUME ["/data", "/originals"]

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000 8501

# Liveness of the API (the default command). Not the console's or a worker's: docker-compose.yml
# overrides it there. The long start period covers migrations and, on a first start, training the
# starter model before the port opens (no curl in slim: Python's urllib).
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HERON_API_PORT', '8000'), timeout=4)"]

CMD ["heron", "api"]
