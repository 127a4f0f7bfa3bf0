# The one image behind every Accrual process: api, worker, beat and the one-off migrate step.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY models ./models
COPY services ./services
COPY workers ./workers
RUN pip install . && useradd --system --uid 10001 accrual && mkdir -p /data && chown accrual /data
USER accrual
ENV ACCRUAL_DATA_DIR=/data
EXPOSE 8000
ENTRYPOINT ["accrual"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
