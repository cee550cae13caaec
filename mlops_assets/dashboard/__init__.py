"""Persona dashboards (business, data science, support) as one static HTML page: ``build.py``."""
