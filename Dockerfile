# The production image: web, GPU worker and train worker all run from it (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/data/hf-cache

RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The CUDA build of the locked torch version first; requirements.lock pins torch==2.13.0, which it satisfies.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0

COPY pyproject.toml requirements.lock README.md ./
COPY labelstudio_site ./labelstudio_site
COPY generation ./generation
COPY rlhf ./rlhf
COPY fixtures ./fixtures
COPY manage.py ./
COPY docker/entrypoint.sh /usr/local/bin/albumgen-entrypoint
RUN pip install -c requirements.lock .

# collectstatic needs settings but no secrets or services: a throwaway key and the default SQLite URL.
ENV STATIC_ROOT=/app/staticfiles
RUN DJANGO_SETTINGS_MODULE=labelstudio_site.settings.production \
    SECRET_KEY=collectstatic-only-collectstatic-only-collectstatic-only \
    ALLOWED_HOSTS=localhost ALBUMGEN_VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --noinput

RUN useradd --create-home --uid 1000 albumgen && mkdir -p /data/media /data/hf-cache /data/var && chown -R albumgen /data
USER albumgen
ENV DJANGO_SETTINGS_MODULE=labelstudio_site.settings.production \
    MEDIA_ROOT=/data/media \
    ALBUMGEN_VAR_DIR=/data/var

EXPOSE 8000
ENTRYPOINT ["albumgen-entrypoint"]
CMD ["gunicorn", "labelstudio_site.wsgi:application", "--bind", "0.0.0.0:8000"]
