"""Dashboards as code: panels.py (rows and queries) rendered by generate.py; Prometheus
config and rules under prometheus/, Grafana provisioning under grafana/."""
