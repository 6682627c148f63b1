"""evsed: the station controller (everything above the hardware)."""

__version__ = "0.1.0"
