"""``python -m geofoundry`` and the ``geofoundry`` command."""

from .pipeline.cli import app
from .pipeline.reporting import exit_process


def main() -> None:
    """Run the command; a failed one ends its process at once (see :func:`exit_process`)."""
    try:
        app()
    except SystemExit as e:
        if e.code:
            exit_process(e.code)
        raise


if __name__ == "__main__":
    main()
