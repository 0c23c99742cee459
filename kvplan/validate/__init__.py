"""kvplan validate: real engine runs read, replayed under their settings, compared."""
