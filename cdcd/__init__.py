"""cdcd: change-data-capture from MySQL/MariaDB binlogs and PostgreSQL slots to Kafka."""

from cdcd.errors import CdcdError, ConfigError, FencedError, SinkError, SourceError

__version__ = "0.1.0"

__all__ = ["CdcdError", "ConfigError", "FencedError", "SinkError", "SourceError", "__version__"]
