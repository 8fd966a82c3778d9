"""report/: what a person reads: result tables, figures, the HTML page, the golden gate."""
