"""Model configs: the 8 official SAM 2 / SAM 2.1 variants."""
