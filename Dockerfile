# syntax=docker/dockerfile:1
# Build stage: turn the project and its dependencies into wheels.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: only the wheels, no compilers, no sources.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels gateway && rm -rf /wheels
# Config is mounted here (gateway.yaml, routes.yaml, keys/); see deploy/README.md.
COPY config /etc/gateway
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["gateway"]
CMD ["run", "-c", "/etc/gateway/gateway.yaml"]
