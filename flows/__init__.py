"""Prefect flows of the MNIST continuous-training pipeline (thin wrappers over `tasks`)."""
