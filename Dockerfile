# Image for the AgentMem worker and API (docker-compose.yml). The embedding model
# pack is assembled at build time, so the running container needs no network.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    AGENTMEM_CACHE_DIR=/opt/agentmem/cache AGENTMEM_STACK_DIR=/var/lib/agentmem
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY processors ./processors
COPY loadgen ./loadgen
COPY dashboards ./dashboards
RUN pip install --no-cache-dir -e . \
 && agentmem stack build --component model-pack
RUN useradd --system --home /var/lib/agentmem agentmem \
 && mkdir -p /var/lib/agentmem && chown agentmem /var/lib/agentmem
USER agentmem
EXPOSE 8000 9108
ENTRYPOINT ["agentmem"]
CMD ["worker"]
