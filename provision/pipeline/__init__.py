"""The daily data pipeline: a container image for the data steps and a Kubeflow Pipelines v2 pipeline."""
