"""An index to hits: filters, places in questions, query translation, fusion."""
