# The portal's image: one image for web, workers and beat (compose.yaml picks the command).
# Same install steps as the Makefile: a virtualenv, `pip install -e .` (pyproject.toml lists no
# packages, so this installs the dependencies and the code runs from /app), compiled messages,
# and here also collectstatic, so the image serves its own static files through whitenoise.
# No container runtime could build this on the machines it was written on; keep it in step with
# bin/run-prod, which starts the same processes with the same settings.

FROM python:3.12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gettext && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
RUN /opt/venv/bin/pip install --upgrade pip && /opt/venv/bin/pip install -e .
COPY . .
# Production settings refuse to load without their secrets; these placeholders exist only for the
# two build commands below and are not kept in the image.
RUN /opt/venv/bin/python manage.py compilemessages --ignore '.venv/*' -v 0 \
 && PORTAL_ENV=production PORTAL_VAR_DIR=/tmp/build-var STATIC_ROOT=/app/staticfiles \
    SECRET_KEY=build AUDIT_HMAC_KEY=build RECEIPT_SIGNING_KEY=build \
    CLIENT_SECRET_HMAC_KEY=build WEBHOOK_SECRET_KEY=build \
    /opt/venv/bin/python manage.py collectstatic --noinput -v 0 \
 && rm -rf /tmp/build-var var

FROM python:3.12-slim AS runtime
RUN useradd --create-home --uid 10001 portal
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
RUN mkdir -p /app/var && chown portal:portal /app/var
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORTAL_ENV=production \
    PORTAL_VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles
USER portal
EXPOSE 8000
# The web process; compose.yaml runs the workers and beat from the same image.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "portal.wsgi", "--workers", "2", "--bind", "0.0.0.0:8000"]
