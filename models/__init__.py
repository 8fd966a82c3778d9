"""models/: which model a run uses, where its weights come from, and how they are loaded."""
