"""The pipeline's own state: staged extracts on disk, and watermarks (later links, hashes, dead letters) in SQL."""
