# The PACS in one container: Debian's Orthanc with our plugin, installed by
# the same `make install` that `make run` and `make test` use.
FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends make ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pacs
COPY . .
RUN make install && rm -rf /var/lib/apt/lists/* /root/.cache

ENV PACS_DATA_DIR=/var/lib/pacs
VOLUME ["/var/lib/pacs"]
EXPOSE 4242 8042

# The launcher execs Orthanc, so Orthanc is PID 1 and gets the stop signal.
CMD [".venv/bin/python", "-m", "plugin.launcher", "run"]
