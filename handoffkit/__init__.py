"""handoffkit — keep the security finding record canonical while remediation moves into tickets."""

__version__ = "0.1.0"
