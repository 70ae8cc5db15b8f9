# syntax=docker/dockerfile:1.6
# AlphaTransformer: one image for every platform process (web, workers, beat, migrate),
# plus a small nginx image (target "proxy") that serves the collected static files and
# proxies HTTP and websockets to the web process. See docs/deployment.md.
#
#   docker build -t alphatransformer .                  # the app image (default target)
#   docker build -t alphatransformer-proxy --target proxy .
#   docker compose up -d                                # everything, see docker-compose.yml

# ---------------------------------------------------------------------------------------
# Stage "assets": browser dependencies of the portal (chart.js).
# `npm ci` runs only when package-lock.json exists; otherwise the stage leaves an empty
# node_modules/chart.js/dist, and the portal's chart simply has no library to load.
# ---------------------------------------------------------------------------------------
FROM node:20-slim AS assets
WORKDIR /build
COPY package*.json ./
RUN mkdir -p node_modules/chart.js/dist \
 && if [ -f package-lock.json ]; then npm ci --omit=dev --ignore-scripts --no-audit --no-fund; fi

# ---------------------------------------------------------------------------------------
# Stage "app": the Python application, run as a non-root user.
# ---------------------------------------------------------------------------------------
FROM python:3.11-slim AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=alpha_platform.settings \
    ALPHA_ENV=production \
    ALPHA_VAR_DIR=/app/var \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 alpha \
 && useradd --system --uid 10001 --gid alpha --home-dir /app --shell /usr/sbin/nologin alpha
WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY --chown=alpha:alpha . .
COPY --from=assets --chown=alpha:alpha /build/node_modules/chart.js/dist ./node_modules/chart.js/dist

# Static files into STATIC_ROOT (VAR_DIR/static). collectstatic needs settings but no
# database, Redis or real secrets: throw-away values for this one command, and the
# development key file it would create is removed.
RUN mkdir -p /app/var \
 && ALPHA_ENV=development DJANGO_SECRET_KEY=collectstatic-only \
    CREDENTIALS_ENCRYPTION_KEYS="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    python manage.py collectstatic --noinput -v 0 \
 && rm -f /app/var/credentials.key /app/var/db.sqlite3 \
 && chown -R alpha:alpha /app/var

USER alpha
EXPOSE 8000
# Every service overrides the command (docker-compose.yml); the default is the web process.
# HTTP: gunicorn, one worker per core (WEB_CONCURRENCY overrides), WSGI: alpha_platform/gunicorn_conf.py.
# The websocket server is the compose "ws" service (alpha_platform/gunicorn_ws_conf.py).
CMD ["gunicorn", "-c", "python:alpha_platform.gunicorn_conf", "-b", "0.0.0.0:8000", "alpha_platform.wsgi:application"]

# ---------------------------------------------------------------------------------------
# Stage "proxy": nginx with the collected static files (deploy/nginx.conf).
# ---------------------------------------------------------------------------------------
FROM nginx:1.27-alpine AS proxy
COPY deploy/nginx.conf /etc/nginx/conf.d/default.conf
COPY --from=app /app/var/static /srv/static
EXPOSE 8080

# ---------------------------------------------------------------------------------------
# The default target is the app image.
# ---------------------------------------------------------------------------------------
FROM app AS runtime
