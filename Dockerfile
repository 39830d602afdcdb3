# tokenvend container image: one image, two binaries (`tokenvend`, the service and its admin CLI,
# and `acs-emulator`, the offline ACS identity API). Multi-stage: the build stage has the -dev
# packages and the compiler; the runtime stage has only the shared libraries, runs as a non-root
# user and keeps its SQLite database on the /data volume.

# --- build --------------------------------------------------------------------------------------
FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config ca-certificates \
      libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libjson-c-dev libsqlite3-dev libargon2-dev \
      libpq-dev libyaml-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore keeps tests, docs, build trees and local state out of the context.
COPY . .
# The binaries are named as targets so the build skips the host-side package check (the packages
# were installed just above). migrations/ and config/ may be absent from a checkout while empty.
# Compiler flags come from the Makefile alone (mk/warnings.txt, HARDEN_CFLAGS/HARDEN_LDFLAGS),
# with warnings as errors as in CI; check-hardening.sh proves the hardening reached the binaries.
RUN make -j"$(nproc)" BUILD=/out WERROR=1 /out/bin/tokenvend /out/bin/acs-emulator \
 && scripts/check-hardening.sh /out/bin/tokenvend /out/bin/acs-emulator \
 && strip --strip-unneeded /out/bin/tokenvend /out/bin/acs-emulator \
 && mkdir -p migrations config

# --- runtime ------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# curl serves the HEALTHCHECK; the rest are the runtime halves of the build's -dev packages.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libcurl4 libssl3 libjson-c5 libsqlite3-0 libargon2-1 libpq5 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 tokenvend \
 && useradd --system --uid 10001 --gid tokenvend --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin tokenvend \
 && mkdir -p /data /etc/tokenvend /usr/share/tokenvend \
 && chown tokenvend:tokenvend /data && chmod 0700 /data
COPY --from=build /out/bin/tokenvend /out/bin/acs-emulator /usr/local/bin/
COPY --from=build /src/migrations/ /usr/share/tokenvend/migrations/
COPY --from=build /src/config/ /etc/tokenvend/

# In a container both listeners bind every interface; publish only 8080 outside the host,
# keep 8081 (the internal, API-key API) on the container network.
ENV TOKENVEND_PUBLIC_ADDR=0.0.0.0:8080 \
    TOKENVEND_INTERNAL_ADDR=0.0.0.0:8081 \
    TOKENVEND_DB=/data/tokenvend.db
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["tokenvend"]
CMD ["serve"]
