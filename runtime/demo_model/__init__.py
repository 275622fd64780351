"""The embedded demo model: a small transformer trained on multiple-choice prompts."""
