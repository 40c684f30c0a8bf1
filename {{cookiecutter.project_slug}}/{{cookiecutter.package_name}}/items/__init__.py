"""The example resource: its model, its API and what it answers, its pages and tasks."""
