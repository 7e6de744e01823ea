# Image for the web and worker services of docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements/ requirements/
ARG REQUIREMENTS=requirements/ml.txt
RUN pip install --no-cache-dir -r ${REQUIREMENTS}
COPY . .
RUN DEBUG=1 python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "echoroo.wsgi", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
