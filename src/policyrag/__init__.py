"""policyrag: semantic search and cited summaries over Chinese local-government reports."""

__version__ = "0.1.0"
