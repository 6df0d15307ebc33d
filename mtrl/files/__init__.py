"""Result and checkpoint files: formats, checksums, completeness, provenance records."""
