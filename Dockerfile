# One image holding api, worker, scheduler and keelctl; pick the binary with
# the command (see docker-compose.yml and Procfile). The api also serves the
# built web app (WEB_DIR, docs/web.md).

# The web app: npm ci from the lockfile, then tsc against the committed API
# client, vite build and the bundle budget (npm run build).
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG RELEASE=dev
RUN go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/...

# Debian slim rather than scratch: backup:verify runs pg_dump and pg_restore.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /nonexistent --shell /usr/sbin/nologin keel
COPY --from=build /out/ /usr/local/bin/
COPY --from=web /web/dist/ /usr/share/keel/web/
USER 10001:10001
ENV ENV=production LOG_FORMAT=json HTTP_ADDR=:8080 METRICS_ADDR=:9090 WEB_DIR=/usr/share/keel/web
EXPOSE 8080 9090
CMD ["api"]
