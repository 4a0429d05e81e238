"""The dashboard's widgets, one per module. They draw state and post messages; they never schedule."""
