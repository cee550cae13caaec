"""The application behind ``mlops-assets``: what its commands do with the asset graph.

``execution``  the environment, one Dagster run in the code location and its failure (RunFailed)
``pipeline``   ``mlops-assets run``: a landing folder to forecasts, and ``--new-weeks``
``lanes``      several regions at once in worker processes
``backfill``   ``mlops-assets backfill`` and the dashboard refresh
``lifecycle``  ``mlops-assets retire`` and ``onboard``: a region's end and return
``report``     the summary a run prints and its ``--json`` report
"""
