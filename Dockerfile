# tokenvend container image: one image, two binaries (`tokenvend`, the service and its admin CLI,
# and `acs-emulator`, the offline ACS identity API). Multi-stage: the build stage has the -dev
# packages and the compiler; the runtime stage starts from scratch and holds only what the two
# binaries need at run time (their shared libraries, CA certificates, a passwd entry, /bin/sh),
# about 24 MB in all; it runs as a non-root user and keeps its SQLite database on /data.

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

# The runtime root filesystem, assembled here where ldd and a shell exist. Libraries: exactly
# what the dynamic loader resolves for the two binaries and for /bin/sh (dash, kept so that
# `docker exec ... sh` and scripts/check-image.sh, which runs commands through /bin/sh -c, work;
# 125 KB), each copied to the path ldd names, the loader (/lib64/ld-linux-x86-64.so.2) included,
# so the binaries' interpreter path and the loader's built-in search path both hold. No package
# manager, no curl (the HEALTHCHECK is `tokenvend healthcheck`), no coreutils.
RUN set -eu; r=/rootfs; \
    mkdir -p "$r/usr/local/bin" "$r/bin" "$r/etc/ssl/certs" "$r/usr/lib/ssl" "$r/etc/tokenvend" \
             "$r/usr/share/tokenvend/migrations" "$r/data" "$r/tmp"; \
    cp /out/bin/tokenvend /out/bin/acs-emulator "$r/usr/local/bin/"; \
    cp -L /bin/dash "$r/bin/sh"; \
    for lib in $(ldd /out/bin/tokenvend /out/bin/acs-emulator /bin/dash \
                 | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' \
                 | sort -u); do \
        mkdir -p "$r${lib%/*}"; cp -L "$lib" "$r$lib"; \
    done; \
    cp -L /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"; \
    ln -s /etc/ssl/certs/ca-certificates.crt "$r/usr/lib/ssl/cert.pem"; \
    ln -s /etc/ssl/certs "$r/usr/lib/ssl/certs"; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\ntokenvend:x:10001:10001:tokenvend:/data:/sbin/nologin\n' \
        >"$r/etc/passwd"; \
    printf 'root:x:0:\ntokenvend:x:10001:\n' >"$r/etc/group"; \
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"; \
    cp -R migrations/. "$r/usr/share/tokenvend/migrations/"; \
    cp -R config/. "$r/etc/tokenvend/"; \
    chown 10001:10001 "$r/data"; chmod 0700 "$r/data"; chmod 1777 "$r/tmp"; \
    chroot "$r" /usr/local/bin/tokenvend version; \
    chroot "$r" /usr/local/bin/acs-emulator --help >/dev/null; \
    chroot "$r" /bin/sh -c 'exit 0'

# --- runtime ------------------------------------------------------------------------------------
# Nothing but the root filesystem assembled above (ownership and modes kept: /data is 10001's).
FROM scratch AS runtime
COPY --from=build /rootfs/ /

# In a container both listeners bind every interface; publish only 8080 outside the host,
# keep 8081 (the internal, API-key API) on the container network. No TOKENVEND_DB: with the
# working directory /, the built-in default data/tokenvend.db is /data/tokenvend.db, and a
# deployment that sets TOKENVEND_DB_FILE (compose.replicas.yaml) needs no value to remove first.
# PATH is the conventional one (most of it absent here): scripts/check-image.sh and the team's
# shared copy look up the host's chroot (/usr/sbin) with the image's environment.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    TOKENVEND_PUBLIC_ADDR=0.0.0.0:8080 \
    TOKENVEND_INTERNAL_ADDR=0.0.0.0:8081
VOLUME ["/data"]
WORKDIR /
USER 10001:10001
EXPOSE 8080 8081
# Ready, not only alive; `tokenvend healthcheck` reads the same TOKENVEND_PUBLIC_ADDR as serve.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["tokenvend", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tokenvend"]
CMD ["serve"]
