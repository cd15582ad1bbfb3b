# The image web, worker and beat run from (docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1
WORKDIR /app
# WeasyPrint (the agreements' and letters' PDFs) draws with Pango, in Debian's DejaVu fonts.
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml constraints.txt README.md ./
COPY config ./config
COPY core ./core
COPY accounts ./accounts
COPY restructuring ./restructuring
COPY rules ./rules
COPY demo ./demo
RUN pip install --no-cache-dir -c constraints.txt .
COPY . .
RUN DEBUG=false SECRET_KEY=build-only python manage.py collectstatic --noinput
RUN useradd --create-home workout && mkdir -p /app/media && chown workout /app/media
USER workout
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "-c", "config/gunicorn.py"]
