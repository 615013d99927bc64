"""Placeholder until the docker backend lands."""


def ensure_docker() -> str | None:
    return "docker backend not implemented yet"
