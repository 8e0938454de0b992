# supervisor_pd in a container: supervisor-pd is PID 1 and runs the whole PD stack.
#
#   Demo, the full stack on a simulated Atlas 800I A2 (no NPU needed; the default target):
#     docker build -t supervisor-pd:demo .
#   Production, on a MindIE image (MindIE, CANN and the Ascend driver mounts come from there):
#     docker build --build-arg BASE_IMAGE=<your MindIE image> --target production -t supervisor-pd:mindie .
#   Offline (no package index): wheels in build/wheelhouse, see docs/docker.md:
#     docker build --build-arg WHEELHOUSE=build/wheelhouse ...
#
# Build arguments:
#   BASE_IMAGE   any image with Python 3.11+ and its venv module (Debian's python3-venv)
#   PYTHON       the interpreter that creates supervisor_pd's venv (default: python3 on PATH)
#   WHEELHOUSE   folder in the build context holding supervisor_pd's wheel and every dependency;
#                when set, pip never contacts an index
#   APP_UID/GID  the user supervisor-pd and every MindIE process run as (0 = root); the NPU devices
#                need its group to own them or be among its groups (docs/docker.md)
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PYTHON=python3
ARG WHEELHOUSE=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
# A venv of its own: supervisor_pd's dependencies never meet MindIE's Python packages.
RUN set -eu; \
    "$PYTHON" -m venv /opt/supervisor-pd; \
    if [ -n "$WHEELHOUSE" ]; then \
        if ! ls "$WHEELHOUSE"/supervisor_pd-*.whl >/dev/null 2>&1; then \
            echo "WHEELHOUSE=$WHEELHOUSE: no supervisor_pd wheel there (docs/docker.md, offline build)" >&2; exit 2; \
        fi; \
        /opt/supervisor-pd/bin/pip install --no-index --find-links "$WHEELHOUSE" supervisor_pd; \
    else \
        /opt/supervisor-pd/bin/pip install .; \
    fi; \
    # pip and setuptools have done their job: 25 MB less in every image.
    /opt/supervisor-pd/bin/python -m pip uninstall -q -y pip setuptools; \
    /opt/supervisor-pd/bin/supervisor-pd --version

FROM ${BASE_IMAGE} AS production
ARG APP_UID=1000
ARG APP_GID=1000
COPY --from=build /opt/supervisor-pd /opt/supervisor-pd
COPY boot/ /opt/supervisor-pd/boot/
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
# Only the command goes on PATH: the venv's python3 must not shadow the one MindIE's scripts use.
RUN set -eu; \
    ln -s /opt/supervisor-pd/bin/supervisor-pd /usr/local/bin/supervisor-pd; \
    chmod 0755 /usr/local/bin/entrypoint.sh /opt/supervisor-pd/boot/*.sh; \
    mkdir -p /var/lib/supervisor-pd; \
    chown "$APP_UID:$APP_GID" /var/lib/supervisor-pd; \
    chmod 0750 /var/lib/supervisor-pd
# Generated configs, logs, the control socket, and MindIE's own ~/mindie logs live here.
ENV SUPERVISOR_PD_STATE_DIR=/var/lib/supervisor-pd \
    HOME=/var/lib/supervisor-pd
USER ${APP_UID}:${APP_GID}
WORKDIR /var/lib/supervisor-pd
# 8080: supervisor_pd (probes, status, metrics, the inference API); 1025: the Coordinator's
# predict port in the sample configs, for clients that address it directly.
EXPOSE 8080 1025
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]

FROM production AS demo
ENV SUPERVISOR_PD_SIMULATE=800i-a2
