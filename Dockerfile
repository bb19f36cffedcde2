# The PACS in one container: Debian's Orthanc with our plugin, installed by the
# Makefile's `make install` steps (the same as `make run` and `make test`), split
# in two stages so that what only the build needs stays out of the image.
#
#   docker build -t pacs .                                   # Debian 13 (trixie)
#   docker build --build-arg DEBIAN_RELEASE=bookworm -t pacs .   # Debian 12
#
# Both stages use the same Debian release: the virtual environment is made with
# that release's /usr/bin/python3, the Python that Orthanc's plugin embeds
# (3.13 on trixie, 3.11 on bookworm), at the same path as at run time.
ARG DEBIAN_RELEASE=trixie

# --- build: the virtual environment and the front-end files (npm stays here) ---
FROM debian:${DEBIAN_RELEASE}-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends make ca-certificates python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/pacs
COPY Makefile requirements.txt ./
# `make install`'s pip and npm steps (the Makefile's pins; it installs nodejs and
# npm itself). A machine whose registries need their own certificate authorities or
# pip/npm settings passes them as build secrets, which no layer keeps:
# `--secret id=ca-certificates,src=<PEM bundle> --secret id=build-env,src=<sh file>`.
# OHIF's source maps (40 MB) are for debugging OHIF itself: not shipped.
RUN --mount=type=secret,id=build-env --mount=type=secret,id=ca-certificates \
    sh -c '[ ! -f /run/secrets/build-env ] || . /run/secrets/build-env; make .venv/.installed build/vendor/.installed' \
 && find build/vendor -name '*.map' -delete

# --- run: Debian's Orthanc, the venv, OHIF; no compiler, nodejs, npm or caches ---
FROM debian:${DEBIAN_RELEASE}-slim
WORKDIR /opt/pacs
COPY Makefile ./
# `make install`'s Debian packages (the Makefile's APT_RUNTIME), plus tini (PID 1:
# it passes signals on from the first instant and reaps), tzdata (the clinic's
# time zone, TZ) and ca-certificates (TLS to DICOMweb peers). The unprivileged
# user `orthanc` that runs the PACS is made first with a fixed uid and gid, 999 on
# every release (Debian's orthanc package keeps it), so that files given to the
# container (a secret, a bind-mounted folder) can be made readable by it.
RUN groupadd --system --gid 999 orthanc \
 && useradd --system --uid 999 --gid orthanc --home-dir /var/lib/orthanc --no-create-home \
            --shell /usr/sbin/nologin orthanc \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends make tini tzdata ca-certificates \
 && make apt-runtime \
 && apt-get purge -y --auto-remove make \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && install -d -o orthanc -g orthanc -m 0750 /var/lib/pacs
COPY --from=build /opt/pacs/.venv .venv
COPY --from=build /opt/pacs/build/vendor build/vendor
COPY . .
RUN .venv/bin/python -m compileall -q plugin

ENV PACS_DATA_DIR=/var/lib/pacs
VOLUME ["/var/lib/pacs"]
# DICOM (C-STORE, C-FIND, MWL, C-MOVE), MPPS, HTTP (web UI, REST, DICOMweb).
EXPOSE 4242 4243 8042
USER orthanc
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/opt/pacs/.venv/bin/python", "-m", "plugin.launcher", "health"]
STOPSIGNAL SIGTERM
# A stop that comes before Orthanc has set its signal handlers (the first second
# or so) ends it by the signal itself: tini reports that 143 as a clean 0.
ENTRYPOINT ["/usr/bin/tini", "-e", "143", "--"]
# The launcher writes the configuration into the volume and execs Orthanc.
CMD ["/opt/pacs/.venv/bin/python", "-m", "plugin.launcher", "run"]
