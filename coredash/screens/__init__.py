"""Modal screens: help, the job picker, and a job's details."""
