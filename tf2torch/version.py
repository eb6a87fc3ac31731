"""The package version, in a leaf module: the rooms that record it (emit's generated header, verify's report)
import it from here, not from ``tf2torch/__init__``, which imports them back (an import circle)."""

__version__ = "0.1.0"
