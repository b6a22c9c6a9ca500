"""Scanner-output parsers: one module per format, each turning a file into normalised records."""
