# The image web, worker and beat run from (docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1
WORKDIR /app
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
RUN useradd --create-home workout
USER workout
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "-c", "config/gunicorn.py"]
