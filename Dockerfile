# One image holding api, worker, scheduler and keelctl; pick the binary with
# the command (see docker-compose.yml and Procfile).
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
USER 10001:10001
ENV ENV=production LOG_FORMAT=json HTTP_ADDR=:8080 METRICS_ADDR=:9090
EXPOSE 8080 9090
CMD ["api"]
